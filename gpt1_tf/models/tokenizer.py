"""`GPT1Tokenizer`: the original's text encoder (ftfy + spaCy + BPE) with keras-hub's names.

Plain Python, no TensorFlow: tokenization is the original's `TextEncoder`
(`gpt1_tf.data.text_utils`); this wraps it with `tokenize` / `detokenize` and `from_preset`.
"""
import numpy as np

from gpt1_tf.data.text_utils import TextEncoder
from gpt1_tf.models import presets


class GPT1Tokenizer:
    """Texts -> BPE ids and back, with the vocabulary files `vocabulary` (token -> id JSON) and `merges`.

    None: the packaged files (`encoder_bpe_40000.json`, `vocab_40000.bpe`, OpenAI's).
    """

    def __init__(self, vocabulary=None, merges=None):
        self.encoder = TextEncoder(vocabulary, merges)

    @property
    def vocabulary_path(self):
        return self.encoder.encoder_path

    @property
    def merges_path(self):
        return self.encoder.bpe_path

    @property
    def vocabulary_size(self):
        """BPE tokens (40,478 for GPT-1's files); the special tokens and positions follow them (`network.tokens`)."""
        return len(self.encoder.encoder)

    def tokenize(self, texts):
        """One text -> its list of ids; a list of texts -> a list of id lists."""
        if isinstance(texts, str):
            return self.encoder.encode([texts])[0]
        return self.encoder.encode(texts)

    __call__ = tokenize

    def detokenize(self, ids):
        """One id sequence -> its text; a batch of them (lists, an array [B, T]) -> a list of texts."""
        ids = ids.numpy() if hasattr(ids, "numpy") else ids
        if len(ids) and np.ndim(ids[0]) > 0:
            return [self.encoder.decode(row) for row in ids]
        return self.encoder.decode(ids)

    @classmethod
    def from_preset(cls, preset):
        """The tokenizer of any source `GPT1Backbone.from_preset` takes: its vocabulary files, else the packaged ones."""
        return cls(*presets.vocabulary_files(preset))
