"""Evaluation and prediction over whole splits: the original's `iter_apply` and `iter_predict`."""
import numpy as np

from gpt1_tf.data.batching import iter_data


def iter_apply(trainer, Xs, Ms, Ys, *, n_batch, desc=None):
    """clf logits [N, K or n_clf_out] of a split and its summed cost: the original's mean clf loss * n per batch, summed."""
    logits, cost = [], 0.0
    for xmb, mmb, ymb in iter_data(Xs, Ms, Ys, n_batch=n_batch, truncate=False, verbose=True, desc=desc):
        lg, losses = trainer.eval_batch(xmb, mmb, ymb)
        logits.append(lg)
        cost += float(np.mean(losses)) * len(xmb)
    return np.concatenate(logits, 0), cost


def iter_predict(trainer, Xs, Ms, *, n_batch, desc="predict"):
    """clf logits [N, K or n_clf_out] of a split without labels."""
    logits = []
    for xmb, mmb in iter_data(Xs, Ms, n_batch=n_batch, truncate=False, verbose=True, desc=desc):
        logits.append(trainer.eval_batch(xmb, mmb)[0])
    return np.concatenate(logits, 0)
