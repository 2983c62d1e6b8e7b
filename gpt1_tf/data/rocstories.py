"""Story Cloze (ROCStories) readers: files -> plain Python examples (stories, endings, labels).

Mirrors `datasets.py` in openai/finetune-transformer-lm, with every malformed input reported as
one-line `DataError("path:line: problem")`. The input transformations (examples -> model arrays)
and batching are `gpt1_tf.data.transforms`.
"""

import os

import numpy as np

from gpt1_tf.data.splits import check_room, split_valid
from gpt1_tf.errors import DataError
from gpt1_tf.files import csv_rows, read_text

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


def _rocstories(path):
    """Read one Story Cloze CSV -> (stories, endings1, endings2, labels), labels 0 or 1."""
    text = _read_utf8(path)
    rows = csv_rows(path, text)
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
        empty = [name for name, field in zip(HEADER[1:7], row[1:7]) if not field.strip()]
        if empty:
            raise DataError(path, f"empty text in {empty[0]} (every reader refuses empty text)", line)
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
    check_room(f"{len(storys)} stories", len(storys), n_valid, val_path)
    teX1, teX2, teX3, _ = _rocstories(os.path.join(data_dir, TEST_FILE))
    (trX1, vaX1, trX2, vaX2, trX3, vaX3, trY, vaY) = split_valid(storys, comps1, comps2, ys, n_valid=n_valid)
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
