"""GPT-1 as a language model: generation with a key/value cache (scoring is `gpt1_tf.lm.scoring`).

The LM head is the tied embedding over the n_vocab BPE rows only: a special-token or position row
is never scored or sampled (the original's head covered the whole table; see
pytorch-openai-transformer-lm #36).

    from gpt1_tf.network.config import Sampling
    from gpt1_tf.lm.generation import Generator
    from gpt1_tf.lm.samplers import TopKSampler
    from gpt1_tf.lm.scoring import token_losses
    gen = Generator(model)                        # model: a TransformerModel (or a GPT1Backbone) holding its weights
    ids = gen.generate(prompt_ids, 40, n_samples=2, sampling=Sampling(top_p=0.9), seed=1)  # [2, 40] new ids
    batch, ends = gen.generate_batch([prompt_ids, prompt_ids[:2]], 48, sampler=TopKSampler(k=5), seed=1)  # [2, 48]
    losses = token_losses(model, text_ids)        # [len(text_ids) - 1] next-token losses (sliding windows)

Generation runs one forward pass per new token over the cached keys and values of the positions
before it (`Transformer.hidden_with_cache`: the model's own blocks, given the cache): the cache is
[n_layer, 2, B, n_head, n_ctx, d] with static shapes, and the loop a `tf.while_loop` in one
`tf.function` (`jit_compile=True` compiles it with XLA). Each step computes what the full forward
computes at that position (the same layers, weights and masked softmax), so greedy decoding gives
the tokens a full re-run of the prefix would give.

Prompts of different lengths go in one batch padded on the right (`generate_batch`): the loop
starts at the shortest prompt's end, and at a position still inside a row's prompt it feeds that
row its own token, so every row gets the tokens it would get alone (the cache at a position is
written by the token there; attention never reads a later position). Beam search (`BeamSampler`)
runs the same passes over num_beams rows per prompt, reordering the cache by each step's beams.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from gpt1_tf.network.config import Sampling
from gpt1_tf.errors import ConfigError, Gpt1Error
from gpt1_tf.lm.samplers import BeamSampler
from gpt1_tf.network.heads import token_logits


def filter_logits(logits, sampling):
    """Logits [B, V] after temperature, then top-k, then top-p (nucleus, over what top-k kept): the rest at -inf."""
    logits = logits / sampling.temperature
    if sampling.top_k:
        kth = tf.math.top_k(logits, k=min(sampling.top_k, logits.shape[-1])).values[:, -1:]
        logits = tf.where(logits < kth, tf.cast(-np.inf, logits.dtype), logits)
    if sampling.top_p < 1:
        ranked = tf.sort(logits, direction="DESCENDING")
        mass_before = tf.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)
        # the smallest set whose mass reaches top_p: a token is kept while the mass before it is < top_p
        cutoff = tf.reduce_min(tf.where(mass_before < sampling.top_p, ranked, tf.cast(np.inf, ranked.dtype)),
                               axis=-1, keepdims=True)
        logits = tf.where(logits < cutoff, tf.cast(-np.inf, logits.dtype), logits)
    return logits


class Generator:
    """Decoding with a key/value cache for a `TransformerModel` or `GPT1Backbone` (no dropout): loops and sampling.

    Each pass is the model's own (`Transformer.hidden_with_cache`); only the LM head is applied here.
    The loops are `tf.function`s, traced at most once per input shape and sampler.
    """

    def __init__(self, model, jit_compile=False):
        self.model, self.cfg, self.body = model, model.cfg, model.transformer
        self._loop = tf.function(self._decode, jit_compile=jit_compile, reduce_retracing=True)
        self._beam_loop = tf.function(self._decode_beams, jit_compile=jit_compile, reduce_retracing=True)

    def next_logits(self, h):
        """LM logits [B, n_vocab] of the last hidden states h [B, n_embd]: the tied head over the BPE rows."""
        return token_logits(h, self.body.we, self.cfg.n_vocab)

    # --- the loops ---------------------------------------------------------------------------------
    def _start(self, prompt, lengths, max_length):
        """Right-padded prompts [B, P] in one pass: (first index, logits there, cache, ids [B, max_length] zero-padded)."""
        h, cache = self.body.hidden_with_cache(prompt, self.body.empty_cache(tf.shape(prompt)[0], max_length), 0)
        start = tf.reduce_min(lengths)  # the shortest prompt's end: its first new token
        logits = self.next_logits(tf.gather(h, start - 1, axis=1))
        ids = tf.pad(prompt, [[0, 0], [0, max_length - tf.shape(prompt)[1]]])
        return start, logits, cache, ids

    def _decode(self, prompt, lengths, max_length, seed, stop_ids, sampling):
        """Prompts [B, P] of `lengths` [B] -> ids [B, max_length]: each row's prompt, then its new tokens.

        Ends early once every row has made one of stop_ids [S] after its prompt. `sampling`: a
        Sampling's fields (`_key`).
        """
        sampling = Sampling(*sampling)
        start, logits, cache, ids = self._start(prompt, lengths, max_length)

        def step(i, logits, cache, ids, done):
            tok = tf.where(i < lengths, ids[:, i], self._choose(logits, seed, i, sampling))  # the prompt's, else new
            done |= (i >= lengths) & _is_stop(tok, stop_ids)
            h, cache = self.body.hidden_with_cache(tok[:, None], cache, i)
            return i + 1, self.next_logits(h[:, -1]), cache, _put(ids, i, tok), done

        done = tf.zeros_like(lengths, tf.bool)
        loop = tf.while_loop(lambda i, *s: (i < max_length) & ~tf.reduce_all(s[-1]), step,
                             [start, logits, cache, ids, done])
        return loop[3]

    def _decode_beams(self, prompt, lengths, max_length, stop_ids, num_beams, temperature):
        """Beam search: prompts [B, P] of `lengths` [B] -> the best beam's ids [B, max_length].

        Rows b*K .. b*K + K-1 are prompt b's K beams. Scores are total log-probabilities; at first
        only beam 0 is live (the others at -1e9, as transformers', so no two beams are alike). Inside
        a prompt, and after a beam's stop token, a beam has one continuation, of log-probability 0.
        """
        K, V = num_beams, self.cfg.n_vocab
        B = tf.shape(prompt)[0]
        rows = tf.repeat(tf.range(B), K)  # [B*K]: the prompt of each beam
        lengths = tf.gather(lengths, rows)
        start, logits, cache, ids = self._start(tf.gather(prompt, rows), lengths, max_length)
        scores = tf.tile(tf.constant([[0.0] + [-1e9] * (K - 1)]), [B, 1])  # [B, K]

        def step(i, logits, cache, ids, scores, done):
            log_p = tf.nn.log_softmax(logits / temperature)  # [B*K, V]
            only = tf.where(i < lengths, ids[:, i], ids[:, i - 1])  # the prompt's token, or the stop token again
            forced = tf.where(tf.one_hot(only, V) > 0, 0.0, -np.inf)
            log_p = tf.where(((i < lengths) | done)[:, None], forced, log_p)
            total = tf.reshape(scores[:, :, None] + tf.reshape(log_p, [B, K, V]), [B, K * V])
            scores, best = tf.math.top_k(total, K)  # [B, K], sorted: beam 0 is the best
            parent = tf.reshape(best // V + K * tf.range(B)[:, None], [-1])  # [B*K] rows the new beams extend
            tok = tf.reshape(best % V, [-1])
            ids, cache, done = tf.gather(ids, parent), tf.gather(cache, parent, axis=2), tf.gather(done, parent)
            done |= (i >= lengths) & _is_stop(tok, stop_ids)
            h, cache = self.body.hidden_with_cache(tok[:, None], cache, i)
            return i + 1, self.next_logits(h[:, -1]), cache, _put(ids, i, tok), scores, done

        done = tf.zeros_like(lengths, tf.bool)
        loop = tf.while_loop(lambda i, *s: (i < max_length) & ~tf.reduce_all(s[-1]), step,
                             [start, logits, cache, ids, scores, done])
        return tf.reshape(loop[3], [B, K, max_length])[:, 0]

    @staticmethod
    def _choose(logits, seed, i, sampling):
        if sampling.greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        step_seed = tf.random.experimental.stateless_fold_in(seed, i)
        return tf.random.stateless_categorical(filter_logits(logits, sampling), 1, step_seed, dtype=tf.int32)[:, 0]

    # --- calls -------------------------------------------------------------------------------------
    def generate(self, prompt_ids, length, *, n_samples=1, sampling=Sampling(greedy=True), seed=0):
        """`length` new token ids [n_samples, length] after `prompt_ids` (a list of ints, special ids allowed).

        Raises Gpt1Error when the prompt leaves no room: prompt + length must fit in n_ctx (the
        caller shortens `length` to `room(prompt_ids)` and says so).
        """
        if not len(prompt_ids):
            raise Gpt1Error("the prompt is empty: give at least one token")
        if len(prompt_ids) + length > self.cfg.n_ctx:
            raise Gpt1Error(f"{len(prompt_ids)} prompt tokens + {length} new ones exceed the {self.cfg.n_ctx} "
                            "positions of GPT-1's context")
        P = len(prompt_ids)
        prompt = tf.constant(np.tile(np.asarray(prompt_ids, np.int32)[None], [n_samples, 1]))
        ids = self._loop(prompt, tf.fill([n_samples], P), P + int(length), _seed(seed), tf.zeros([0], tf.int32),
                         _key(sampling))
        return ids.numpy()[:, P:]

    def generate_batch(self, prompts, max_length, *, sampler, seed=0, stop_token_ids=()):
        """(ids [B, max_length], ends [B]) of prompts (lists of ids, any lengths) and a `samplers` object.

        Row b holds prompt b then its new tokens; ends[b] is where its tokens end: max_length, or
        just after its first new stop token (positions after it hold anything). Prompts are padded to
        a bucket of lengths (`prompt_bucket`), so calls of near lengths reuse one traced loop.
        """
        lengths = self.check_prompts(prompts, max_length)
        prompt = np.zeros((len(prompts), prompt_bucket(max(lengths), max_length)), np.int32)  # [B, P]
        for row, ids in zip(prompt, prompts):
            row[:len(ids)] = ids
        # tensors, not NumPy arrays: a tf.function keys its traces on a tensor's shape, on an array's values
        prompt, lengths_t = tf.constant(prompt), tf.constant(lengths)
        stop = tf.constant(list(stop_token_ids), tf.int32, shape=[len(stop_token_ids)])
        if isinstance(sampler, BeamSampler):
            ids = self._beam_loop(prompt, lengths_t, int(max_length), stop, sampler.num_beams, sampler.temperature)
        else:
            ids = self._loop(prompt, lengths_t, int(max_length), _seed(seed), stop, _key(sampler.sampling()))
        ids = ids.numpy()
        return ids, np.array([stop_end(row, n, stop_token_ids) for row, n in zip(ids, lengths)])

    def check_prompts(self, prompts, max_length):
        """The prompts' lengths (int32 [B]); a one-line Gpt1Error for an empty or too long prompt or max_length."""
        if not 1 < max_length <= self.cfg.n_ctx:
            raise ConfigError(f"max_length {max_length}: GPT-1's context holds 2..{self.cfg.n_ctx} tokens")
        if not len(prompts):
            raise Gpt1Error("no prompt: give at least one")
        lengths = np.array([len(ids) for ids in prompts], np.int32)
        for i, n in enumerate(lengths):
            if not n:
                raise Gpt1Error(f"prompt {i} is empty: give at least one token")
            if n >= self.cfg.n_ctx:
                raise Gpt1Error(f"prompt {i} has {n} tokens: GPT-1's context holds {self.cfg.n_ctx}, "
                                "with room for at least one new token")
            if n >= max_length:
                raise Gpt1Error(f"prompt {i} has {n} tokens: max_length {max_length} leaves no room for a new one")
        return lengths

    def room(self, prompt_ids):
        """How many new tokens fit after the prompt in n_ctx positions."""
        return self.cfg.n_ctx - len(prompt_ids)


def prompt_bucket(longest, max_length):
    """The padded prompt length: the next power of two (at least 8), at most max_length."""
    return min(max(8, 1 << int(longest - 1).bit_length()), max_length)


def stop_end(ids, prompt_length, stop_token_ids):
    """Where a row's tokens end: just after its first stop token after the prompt, else len(ids)."""
    hits = np.flatnonzero(np.isin(ids[prompt_length:], list(stop_token_ids)))
    return prompt_length + int(hits[0]) + 1 if len(hits) else len(ids)


def _put(ids, i, tok):
    """ids [B, T] with column i set to tok [B] (a select: no dynamic update, XLA-friendly)."""
    return tf.where(tf.range(tf.shape(ids)[1])[None] == i, tok[:, None], ids)


def _is_stop(tok, stop_ids):
    """[B] whether each token is one of stop_ids [S] (none when S is 0)."""
    return tf.reduce_any(tok[:, None] == stop_ids[None], axis=1)


def _key(sampling):
    """A Sampling as the tuple of its fields: tf.function keys traces on such values, on other objects by identity."""
    return dataclasses.astuple(sampling)


def _seed(seed):
    return tf.constant([seed % 2 ** 31, seed // 2 ** 31], tf.int32)
