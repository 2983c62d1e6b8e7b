"""Feature extraction: one vector per text from a `GPT1Backbone`'s last hidden states (`GPT1Backbone.embed`).

The texts are the tokenizer's BPE ids alone (no `_start_` or `_classify_`: those rows are a
fine-tune's, untrained in the pretrained table), run through the backbone's own `call` in batches
of similar lengths, padded on the right; attention is causal, so a text's states are those it has
alone. No network code here: only batching and pooling.
"""
import numpy as np

from gpt1_tf.errors import ConfigError, DataError
from gpt1_tf.models.tokenizer import GPT1Tokenizer

POOLINGS = ("last", "mean")


def embed(backbone, texts, *, pooling="last", tokenizer=None, batch_size=32):
    """float32 [N, hidden_dim]: "last" the state at each text's last token, "mean" the mean over its tokens.

    `texts`: a list of texts (one string: N = 1); `tokenizer`: None for the packaged vocabulary (a
    new `GPT1Tokenizer` each call: pass one to reuse it). A text longer than the backbone's
    positions, or one with no token, is a one-line `Gpt1Error`: nothing is cut silently.
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    ids = (tokenizer or GPT1Tokenizer()).tokenize(texts)
    for i, row in enumerate(ids):
        if not row or len(row) > backbone.cfg.n_ctx:
            raise DataError(f"text {i}", f"{len(row)} tokens; the backbone takes 1..{backbone.cfg.n_ctx}")
    order = np.argsort([len(row) for row in ids], kind="stable")  # similar lengths together: less padding
    out = np.zeros((len(ids), backbone.cfg.n_embd), np.float32)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        out[batch] = pooled(backbone, [ids[i] for i in batch], pooling)
    return out


def pooled(backbone, ids, pooling):
    """[B, hidden_dim] of one batch of id lists, padded on the right to the longest."""
    lengths = np.array([len(row) for row in ids])
    mask = np.arange(lengths.max()) < lengths[:, None]  # [B, T]: True on each text's tokens
    token_ids = np.zeros(mask.shape, np.int32)
    token_ids[mask] = np.concatenate(ids)
    h = np.asarray(backbone({"token_ids": token_ids, "padding_mask": mask}))  # [B, T, hidden_dim]
    if pooling == "last":
        return h[np.arange(len(ids)), lengths - 1]
    return (h * mask[..., None]).sum(1) / lengths[:, None]
