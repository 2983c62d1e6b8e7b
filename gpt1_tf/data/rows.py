"""What every reader shares: the `Example`, a file's lines and records with their numbers, labels, JSON fields.

Each helper reports malformed input as a one-line `DataError("path:line: problem")`; `warn_skipped`
is the one stderr line for the rows a train file's reader skipped. No TensorFlow.
"""
import dataclasses
import json
import math
import sys

from gpt1_tf.errors import DataError


@dataclasses.dataclass(frozen=True)
class Example:
    """One example as its file gives it."""
    texts: tuple          # classification: (text,); entailment / similarity: (a, b); multiple choice: the
                          # context's texts in reading order (Story Cloze: (story,); RACE: (article, question))
    label: object = None  # int class index, float score (STS-B), or None in a test file without labels
    choices: tuple = ()   # multiple choice only: the K answer texts
    index: object = None  # the row's id in its file (GLUE test `index`/`id`), for submissions
    group: object = None  # RACE: "middle" or "high"


def lines(text):
    """Yield (line number, line) for each non-blank line; only '\\n' ends a line (texts may hold \\x0b, \\u2028)."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line[:-1] if line.endswith("\r") else line
        if line.strip():
            yield number, line


def warn_skipped(path, what, line_numbers):
    """One stderr line for the rows a train file's reader skipped (`line_numbers`: theirs, in file order)."""
    if line_numbers:
        print(f"warning: {path}: skipped {len(line_numbers)} {what} (first at line {line_numbers[0]})", file=sys.stderr)


def label_of(path, line, value, labels):
    """A label string -> its class index in `labels`; no `labels`: a float score (STS-B)."""
    if not labels:
        try:
            score = float(value)
        except ValueError:
            score = float("nan")
        if not math.isfinite(score):
            raise DataError(path, f"score {value!r} is not a finite number", line)
        return score
    if value not in labels:
        raise DataError(path, f"unknown label {value!r}; expected one of {', '.join(labels)}", line)
    return labels.index(value)


def json_object(path, line, text):
    """Parse one JSON object; invalid JSON (a truncated file) or a non-object is a DataError."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err.msg}; is the file truncated?)", line) from None
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line)
    return obj


def field(path, line, obj, key, kind=str):
    """obj[key], which must be present and of type `kind`."""
    if key not in obj:
        raise DataError(path, f"no {key!r} field", line)
    if not isinstance(obj[key], kind):
        raise DataError(path, f"{key!r} is {type(obj[key]).__name__}, expected {kind.__name__}", line)
    return obj[key]
