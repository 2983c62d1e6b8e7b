"""The run log `<log_dir>/<desc>.jsonl`: the one owner of its record kinds, for its writer and its readers.

The first line holds every argument and the time (the original's). Each later line is one
record, of one of these kinds, told apart by the key it carries:

- EVALUATION (`va_cost`): n_epochs, n_updates, tr_cost, va_cost, then tr_/va_ of each of the task's
  metrics (Story Cloze: tr_acc, va_acc, the original's record; `gpt1_tf.metrics`), then any scores
  by group (`va_middle_acc`) and of further dev splits (`dev_mismatched_cost`, `dev_mismatched_acc`),
  and last THROUGHPUT_KEYS: tokens_per_s, the training steps' tokens a second since the previous
  evaluation (the first update, which compiles, left out), and mfu, the model FLOP utilisation as a
  fraction (`gpt1_tf.train.throughput`); each null where unknown. Timing, like `time`: two runs'
  records that are otherwise equal differ in them
- SKIPPED_UPDATE (`skipped_update`): an update dropped by `--nan_policy skip`
- LOSS_SCALE_OVERFLOW (`loss_scale_overflow`): an update skipped by float16 loss scaling
"""
import json
import math
import time

from gpt1_tf.errors import DataError
from gpt1_tf.files import atomic_write

EVALUATION, SKIPPED_UPDATE, LOSS_SCALE_OVERFLOW = "va_cost", "skipped_update", "loss_scale_overflow"
ORIGINAL_KEYS = ("n_epochs", "n_updates", "tr_cost", "va_cost")  # of every evaluation record, in this order
RECORD_KINDS = (EVALUATION, SKIPPED_UPDATE, LOSS_SCALE_OVERFLOW)
THROUGHPUT_KEYS = ("tokens_per_s", "mfu")  # the last of every evaluation record, in this order


def strict_json(record):
    """One JSON line that any strict parser reads: a non-finite float (NaN, infinity) is written as null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()},
                      allow_nan=False)


def last_evaluation_update(lines):
    """n_updates of the newest evaluation record among a log's lines (the arguments line first), or None."""
    for line in reversed(lines[1:]):
        record = json.loads(line)
        if record_kind(record) == EVALUATION:
            return record["n_updates"]
    return None


def record_kind(record):
    """The kind of a record (one of RECORD_KINDS), or None when it is none of them."""
    if not isinstance(record, dict):
        return None
    kinds = [kind for kind in RECORD_KINDS if kind in record]
    return kinds[0] if len(kinds) == 1 else None


class ResultLogger:
    """The original jsonl log (first line: all arguments + time), rewritten atomically on each line."""

    def __init__(self, path, lines=None, **kwargs):
        self.path = path
        if lines is None:
            kwargs.setdefault("time", time.time())
            lines = [strict_json(kwargs)]
        self.lines = list(lines)
        self._flush()

    def evaluation(self, *, n_epochs, n_updates, tr_cost, va_cost, tokens_per_s=None, mfu=None, **scores):
        """One evaluation: the costs, then `scores` (tr_<metric>, va_<metric>, ...) in the given order, then the throughput."""
        self._log(n_epochs=n_epochs, n_updates=n_updates, tr_cost=tr_cost, va_cost=va_cost, **scores,
                  tokens_per_s=tokens_per_s, mfu=mfu)

    def skipped_update(self, *, n_epochs, n_updates, n_skipped):
        self._log(n_epochs=n_epochs, n_updates=n_updates, **{SKIPPED_UPDATE: n_updates + 1}, n_skipped=n_skipped)

    def loss_scale_overflow(self, *, n_epochs, n_updates, loss_scale):
        self._log(n_epochs=n_epochs, n_updates=n_updates, **{LOSS_SCALE_OVERFLOW: n_updates + 1},
                  loss_scale=loss_scale)

    def _log(self, **kwargs):
        kwargs.setdefault("time", time.time())
        self.lines.append(strict_json(kwargs))
        self._flush()

    def _flush(self):
        atomic_write(self.path, lambda f: f.write(("\n".join(self.lines) + "\n").encode()))


def read_log(log_path):
    """The evaluation records of a `<desc>.jsonl` log; records of the other kinds are passed over."""
    try:
        with open(log_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(log_path, f"cannot read the training log ({err})") from None
    evaluations, seen_args = [], False
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError(log_path, "not a JSON object", line_no) from None
        if not seen_args:  # the arguments line
            seen_args = True
            continue
        kind = record_kind(record)
        if kind is None:
            raise DataError(log_path, f"not a record of a known kind ({', '.join(RECORD_KINDS)})", line_no)
        if kind == EVALUATION:
            if not isinstance(record[EVALUATION], (int, float)) or isinstance(record[EVALUATION], bool):
                raise DataError(log_path, "evaluation record without a numeric 'va_cost'", line_no)
            evaluations.append(record)
    if not evaluations:
        raise DataError(log_path, "no evaluation records after the arguments line")
    return evaluations
