"""Report valid and test scores of a submission (the original `analysis.py`), without pandas or TF.

Story Cloze prints the original's two lines; another task prints its metrics (`gpt1_tf.metrics`),
by group where it has groups (RACE-m, RACE-h).
"""

import csv
import io
import os

import numpy as np
from sklearn.metrics import accuracy_score

from gpt1_tf import metrics
from gpt1_tf.data.tasks import TASKS, URLS
from gpt1_tf.data.rocstories import rocstories_test_labels
from gpt1_tf.errors import DataError
from gpt1_tf.files import read_text
from gpt1_tf.train.logs import read_log

PRED_HEADER = ["index", "prediction"]


def read_predictions(pred_path, n_expected):
    """Read `index\\tprediction` rows (0 or 1, indexes 0..n-1 in order) from a submission TSV."""
    text = read_text(pred_path, "predictions")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    if not rows or rows[0] != PRED_HEADER:
        got = "\t".join(rows[0]) if rows else ""
        raise DataError(pred_path, f"header is {got!r}, expected 'index\\tprediction'", 1)
    preds = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or row[0] != str(len(preds)) or row[1] not in ("0", "1"):
            raise DataError(
                pred_path, f"expected '{len(preds)}\\t<0 or 1>', got {chr(9).join(row)!r}", line
            )
        preds.append(int(row[1]))
    if len(preds) != n_expected:
        raise DataError(pred_path, f"{len(preds)} predictions, but the test file has {n_expected} stories")
    return preds


def rocstories(data_dir, pred_path, log_path):
    """Print and return (best valid accuracy in the log, test accuracy of the predictions), in %."""
    labels = rocstories_test_labels(data_dir)
    preds = read_predictions(pred_path, len(labels))
    test_accuracy = accuracy_score(labels, preds) * 100.0
    # The original took the va_acc of argmax(va_acc): the first maximum, i.e. max().
    valid_accuracy = best_record(read_log(log_path), "va_acc", log_path)["va_acc"]
    print("ROCStories Valid Accuracy: %.2f" % (valid_accuracy))
    print("ROCStories Test Accuracy:  %.2f" % (test_accuracy))
    return valid_accuracy, test_accuracy



def read_task_predictions(pred_path, split, labels):
    """A task submission's predictions, checked against its test split: class ids, or floats without labels."""
    text = read_text(pred_path, "predictions")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != PRED_HEADER:
        raise DataError(pred_path, "header is not 'index\\tprediction'", 1)
    if len(rows) - 1 != len(split.index):
        raise DataError(pred_path, f"{len(rows) - 1} predictions, but the {split.name} split has {len(split.index)} rows")
    preds = []
    for line, (row, index) in enumerate(zip(rows[1:], split.index), start=2):
        if len(row) != 2 or row[0] != str(index) or (labels and row[1] not in labels):
            raise DataError(pred_path, f"expected '{index}\\t<{'|'.join(labels) or 'score'}>', got {chr(9).join(row)!r}",
                            line)
        preds.append(labels.index(row[1]) if labels else _float(pred_path, line, row[1]))
    return np.asarray(preds)


def _float(path, line, value):
    try:
        return float(value)
    except ValueError:
        raise DataError(path, f"prediction {value!r} is not a number", line) from None


def best_record(records, key, log_path):
    """The first evaluation record with the highest `key` (the original's argmax)."""
    scored = [r for r in records if isinstance(r.get(key), (int, float))]
    if not scored:
        raise DataError(log_path, f"no {key!r} score in its evaluation records (the log of another task?)")
    return max(scored, key=lambda r: r[key])


def analyse(data_dir, data, pred_paths, log_path):
    """--analysis: the best validation scores in the log and, where the test split has labels, the test scores."""
    if data.task == "rocstories":
        return rocstories(data_dir, pred_paths[0], log_path)
    names = data.metrics
    best = best_record(read_log(log_path), f"va_{names[0]}", log_path)
    valid_prefixes = ["va"] + [s.name for s in data.extra_valid]  # MNLI: matched, then mismatched
    for i, (split, path) in enumerate(zip(data.tests, pred_paths)):
        title = os.path.splitext(os.path.basename(path))[0]
        prefix = valid_prefixes[i] if i < len(valid_prefixes) else "va"
        for name in names:
            print("%s Valid %s: %.2f" % (title, metrics.NAMES[name], best[f"{prefix}_{name}"]))
        if split.Y is None:
            where = URLS.get(TASKS[data.task].dataset, "the benchmark's server") if data.task in TASKS else "its owner"
            print(f"{title} Test: the labels are not public; submit {path} to {where}")
            continue
        preds = read_task_predictions(path, split, data.labels)
        groups = [(None, np.ones(len(preds), bool))] + [(g, split.groups == g) for g in
                                                         (dict.fromkeys(split.groups) if split.groups is not None else ())]
        for group, at in groups:
            for name, value in metrics.scores(names, split.Y[at], preds[at]).items():
                label = f"{title}-{group}" if group else title
                print("%s Test %s: %.2f" % (label, metrics.NAMES[name], value))
