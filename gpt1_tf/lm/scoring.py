"""Scoring text under GPT-1: next-token losses over sliding windows, each token scored once (generate.py --score).

The LM head is the tied embedding over the n_vocab BPE rows only (`heads.next_token_losses`), as
in generation; the loss of the same windows is pretraining's (`pretraining.LMTrainer.loss`).
"""
import numpy as np
import tensorflow as tf

from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.heads import next_token_losses
from gpt1_tf.network.model import with_positions

SCORE_STRIDE_FRACTION = 2  # sliding windows advance by n_ctx // 2 tokens


def windows(n_tokens, n_ctx, stride=None):
    """Sliding windows (start, end, first scored) covering a text of n_tokens: each token is scored once.

    A text of at most n_ctx tokens is one window. Longer ones: windows of n_ctx tokens advancing by
    `stride` (default n_ctx // 2); each scores only the tokens the previous window did not, so every
    prediction after the first window sees at least n_ctx - stride tokens of context. A window keeps
    at least one token of the previous one (the context of its first scored token), so a stride of
    n_ctx or more advances by n_ctx - 1.
    """
    if n_tokens <= n_ctx:
        return [(0, n_tokens, 1)]
    if n_ctx < 2:
        raise Gpt1Error(f"a model of {n_ctx} position cannot score a text: each prediction needs a token before it")
    stride = min(stride or n_ctx // SCORE_STRIDE_FRACTION, n_ctx - 1)
    out, start = [(0, n_ctx, 1)], stride
    while out[-1][1] < n_tokens:
        end = min(start + n_ctx, n_tokens)
        out.append((end - n_ctx, end, out[-1][1]))
        start += stride
    return out


def token_losses(model, ids, stride=None):
    """Next-token cross-entropies (natural log) of ids [n] under the model: [n - 1] (sliding windows)."""
    cfg, ids = model.cfg, np.asarray(ids, np.int32)
    losses = []
    for start, end, first in windows(len(ids), cfg.n_ctx, stride):
        x = tf.constant(ids[None, start:end])
        h, we = model.transformer.hidden(with_positions(x, cfg))
        nll = next_token_losses(h, we, x, cfg.n_vocab)[0].numpy()
        losses.append(nll[first - start - 1:])
    return np.concatenate(losses)
