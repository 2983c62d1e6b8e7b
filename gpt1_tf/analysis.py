"""Report valid and test accuracy of a submission (the original `analysis.py`), without pandas or TF."""

import csv
import io

from sklearn.metrics import accuracy_score

from gpt1_tf.datasets import rocstories_test_labels
from gpt1_tf.errors import DataError
from gpt1_tf.files import read_text
from gpt1_tf.logs import read_log

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
    logs = read_log(log_path)
    # The original took the va_acc of argmax(va_acc): the first maximum, i.e. max().
    valid_accuracy = max(log["va_acc"] for log in logs)
    print("ROCStories Valid Accuracy: %.2f" % (valid_accuracy))
    print("ROCStories Test Accuracy:  %.2f" % (test_accuracy))
    return valid_accuracy, test_accuracy

