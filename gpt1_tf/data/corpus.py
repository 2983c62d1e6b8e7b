"""Raw text for pretraining: files -> one cached token shard per file -> contiguous windows -> tf.data batches.

- `tokenize_corpus`: text files (globs allowed) through the BPE encoder into a cache folder, one
  uint16 `.npy` shard per file (40,478 ids fit), keyed by that file (absolute path, size, time)
  and the vocabulary (`shard_path`): a changed file is tokenized again alone, the others' shards
  are reused, and a shard that is unreadable (truncated, not a 1-D uint16 array, an id outside the
  vocabulary) is made again with a warning. Files are read as strict UTF-8; `n_procs` processes
  ("spawn": TensorFlow may be loaded here) tokenize the files, each with its own TextEncoder, to
  the same tokens as one. On a cluster, worker i of n tokenizes files i, i+n, ... and waits (with
  a limit) for the others' shards in the shared folder (`wait_for_shards`).
- The rule for text (`text_ids`, also `generate.py --score`'s): a file's non-empty lines, each
  tokenized alone, joined by GPT-1's newline token (`\n</w>`, what tokenizing the whole text gives
  between its lines); the files' lines follow each other so. A shard holds its file's lines joined
  so; the corpus (`TokenShards`) is the shards memory-mapped one after the other with a newline
  token between files, never loaded whole: a window reads only its own slices.
- `split_windows`: the corpus as n_ctx-token windows; the last `valid_fraction` of them held out.
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
import time

import numpy as np

from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.files import atomic_write, read_text

CACHE_VERSION = 3  # 2: lines joined by the newline token; 3: one shard per file
NEWLINE = "\n</w>"  # the BPE piece of a line break
MAX_ID = np.iinfo(np.uint16).max
LINES_PER_BATCH = 2048  # lines given to the encoder at once
SCAN = 1 << 24  # ids checked at once when a shard is read (bounded memory)
POLL_SECONDS = 0.5  # how often a cluster worker looks for the other workers' shards


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


def shard_path(path, text_encoder, cache_dir):
    """Where the token shard of this file (as it is now) under this vocabulary lives."""
    st = os.stat(path)
    stamp = [CACHE_VERSION, text_encoder.encoder_path, text_encoder.bpe_path, len(text_encoder.encoder),
             os.path.abspath(path), st.st_size, st.st_mtime_ns]
    key = hashlib.sha1(json.dumps(stamp).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"tokens-{key}.npy")


def tokenize_corpus(patterns, text_encoder, cache_dir, *, n_procs=1, worker=0, n_workers=1, timeout=300.0):
    """(TokenShards, cache_dir, whether every shard this worker owns was reused); tokenized where missing.

    Worker `worker` of `n_workers` (a cluster sharing `cache_dir`) tokenizes the files at positions
    worker, worker + n_workers, ... and waits for the others' shards (`wait_for_shards`, `timeout` s).
    """
    files = expand(patterns)
    paths = [shard_path(f, text_encoder, cache_dir) for f in files]
    n_vocab = len(text_encoder.encoder)
    mine = range(worker, len(files), n_workers)
    shards = {i: _reuse(files[i], paths[i], n_vocab) for i in mine}
    todo = [i for i in mine if shards[i] is None]
    tokenize_files([files[i] for i in todo], [paths[i] for i in todo], text_encoder, n_procs)
    shards.update((i, np.load(paths[i], mmap_mode="r")) for i in todo)
    others = [i for i in range(len(files)) if i not in shards]
    waited = wait_for_shards([files[i] for i in others], [paths[i] for i in others], n_vocab, timeout)
    shards.update(zip(others, waited))
    tokens = TokenShards([shards[i] for i in range(len(files))], newline_id(text_encoder))
    if not len(tokens):
        if n_workers == 1:
            for i in todo:
                os.unlink(paths[i])  # the empty shards this call wrote: no cache of an empty corpus
        raise DataError(files[0] if len(files) == 1 else ", ".join(files[:3]), "the corpus is empty: no tokens")
    return tokens, cache_dir, not todo


def _reuse(file, path, n_vocab):
    """The file's cached shard (memory-mapped), or None where there is none or it is unreadable (warned)."""
    if not os.path.exists(path):
        return None
    return read_shard(path, n_vocab, source=file)


def read_shard(path, n_vocab, source=None):
    """A shard memory-mapped, or None where it is unreadable (with a one-line warning naming `source`, if given)."""
    try:
        ids = np.load(path, mmap_mode="r")
        if ids.dtype != np.uint16 or ids.ndim != 1:
            raise ValueError(f"holds {ids.dtype} {ids.shape}, not a 1-D uint16 token array")
        top = max((int(ids[i:i + SCAN].max()) for i in range(0, len(ids), SCAN)), default=-1)
        if top >= n_vocab:
            raise ValueError(f"holds id {top}, outside the vocabulary of {n_vocab}: another vocabulary's")
        return ids
    except (OSError, ValueError, EOFError) as err:
        if source is not None:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"warning: {path}: unreadable token cache ({reason}); tokenizing {source} again", file=sys.stderr)
        return None


def wait_for_shards(files, paths, n_vocab, timeout):
    """The shards of `files` (other workers' to write), memory-mapped once each is readable.

    Gpt1Error naming the shard waited for when none has come for `timeout` s (each shard that
    comes restarts the wait: a long corpus is not cut short while its shards keep coming).
    """
    deadline, shards = time.monotonic() + timeout, []
    for file, path in zip(files, paths):
        while (ids := read_shard(path, n_vocab) if os.path.exists(path) else None) is None:
            if time.monotonic() > deadline:
                raise Gpt1Error(f"{path}: the token shard of {file} is not there after {timeout:g} s "
                                "(--cluster_timeout): is the worker that tokenizes it running, and is --cache_dir a "
                                "folder all workers share?")
            time.sleep(POLL_SECONDS)
        shards.append(ids)
        deadline = time.monotonic() + timeout
    return shards


def tokenize_files(files, paths, text_encoder, n_procs=1):
    """Tokenize each file into its shard (written atomically), with one progress bar (bytes of text)."""
    from tqdm import tqdm
    if not files:
        return
    total = sum(os.path.getsize(f) for f in files)
    with tqdm(total=total, desc="tokenizing the corpus", unit="B", unit_scale=True, ncols=100, file=sys.stderr,
              leave=False) as bar:
        if n_procs == 1 or len(files) == 1:
            for file, path in zip(files, paths):
                tokenize_file(file, path, text_encoder, progress=bar.update)
        else:
            _tokenize_in_processes(files, paths, text_encoder, n_procs, bar)


def _tokenize_in_processes(files, paths, text_encoder, n_procs, bar):
    """`tokenize_file` of each file in a pool of n_procs spawned processes; the first error stops the rest."""
    import concurrent.futures
    import multiprocessing
    pool = concurrent.futures.ProcessPoolExecutor(
        min(n_procs, len(files)), mp_context=multiprocessing.get_context("spawn"),  # no fork: TensorFlow's threads
        initializer=_start_encoder, initargs=(text_encoder.encoder_path, text_encoder.bpe_path))
    try:
        jobs = {pool.submit(_pool_tokenize, file, path): file for file, path in zip(files, paths)}
        for job in concurrent.futures.as_completed(jobs):
            job.result()
            bar.update(os.path.getsize(jobs[job]))
    finally:
        pool.shutdown(cancel_futures=True)


_POOL_ENCODER = []  # a pool process's own TextEncoder (set once by `_start_encoder`)


def _start_encoder(encoder_path, bpe_path):
    from gpt1_tf.data.text_utils import TextEncoder
    _POOL_ENCODER.append(TextEncoder(encoder_path, bpe_path))


def _pool_tokenize(file, path):
    return tokenize_file(file, path, _POOL_ENCODER[0])


def tokenize_file(file, path, text_encoder, progress=None):
    """One file's ids (its lines joined by the newline token) written to the shard `path`; the number of ids.

    `progress(n)`: called with the bytes of text done since its last call (an estimate within a file).
    """
    text = read_text(file, "corpus text")
    lines, size, done = lines_of(text), os.path.getsize(file), 0
    del text  # the lines hold it now
    nl = newline_id(text_encoder)
    newline = np.array([] if nl is None else [nl], np.uint16)
    parts = []
    for start in range(0, len(lines), LINES_PER_BATCH):
        ids = join_lines(text_encoder.encode(lines[start:start + LINES_PER_BATCH]), text_encoder)
        if ids.size and ids.max() > MAX_ID:
            raise Gpt1Error(f"token id {ids.max()} does not fit the uint16 cache (at most {MAX_ID})")
        parts += [newline, ids.astype(np.uint16)] if parts else [ids.astype(np.uint16)]  # join(a + b) = a, \n, b
        if progress is not None:
            now = size * min(start + LINES_PER_BATCH, len(lines)) // len(lines)
            progress(now - done)
            done = now
    ids = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
    atomic_write(path, lambda f: np.save(f, ids))
    if progress is not None and not lines:
        progress(size)
    return ids.size


class TokenShards:
    """The corpus as the shards one after the other, one newline token between files; never loaded whole.

    `shards`: 1-D uint16 arrays (memory-mapped), one per file; an empty one (a file with no
    non-empty line) adds nothing, not even a newline. `newline`: the joining id, or None where the
    vocabulary has no newline token. `window_ids` and `span` read only the slices they need.
    """
    def __init__(self, shards, newline=None):
        self.shards = [s for s in shards if len(s)]
        self.newline = newline
        gap = 0 if newline is None else 1
        sizes = np.array([len(s) for s in self.shards], np.int64)
        self.starts = (np.cumsum(sizes + gap) - sizes - gap).astype(np.int64)  # where each shard begins
        self.n_tokens = int(sizes.sum()) + gap * max(len(self.shards) - 1, 0)

    def __len__(self):
        return self.n_tokens

    def span(self, start, stop):
        """The ids at positions [start, stop) [stop - start] uint16, across shards and their joining newlines."""
        assert 0 <= start <= stop <= self.n_tokens, (start, stop, self.n_tokens)
        parts = []
        while start < stop:
            i = int(np.searchsorted(self.starts, start, side="right")) - 1
            begin = int(self.starts[i])
            end = begin + len(self.shards[i])
            if start < end:
                parts.append(self.shards[i][start - begin:min(stop, end) - begin])
                start = min(stop, end)
            else:  # the newline between shard i and the next
                parts.append(np.array([self.newline], np.uint16))
                start += 1
        return np.concatenate(parts) if parts else np.zeros(0, np.uint16)

    def window_ids(self, windows, n_ctx):
        """The ids [len(windows), n_ctx] int32 of these window numbers (window w: positions w*n_ctx ...)."""
        windows = np.asarray(windows, np.int64).reshape(-1)
        out = np.empty((len(windows), n_ctx), np.int32)
        for row, w in enumerate(windows):
            out[row] = self.span(int(w) * n_ctx, (int(w) + 1) * n_ctx)
        return out


def newline_id(text_encoder):
    """The id of the newline token, or None where the vocabulary has none."""
    return text_encoder.encoder.get(NEWLINE)


def lines_of(text):
    """The non-empty lines of a text, each a text to tokenize."""
    return [line for line in text.splitlines() if line.strip()]


def join_lines(line_ids, text_encoder):
    """Token ids of lines, joined by the newline token (where the vocabulary has one): [n] int64."""
    newline = [newline_id(text_encoder)] if newline_id(text_encoder) is not None else []
    parts = [np.asarray(ids + newline, np.int64) for ids in line_ids]
    if parts and newline:
        parts[-1] = parts[-1][:-1]  # between lines, not after the last
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def text_ids(text, text_encoder):
    """A text's token ids [n] as pretraining reads it (the module's rule: lines joined by the newline token)."""
    return join_lines(text_encoder.encode(lines_of(text)), text_encoder)


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
    """The token ids [len(windows), n_ctx] int32 of these window numbers, of a TokenShards or one array."""
    if isinstance(tokens, TokenShards):
        return tokens.window_ids(windows, n_ctx)
    rows = np.asarray(windows, np.int64)[:, None] * n_ctx + np.arange(n_ctx)
    return np.asarray(tokens[rows.ravel()], np.int32).reshape(len(rows), n_ctx)


def epoch_order(n_train, global_batch, seed, epoch):
    """The training windows of one epoch as [n_batches, global_batch]: a seeded permutation, cut (the rest dropped)."""
    order = np.random.RandomState([seed % 2 ** 32, epoch]).permutation(n_train)
    n_batches = n_train // global_batch
    return order[:n_batches * global_batch].reshape(n_batches, global_batch)


def batches(tokens, order, n_ctx, *, pipeline, n_pipelines, per_replica):
    """tf.data of one epoch from `epoch_order` rows, for input pipeline `pipeline` of `n_pipelines`.

    `tokens`: a TokenShards (or one array). Yields [per_replica, n_ctx] int32 batches: this
    pipeline's slice of each global batch, cut into its replicas' parts (consecutive elements go to
    consecutive local replicas); each batch reads only its own windows.
    """
    import tensorflow as tf
    width = order.shape[1] // n_pipelines
    mine = order[:, pipeline * width:(pipeline + 1) * width]  # [n_batches, this worker's windows]

    def fetch(windows):
        return window_ids(tokens, windows, n_ctx)

    ds = tf.data.Dataset.from_tensor_slices(mine.reshape(-1, per_replica))
    ds = ds.map(lambda w: tf.ensure_shape(tf.numpy_function(fetch, [w], tf.int32), [per_replica, n_ctx]))
    return ds.prefetch(tf.data.AUTOTUNE)
