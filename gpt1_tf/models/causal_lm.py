"""`GPT1CausalLM`: GPT-1 as keras-hub's causal language model: `generate` and `score` on raw text.

A backbone, a tokenizer and the tied LM head over the 40,478 token rows (`network.heads.token_logits`),
nothing else: decoding is `gpt1_tf.lm.generation` (the key/value cache of `Transformer.hidden_with_cache`,
sampling, beam search), the samplers `gpt1_tf.lm.samplers`, scoring `gpt1_tf.lm.scoring` (sliding
windows), the text rule of scoring pretraining's (`data.corpus.text_ids`). Here: text in and out,
stopping, and one traced decoding loop per shape, kept across calls until `compile` changes the sampler.
"""
import math

import keras
import numpy as np

from gpt1_tf.data.corpus import text_ids
from gpt1_tf.errors import ConfigError, DataError
from gpt1_tf.lm import samplers
from gpt1_tf.lm.generation import Generator
from gpt1_tf.lm.scoring import token_losses
from gpt1_tf.models.backbone import GPT1Backbone
from gpt1_tf.models.tokenizer import GPT1Tokenizer
from gpt1_tf.network.heads import token_logits

DEFAULT_SAMPLER = "top_k"  # keras-hub's CausalLM default (TopKSampler(k=5))


@keras.saving.register_keras_serializable("gpt1_tf")
class GPT1CausalLM(keras.Model):
    """GPT-1 with its LM head: token ids [B, T] -> next-token logits [B, T, vocabulary_size]; `generate`, `score`.

    `backbone`: a `GPT1Backbone`; `tokenizer`: a `GPT1Tokenizer` (None: the packaged vocabulary).
    """

    def __init__(self, backbone, tokenizer=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone, self.tokenizer = backbone, tokenizer or GPT1Tokenizer()
        self.sampler, self.generate_jit_compile, self._generator = samplers.get(DEFAULT_SAMPLER), False, None

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """The LM of any source `GPT1Backbone.from_preset` reads (its kwargs too), with the source's tokenizer files."""
        return cls(GPT1Backbone.from_preset(preset, **kwargs), GPT1Tokenizer.from_preset(preset))

    def save_to_preset(self, preset_dir):
        """The backbone's preset folder (`GPT1Backbone.save_to_preset`) with this LM's tokenizer files; the head is tied."""
        self.backbone.save_to_preset(preset_dir, self.tokenizer)

    def call(self, inputs, training=False):
        """{"token_ids", "padding_mask"} (or the ids alone) -> logits [B, T, vocabulary_size] over the BPE rows."""
        h = self.backbone(inputs, training=training)
        return token_logits(h, self.backbone.transformer.we, self.backbone.cfg.n_vocab)

    def compile(self, *, sampler=DEFAULT_SAMPLER, jit_compile=False, **kwargs):
        """Choose the sampler (a name of `samplers.SAMPLERS` or a sampler object) and whether decoding uses XLA.

        Resets the traced decoding loops: the next `generate` traces anew. Other keyword arguments
        go to `keras.Model.compile`.
        """
        self.sampler = samplers.get(sampler)  # checked before anything changes
        super().compile(jit_compile=jit_compile, **kwargs)
        self.generate_jit_compile, self._generator = bool(jit_compile), None

    @property
    def generator(self):
        """The decoding loops (`lm.generation.Generator`): traced once per shape, kept until `compile`."""
        if self._generator is None:
            self._generator = Generator(self.backbone, jit_compile=self.generate_jit_compile)
        return self._generator

    def generate(self, inputs, max_length=None, stop_token_ids=None, stop=None, strip_prompt=False):
        """Continue one text (-> one text) or a list of texts (-> a list), each as it would be alone.

        max_length: tokens in all, prompt and new ones (default: the backbone's positions).
        stop_token_ids: ids that end a text (kept in it); the loop ends once every text has made one.
        stop: strings that cut the generated text at their first occurrence (not kept).
        strip_prompt: return the new text only. `inputs` may also be keras-hub's preprocessed
        {"token_ids": [B, T], "padding_mask": [B, T]} (right-padded): then the result is that dict
        [B, max_length] with the new tokens, the mask True up to each row's end.
        """
        max_length = max_length or self.backbone.cfg.n_ctx
        if isinstance(inputs, dict):
            return self._generate_ids(inputs, max_length, stop_token_ids)
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        stop = [stop] if isinstance(stop, str) else list(stop or ())
        prompts = self.tokenizer.tokenize(texts)
        ids, ends = self._decode(prompts, max_length, stop_token_ids)
        out = [self._text(row[:len(p)], row[len(p):end], stop, strip_prompt) for row, p, end in zip(ids, prompts, ends)]
        return out[0] if isinstance(inputs, str) else out

    def _generate_ids(self, inputs, max_length, stop_token_ids):
        mask = np.asarray(inputs["padding_mask"], bool)
        token_ids = np.asarray(inputs["token_ids"])
        prompts = [row[:n] for row, n in zip(token_ids, mask.sum(1))]
        ids, ends = self._decode(prompts, max_length, stop_token_ids)
        return {"token_ids": ids, "padding_mask": np.arange(max_length)[None] < ends[:, None]}

    def _decode(self, prompts, max_length, stop_token_ids):
        sampler = self.sampler
        seed = getattr(sampler, "seed", None)
        seed = np.random.randint(2 ** 31) if seed is None else seed  # no seed: a fresh one each call
        return self.generator.generate_batch(prompts, max_length, sampler=sampler, seed=seed,
                                             stop_token_ids=_stop_ids(stop_token_ids, self.backbone.cfg.n_vocab))

    def _text(self, prompt, new, stop, strip_prompt):
        """The decoded text of prompt + new ids, cut at the first stop string in the new part."""
        head, text = self.tokenizer.detokenize(list(prompt)), self.tokenizer.detokenize(list(prompt) + list(new))
        tail = text[len(head):]  # decoding is piece by piece: the new tokens' text follows the prompt's
        cuts = [tail.find(s) for s in stop if s and s in tail]
        tail = tail[:min(cuts)] if cuts else tail
        return tail.strip() if strip_prompt else (head + tail).rstrip()

    def score(self, texts, stride=None):
        """Per-token log-probabilities and perplexity of one text (-> a dict) or a list of texts (-> a dict of lists).

        {"log_probs": float32 [n - 1] (of tokens 1..n-1, each given those before), "perplexity": float}.
        A text is read as pretraining reads it (lines joined by the newline token) and scored in
        sliding windows of the backbone's positions advancing by `stride` (`lm.scoring`).
        """
        single = isinstance(texts, str)
        log_probs = []
        for i, text in enumerate([texts] if single else texts):
            ids = text_ids(text, self.tokenizer.encoder)
            if len(ids) < 2:
                raise DataError(f"text {i}", f"{len(ids)} tokens: scoring needs at least 2")
            log_probs.append(-token_losses(self.backbone, ids, stride).astype(np.float32))
        perplexity = [math.exp(-float(lp.mean())) for lp in log_probs]
        if single:
            return {"log_probs": log_probs[0], "perplexity": perplexity[0]}
        return {"log_probs": log_probs, "perplexity": perplexity}


def _stop_ids(stop_token_ids, n_vocab):
    """The stop ids as a tuple of ints, each a token row (0..n_vocab - 1)."""
    ids = tuple(int(i) for i in (stop_token_ids or ()))
    bad = [i for i in ids if not 0 <= i < n_vocab]
    if bad:
        raise ConfigError(f"stop_token_ids {bad}: token ids are 0..{n_vocab - 1}")
    return ids
