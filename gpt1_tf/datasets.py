"""Story Cloze (ROCStories) readers and the original's batching helpers; plain Python and NumPy.

Mirrors `datasets.py` and the data half of `train.py` in openai/finetune-transformer-lm, with
every malformed input reported as one-line `DataError("path:line: problem")`.
"""

import csv
import io
import os
import sys

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from gpt1_tf.errors import DataError
from gpt1_tf.files import read_text

# The seed the original passed to train_test_split for the train/valid split of the val file.
SEED = 3535999445

VAL_FILE = "cloze_test_val__spring2016 - cloze_test_ALL_val.csv"
TEST_FILE = "cloze_test_test__spring2016 - cloze_test_ALL_test.csv"
HEADER = (
    "InputStoryid",
    "InputSentence1",
    "InputSentence2",
    "InputSentence3",
    "InputSentence4",
    "RandomFifthSentenceQuiz1",
    "RandomFifthSentenceQuiz2",
    "AnswerRightEnding",
)
ROCSTORIES_URL = "https://cs.rochester.edu/nlp/rocstories/"
SPECIAL_TOKENS = ("_start_", "_delimiter_", "_classify_")


def _read_utf8(path):
    """Return the text of `path`, decoded strictly; a stray byte is reported with its line."""
    if not os.path.isfile(path):
        raise DataError(
            path,
            "file not found; the Story Cloze Test files come from the ROCStories website "
            f"(registration required: {ROCSTORIES_URL})",
        )
    # A UTF-8 byte-order mark (spreadsheet exports add one) is not part of the header.
    return read_text(path, "Story Cloze file", bom=True)


def _csv_rows(path, text):
    """Yield (first line, row) for each CSV record; a malformed record raises DataError."""
    # strict: an unterminated quote (a truncated file) raises instead of silently closing the field.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problem = str(err)
            if "unexpected end of data" in problem:
                problem = "unterminated quoted field (is the file truncated?)"
            raise DataError(path, f"malformed CSV: {problem}", start) from None
        yield start, row
        start = reader.line_num + 1


def _rocstories(path):
    """Read one Story Cloze CSV -> (stories, endings1, endings2, labels), labels 0 or 1."""
    text = _read_utf8(path)
    rows = _csv_rows(path, text)
    first = next(rows, None)
    if first is None:
        raise DataError(path, "empty file; expected the Story Cloze header " + ",".join(HEADER))
    line, header = first
    if tuple(header) != HEADER:
        raise DataError(path, f"header is {','.join(header)!r}, expected {','.join(HEADER)!r}", line)
    stories, endings1, endings2, labels = [], [], [], []
    for line, row in rows:
        if len(row) != len(HEADER):
            raise DataError(
                path,
                f"row has {len(row)} fields, expected {len(HEADER)} (a truncated or malformed row)",
                line,
            )
        if row[-1] not in ("1", "2"):
            raise DataError(path, f"AnswerRightEnding is {row[-1]!r}, expected '1' or '2'", line)
        stories.append(" ".join(row[1:5]))
        endings1.append(row[5])
        endings2.append(row[6])
        labels.append(int(row[-1]) - 1)
    if not stories:
        raise DataError(path, "no stories after the header")
    return stories, endings1, endings2, labels


def _check_data_dir(data_dir):
    """Fail early, naming the folder, when it is missing or empty."""
    if not os.path.isdir(data_dir):
        raise DataError(
            data_dir,
            f"data folder not found; it should hold {VAL_FILE!r} and {TEST_FILE!r} (from the ROCStories "
            f"website, registration required: {ROCSTORIES_URL})",
        )
    if not os.listdir(data_dir):
        raise DataError(
            data_dir,
            f"data folder is empty; put {VAL_FILE!r} and {TEST_FILE!r} there (from the ROCStories "
            f"website, registration required: {ROCSTORIES_URL})",
        )


def rocstories(data_dir, n_train=1497, n_valid=374):
    """Story Cloze splits: ((trX1, trX2, trX3, trY), (vaX1, vaX2, vaX3, vaY), (teX1, teX2, teX3)).

    Train and valid both come from the val file (train_test_split, test_size=n_valid, the
    original's seed); the test file gives the test split. `n_train` is unused, as in the original
    (the train split is whatever is left).
    """
    del n_train  # kept for the original's signature
    _check_data_dir(data_dir)
    val_path = os.path.join(data_dir, VAL_FILE)
    storys, comps1, comps2, ys = _rocstories(val_path)
    if len(storys) < n_valid + 2:
        raise DataError(
            val_path,
            f"{len(storys)} stories, but n_valid={n_valid} needs at least {n_valid + 2} "
            "(the rest, at least 2, is the train split)",
        )
    teX1, teX2, teX3, _ = _rocstories(os.path.join(data_dir, TEST_FILE))
    (trX1, vaX1, trX2, vaX2, trX3, vaX3, trY, vaY) = train_test_split(
        storys, comps1, comps2, ys, test_size=n_valid, random_state=SEED
    )
    trY = np.asarray(trY, dtype=np.int32)
    vaY = np.asarray(vaY, dtype=np.int32)
    train = (list(trX1), list(trX2), list(trX3), trY)
    valid = (list(vaX1), list(vaX2), list(vaX3), vaY)
    return train, valid, (teX1, teX2, teX3)


def rocstories_test_labels(data_dir):
    """The test file's labels (0 or 1) as an int32 array, for `analysis`."""
    _check_data_dir(data_dir)
    *_, labels = _rocstories(os.path.join(data_dir, TEST_FILE))
    return np.asarray(labels, dtype=np.int32)


def _is_text_field(field):
    """A field to encode is a non-empty list/tuple of str (label arrays pass through)."""
    return isinstance(field, (list, tuple)) and len(field) > 0 and isinstance(field[0], str)


def encode_dataset(splits, *, encoder):
    """Encode every text field of every split with `encoder.encode`; other fields pass through.

    All texts go through one batched `encode` call (one progress bar, one shared BPE cache); the
    result equals encoding each field separately, as the original did, since `encode` is per text.
    """
    texts = [text for split in splits for field in split if _is_text_field(field) for text in field]
    ids = iter(encoder.encode(texts))
    encoded_splits = []
    for split in splits:
        fields = []
        for field in split:
            if _is_text_field(field):
                field = [next(ids) for _ in field]
            fields.append(field)
        encoded_splits.append(fields)
    return encoded_splits


def special_ids(n_vocab):
    """Ids of the special tokens appended after the BPE vocabulary."""
    return {name: n_vocab + i for i, name in enumerate(SPECIAL_TOKENS)}


def max_len_for(n_ctx):
    """Tokens kept per field: room for story + ending + 3 specials within n_ctx."""
    return n_ctx // 2 - 2


def compute_n_ctx(splits_X, n_ctx):
    """The context actually needed over all splits (train, valid AND test), capped at the CLI n_ctx.

    `splits_X` is a list of (X1, X2, X3) triples of encoded stories and endings.
    """
    max_len = max_len_for(n_ctx)
    needed = max(
        len(x1[:max_len]) + max(len(x2[:max_len]), len(x3[:max_len]))
        for X1, X2, X3 in splits_X
        for x1, x2, x3 in zip(X1, X2, X3)
    )
    return min(needed + 3, n_ctx)


def transform_roc(X1, X2, X3, *, n_ctx, max_len, n_vocab, n_special=3):
    """Build the model inputs: xmb int32 [N, 2, n_ctx, 2] (token, position ids), mmb float32 [N, 2, n_ctx].

    Sequence k of story i is [start] + story[:max_len] + [delimiter] + ending_k[:max_len] + [classify].
    """
    ids = special_ids(n_vocab)
    start, delimiter, clf_token = ids["_start_"], ids["_delimiter_"], ids["_classify_"]
    n_batch = len(X1)
    xmb = np.zeros((n_batch, 2, n_ctx, 2), dtype=np.int32)  # [story, ending, position, token|position]
    mmb = np.zeros((n_batch, 2, n_ctx), dtype=np.float32)  # [story, ending, position]
    for i, (x1, x2, x3) in enumerate(zip(X1, X2, X3)):
        for k, ending in enumerate((x2, x3)):
            x = [start] + list(x1[:max_len]) + [delimiter] + list(ending[:max_len]) + [clf_token]
            assert len(x) <= n_ctx, f"story {i} ending {k}: {len(x)} tokens exceed n_ctx={n_ctx}"
            xmb[i, k, : len(x), 0] = x
            mmb[i, k, : len(x)] = 1
    # Position ids index the rows after the BPE and special rows of the embedding matrix.
    xmb[:, :, :, 1] = np.arange(n_vocab + n_special, n_vocab + n_special + n_ctx)
    return xmb, mmb


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
