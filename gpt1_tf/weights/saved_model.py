"""Export a model as a TensorFlow SavedModel with two serving signatures (TF Serving, `tf.saved_model.load`).

`save_saved_model(model, path)` writes, with the weights the model holds:

- `score` (also `serving_default`): X int32 [B, K, T, 2] (token id, position id pairs, the layout of
  `gpt1_tf.network.tokens`, as `transform_task` builds them), M float32 [B, K, T] ->
  `logits` float32 (the head's logits, as `model(X, M, compute_lm=False)[0]`, no dropout) and
  `probabilities` float32 (their softmax over the last axis); a regression head (a similarity task
  without classes, e.g. STS-B) gives `logits` [B, 1] and `scores` [B] instead.
- `next_token_log_probs`: ids int32 [B, T] (token ids, specials allowed, T <= n_ctx), lengths int32 [B]
  (1 .. T; what follows a row's length is padding, any value) -> `log_probs` float32 [B, n_vocab]:
  the tied LM head at each row's last real token, log-softmaxed over the n_vocab BPE rows of `we`
  (not the special or position rows). Positions 0 .. T-1 are added inside.

The saved graph is plain TensorFlow: loading it needs no class of this package (nor of Keras).

    import tensorflow as tf
    served = tf.saved_model.load("models/gpt1/1")
    out = served.signatures["next_token_log_probs"](ids=tf.constant([[40478, 249, 1012, 0]]),
                                                    lengths=tf.constant([3]))
    out["log_probs"]  # [1, n_vocab]
    served.signatures["score"](X=X, M=M)["probabilities"]  # X, M from gpt1_tf.data.transforms.transform_task

TF Serving reads a model base path holding numbered version folders, so export to
`models/gpt1/1` (giving `models/gpt1/1/saved_model.pb`) and serve `--model_base_path=/abs/models/gpt1
--model_name=gpt1`; then, over REST:

    POST /v1/models/gpt1:predict
    {"signature_name": "next_token_log_probs", "inputs": {"ids": [[40478, 249, 1012, 0]], "lengths": [3]}}
"""
import os

import keras
import tensorflow as tf

from gpt1_tf.files import atomic_folder, check_output_folder
from gpt1_tf.network.heads import token_logits
from gpt1_tf.network.model import with_positions

SCORE_SIGNATURE = [tf.TensorSpec([None, None, None, 2], tf.int32, name="X"),
                   tf.TensorSpec([None, None, None], tf.float32, name="M")]
NEXT_TOKEN_SIGNATURE = [tf.TensorSpec([None, None], tf.int32, name="ids"),
                        tf.TensorSpec([None], tf.int32, name="lengths")]


def score_fn(model):
    """The `score` endpoint of `model`: (X, M) -> {logits, probabilities} or, for regression, {logits, scores}."""
    def score(X, M):
        # pool_only: the last block only at the `_classify_` positions (same outputs, fewer FLOPs)
        logits, _, _ = model(X, M, compute_lm=False, pool_only=True)
        logits = tf.cast(logits, tf.float32)
        if model.cfg.regression:
            return {"logits": logits, "scores": logits[:, 0]}
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}
    return score


def _checked_ids(ids, lengths, cfg):
    """ids with their padding zeroed (any padding value then works), after checking the real tokens and lengths."""
    T = tf.shape(ids)[1]
    real = tf.range(T)[None, :] < lengths[:, None]  # [B, T]
    checks = [
        tf.debugging.assert_less_equal(T, cfg.n_ctx, message=f"ids: more than n_ctx={cfg.n_ctx} tokens"),
        tf.debugging.assert_equal(tf.shape(lengths)[0], tf.shape(ids)[0], message="lengths: one per row of ids"),
        tf.debugging.assert_positive(lengths, message="lengths: each at least 1"),
        tf.debugging.assert_less_equal(lengths, T, message="lengths: each at most the width of ids"),
    ]
    with tf.control_dependencies(checks):
        ids = tf.where(real, ids, tf.zeros_like(ids))
    n_tokens = cfg.n_vocab + cfg.n_special
    in_range = tf.logical_and(ids >= 0, ids < n_tokens)
    check = tf.debugging.assert_equal(in_range, True, message=f"ids: a real token outside 0..{n_tokens - 1}")
    with tf.control_dependencies([check]):
        return tf.identity(ids)


def next_token_fn(model):
    """The `next_token_log_probs` endpoint of `model`: (ids, lengths) -> {log_probs [B, n_vocab]}."""
    cfg = model.cfg

    def next_token_log_probs(ids, lengths):
        X = with_positions(_checked_ids(ids, lengths, cfg), cfg)  # [B, T, 2]
        # the last block runs at each row's last real token only: h [B, n_embd]; causal attention
        # means the padding after it cannot change it
        h, we = model.transformer.hidden(X, pool=lengths - 1)
        # the tied LM head over the BPE rows only: a next token is never a special token or a position
        logits = token_logits(h, we, cfg.n_vocab)  # [B, n_vocab]
        return {"log_probs": tf.nn.log_softmax(logits, axis=-1)}
    return next_token_log_probs


def _write_archive(model, path):
    archive = keras.export.ExportArchive()
    archive.track(model)
    # the first endpoint is also `serving_default` (ExportArchive.write_out)
    archive.add_endpoint("score", score_fn(model), input_signature=SCORE_SIGNATURE)
    archive.add_endpoint("next_token_log_probs", next_token_fn(model), input_signature=NEXT_TOKEN_SIGNATURE)
    archive.write_out(path, verbose=False)


def save_saved_model(model, path):
    """Write `model` (a TransformerModel with its weights) as a SavedModel at `path`; returns `path`.

    Signatures `score` (= `serving_default`) and `next_token_log_probs` (see the module docstring).
    Written whole or not at all (`files.atomic_folder`): `path` must be new or an empty folder.
    """
    check_output_folder(path, "the SavedModel path")
    with atomic_folder(path) as tmp:
        _write_archive(model, tmp)
    return os.path.abspath(path)
