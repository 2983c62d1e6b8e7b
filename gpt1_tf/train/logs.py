"""The run log `<log_dir>/<desc>.jsonl`: the one owner of its record kinds, for its writer and its readers.

The first line holds every argument and the time (the original's). A log is a FINE_TUNING log
(train.py's) or a PRETRAINING log (pretrain.py's, `<log_dir>/pretrain.jsonl` by default), told
apart by its evaluation records (`log_kind`). Each later line is one record, of one of these
kinds, told apart by the key it carries:

- EVALUATION (`va_cost`): n_epochs, n_updates, tr_cost, va_cost, then tr_/va_ of each of the task's
  metrics (Story Cloze: tr_acc, va_acc, the original's record; `gpt1_tf.metrics`), then any scores
  by group (`va_middle_acc`) and of further dev splits (`dev_mismatched_cost`, `dev_mismatched_acc`),
  and last THROUGHPUT_KEYS: tokens_per_s, the training steps' tokens a second since the previous
  evaluation (the first update, which compiles, left out), and mfu, the model FLOP utilisation as a
  fraction (`gpt1_tf.train.throughput`); each null where unknown. Timing, like `time`: two runs'
  records that are otherwise equal differ in them. pretrain.py's evaluation record has no task
  metric but PERPLEXITY (`va_ppl`, the held-out perplexity) after the costs; any of its values is
  null where it could not be measured (no held-out windows: `va_cost`, `va_ppl`)
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
PERPLEXITY = "va_ppl"  # of pretrain.py's evaluation records, and of no fine-tuning record
FINE_TUNING, PRETRAINING = "fine-tuning", "pretraining"  # the kinds of log


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


def read_evaluations(log_path):
    """[(line number, record)] of the evaluation records of a log, in order ([] when none yet); other kinds passed over.

    A missing or unreadable file, a line that is not a JSON object, a record of no known kind:
    one-line DataError naming the file (and line). Values are not checked: any may be null.
    """
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
            if not isinstance(record, dict):
                raise DataError(log_path, "not a JSON object (the arguments line)", line_no)
            seen_args = True
            continue
        kind = record_kind(record)
        if kind is None:
            raise DataError(log_path, f"not a record of a known kind ({', '.join(RECORD_KINDS)})", line_no)
        if kind == EVALUATION:
            evaluations.append((line_no, record))
    return evaluations


def read_log(log_path):
    """The evaluation records of a `<desc>.jsonl` log, each with a numeric `va_cost`; at least one."""
    evaluations = read_evaluations(log_path)
    for line_no, record in evaluations:
        if not isinstance(record[EVALUATION], (int, float)) or isinstance(record[EVALUATION], bool):
            raise DataError(log_path, "evaluation record without a numeric 'va_cost'", line_no)
    if not evaluations:
        raise DataError(log_path, "no evaluation records after the arguments line")
    return [record for _, record in evaluations]


def metric_names(record):
    """The task metrics of a fine-tuning evaluation record, in its order: each <m> with both tr_<m> and va_<m>."""
    return [key[3:] for key in record if key.startswith("tr_") and key != "tr_cost" and f"va_{key[3:]}" in record]


def log_kind(record):
    """The kind of log an evaluation record comes from: PRETRAINING (it has va_ppl), FINE_TUNING (task metrics), or None."""
    if PERPLEXITY in record:
        return None if metric_names(record) else PRETRAINING
    return FINE_TUNING if metric_names(record) else None
