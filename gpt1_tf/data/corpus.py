"""Raw text for pretraining: files -> one cached token array -> contiguous windows -> tf.data batches.

- `tokenize_corpus`: text files (globs allowed) through the BPE encoder, once, into a uint16
  `.npy` (40,478 ids fit) in a cache folder, keyed by the files (paths, sizes, times) and the
  vocabulary; later runs reuse it, and an unreadable cache file is made again (with a warning).
  Files are read as strict UTF-8. The rule for text (`text_ids`, also `generate.py --score`'s): a
  file's non-empty lines, each tokenized alone, joined by GPT-1's newline token (`\n</w>`, what
  tokenizing the whole text gives between its lines); the files' lines follow each other so.
- `split_windows`: the array as n_ctx-token windows; the last `valid_fraction` of them held out.
- `batches`: one epoch's training windows as a tf.data pipeline for one input pipeline (worker).
  The order is a permutation of the windows seeded by (seed, epoch), the same on every worker, cut
  into global batches; each worker reads only its own slice of each global batch, so the union
  of the workers' batches is the one-process batch (the same arithmetic at any number of workers).
"""
import glob
import hashlib
import json
import os
import sys

import numpy as np

from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.files import atomic_write, read_text

CACHE_VERSION = 2  # 2: lines joined by the newline token
NEWLINE = "\n</w>"  # the BPE piece of a line break
MAX_ID = np.iinfo(np.uint16).max


def expand(patterns):
    """The files that the paths or globs name, in order (each pattern's matches sorted), each once."""
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataError(pattern, "no file matches this pattern")
        for path in matches:
            if not os.path.isfile(path):
                raise DataError(path, "no such file (a text file of the corpus)")
            if path not in files:
                files.append(path)
    return files


def cache_path(files, text_encoder, cache_dir):
    """Where the token array of these files under this vocabulary lives."""
    stamp = [CACHE_VERSION, text_encoder.encoder_path, text_encoder.bpe_path, len(text_encoder.encoder)]
    for path in files:
        st = os.stat(path)
        stamp.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    key = hashlib.sha1(json.dumps(stamp).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"tokens-{key}.npy")


def tokenize_corpus(patterns, text_encoder, cache_dir):
    """The corpus as one uint16 token array (memory-mapped from the cache); tokenized on first use."""
    files = expand(patterns)
    path = cache_path(files, text_encoder, cache_dir)
    if os.path.exists(path):
        tokens = _read_cache(path)
        if tokens is not None:
            return tokens, path, True
    texts = [read_text(f, "corpus text") for f in files]  # all read and checked before any work
    ids = _encode(files, texts, text_encoder)
    if ids.size == 0:
        raise DataError(files[0] if len(files) == 1 else ", ".join(files[:3]), "the corpus is empty: no tokens")
    atomic_write(path, lambda f: np.save(f, ids))
    return np.load(path, mmap_mode="r"), path, False


def _read_cache(path):
    """The cached token array (memory-mapped), or None with a one-line warning when the file is unreadable."""
    try:
        tokens = np.load(path, mmap_mode="r")
        if tokens.dtype != np.uint16 or tokens.ndim != 1 or not tokens.size:
            raise ValueError(f"holds {tokens.dtype} {tokens.shape}, not a 1-D uint16 token array")
        return tokens
    except (OSError, ValueError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"warning: {path}: unreadable token cache ({reason}); tokenizing the corpus again", file=sys.stderr)
        return None


def lines_of(text):
    """The non-empty lines of a text, each a text to tokenize."""
    return [line for line in text.splitlines() if line.strip()]


def join_lines(line_ids, text_encoder):
    """Token ids of lines, joined by the newline token (where the vocabulary has one): [n] int64."""
    newline = [text_encoder.encoder[NEWLINE]] if NEWLINE in text_encoder.encoder else []
    parts = [np.asarray(ids + newline, np.int64) for ids in line_ids]
    if parts and newline:
        parts[-1] = parts[-1][:-1]  # between lines, not after the last
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def text_ids(text, text_encoder):
    """A text's token ids [n] as pretraining reads it (the module's rule: lines joined by the newline token)."""
    return join_lines(text_encoder.encode(lines_of(text)), text_encoder)


def _encode(files, texts, text_encoder):
    from tqdm import tqdm
    lines = [line for text in texts for line in lines_of(text)]
    line_ids, batch = [], 2048
    with tqdm(total=len(lines), desc="tokenizing the corpus", unit="line", ncols=100, file=sys.stderr,
              leave=False) as bar:
        for start in range(0, len(lines), batch):
            chunk = lines[start:start + batch]
            line_ids.extend(text_encoder.encode(chunk))
            bar.update(len(chunk))
    ids = join_lines(line_ids, text_encoder)
    if ids.size and ids.max() > MAX_ID:
        raise Gpt1Error(f"token id {ids.max()} does not fit the uint16 cache (at most {MAX_ID})")
    return ids.astype(np.uint16)


def split_windows(n_tokens, n_ctx, valid_fraction, source="the corpus"):
    """(n_train, n_valid) windows of n_ctx tokens; the held-out ones are the last n_valid windows."""
    n = n_tokens // n_ctx
    n_valid = int(round(n * valid_fraction)) if valid_fraction > 0 else 0
    if valid_fraction > 0:
        n_valid = max(n_valid, 1)
    if n - n_valid < 1:
        raise DataError(source, f"{n_tokens} tokens make {n} windows of n_ctx {n_ctx}: too few for a training "
                                f"window and {n_valid} held out (lower --n_ctx or --valid_fraction, or add text)")
    return n - n_valid, n_valid


def window_ids(tokens, windows, n_ctx):
    """The token ids [len(windows), n_ctx] int32 of these window numbers."""
    rows = np.asarray(windows, np.int64)[:, None] * n_ctx + np.arange(n_ctx)
    return np.asarray(tokens[rows.ravel()], np.int32).reshape(len(rows), n_ctx)


def epoch_order(n_train, global_batch, seed, epoch):
    """The training windows of one epoch as [n_batches, global_batch]: a seeded permutation, cut (the rest dropped)."""
    order = np.random.RandomState([seed % 2 ** 32, epoch]).permutation(n_train)
    n_batches = n_train // global_batch
    return order[:n_batches * global_batch].reshape(n_batches, global_batch)


def batches(tokens, order, n_ctx, *, pipeline, n_pipelines, per_replica):
    """tf.data of one epoch from `epoch_order` rows, for input pipeline `pipeline` of `n_pipelines`.

    Yields [per_replica, n_ctx] int32 batches: this pipeline's slice of each global batch, cut into
    its replicas' parts (consecutive elements go to consecutive local replicas).
    """
    import tensorflow as tf
    width = order.shape[1] // n_pipelines
    mine = order[:, pipeline * width:(pipeline + 1) * width]  # [n_batches, this worker's windows]

    def fetch(windows):
        return window_ids(tokens, windows, n_ctx)

    ds = tf.data.Dataset.from_tensor_slices(mine.reshape(-1, per_replica))
    ds = ds.map(lambda w: tf.ensure_shape(tf.numpy_function(fetch, [w], tf.int32), [per_replica, n_ctx]))
    return ds.prefetch(tf.data.AUTOTUNE)
