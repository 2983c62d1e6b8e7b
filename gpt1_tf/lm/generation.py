"""GPT-1 as a language model: generation with a key/value cache (scoring is `gpt1_tf.lm.scoring`).

The LM head is the tied embedding over the n_vocab BPE rows only: a special-token or position row
is never scored or sampled (the original's head covered the whole table; see
pytorch-openai-transformer-lm #36).

    from gpt1_tf.network.config import Sampling
    from gpt1_tf.lm.generation import Generator
    from gpt1_tf.lm.scoring import token_losses
    gen = Generator(model)                        # model: a TransformerModel holding its weights
    ids = gen.generate(prompt_ids, 40, n_samples=2, sampling=Sampling(top_p=0.9), seed=1)  # [2, 40] new ids
    losses = token_losses(model, text_ids)        # [len(text_ids) - 1] next-token losses (sliding windows)

Generation runs one forward pass per new token over the cached keys and values of the positions
before it (`Transformer.hidden_with_cache`: the model's own blocks, given the cache): the cache is
[n_layer, 2, B, n_head, n_ctx, d] with static shapes, and the loop a `tf.while_loop` in one
`tf.function` (`jit_compile=True` compiles it with XLA). Each step computes what the full forward
computes at that position (the same layers, weights and masked softmax), so greedy decoding gives
the tokens a full re-run of the prefix would give.
"""
import numpy as np
import tensorflow as tf

from gpt1_tf.network.config import Sampling
from gpt1_tf.errors import Gpt1Error
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
    """Decoding with a key/value cache for a `TransformerModel` (no dropout): the loop and the sampling.

    Each pass is the model's own (`Transformer.hidden_with_cache`); only the LM head is applied here.
    """

    def __init__(self, model, jit_compile=False):
        self.model, self.cfg = model, model.cfg
        self._loop = tf.function(self._decode, jit_compile=jit_compile, reduce_retracing=True)

    def next_logits(self, h):
        """LM logits [B, n_vocab] of the last hidden states h [B, n_embd]: the tied head over the BPE rows."""
        return token_logits(h, self.model.we, self.cfg.n_vocab)

    # --- the loop ---------------------------------------------------------------------------------
    def _decode(self, prompt, length, seed, sampling):
        """prompt [B, P] -> the `length` new ids [length, B]: the prompt in one pass, then one pass per token."""
        body = self.model.transformer
        B, P = tf.shape(prompt)[0], tf.shape(prompt)[1]
        h, cache = body.hidden_with_cache(prompt, body.empty_cache(B), 0)
        logits = self.next_logits(h[:, -1])
        out = tf.TensorArray(tf.int32, size=length)

        def step(i, logits, cache, out):
            tok = self._choose(logits, seed, i, sampling)
            h, cache = body.hidden_with_cache(tok[:, None], cache, P + i)
            return i + 1, self.next_logits(h[:, -1]), cache, out.write(i, tok)

        _, _, _, out = tf.while_loop(lambda i, *_: i < length, step, [0, logits, cache, out])
        return out.stack()  # [length, B] (transposed by the caller: TF's int32 transpose warns on some CPUs)

    @staticmethod
    def _choose(logits, seed, i, sampling):
        if sampling.greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        step_seed = tf.random.experimental.stateless_fold_in(seed, i)
        return tf.random.stateless_categorical(filter_logits(logits, sampling), 1, step_seed, dtype=tf.int32)[:, 0]

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
        prompt = tf.constant(np.tile(np.asarray(prompt_ids, np.int32)[None], [n_samples, 1]))
        seed = tf.constant([seed % 2 ** 31, seed // 2 ** 31], tf.int32)
        return self._loop(prompt, int(length), seed, sampling).numpy().T

    def room(self, prompt_ids):
        """How many new tokens fit after the prompt in n_ctx positions."""
        return self.cfg.n_ctx - len(prompt_ids)
