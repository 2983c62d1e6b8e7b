"""Batching: the original's `iter_data` (openai/finetune-transformer-lm's utils.py), with a progress bar."""
import sys

from tqdm import tqdm


def iter_data(*datas, n_batch=128, truncate=False, verbose=False, max_batches=float("inf"), desc=None):
    """Yield batches of `n_batch` rows: one array if one data, else a tuple of slices.

    `truncate` drops the last partial batch (training); `max_batches` stops early.
    """
    n = len(datas[0])
    if truncate:
        n = (n // n_batch) * n_batch
    n = int(min(n, max_batches * n_batch))
    batches = range(0, n, n_batch)
    if verbose:
        batches = tqdm(batches, total=len(batches), file=sys.stderr, ncols=80, leave=False, desc=desc)
    for n_batches, i in enumerate(batches):
        if n_batches >= max_batches:
            return
        if len(datas) == 1:
            yield datas[0][i : i + n_batch]
        else:
            yield tuple(d[i : i + n_batch] for d in datas)
