"""A user's own CSV, TSV or JSONL files with named columns -> `Example`s (train.py --dataset generic).

A .csv has a header (quoting as the csv module reads it), a .tsv a header and quoting off, a .jsonl
one object a line. A train or dev file labels every row; a test file every row or none.
"""
import os

from gpt1_tf.data.rows import Example, field, json_object, label_of, lines
from gpt1_tf.data.tasks import FORMATS
from gpt1_tf.errors import DataError
from gpt1_tf.files import csv_rows, read_text


def _records(path):
    """Yield (line, {column: value}) from a .csv (with header), .tsv (header, quoting off) or .jsonl file."""
    text = read_text(path, "data file", bom=True)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".jsonl":
        for line, row in lines(text):
            yield line, json_object(path, line, row)
        return
    if ext not in (".csv", ".tsv"):
        raise DataError(path, "unknown file type; expected .csv, .tsv or .jsonl")
    if ext == ".csv":
        rows = csv_rows(path, text)
    else:
        rows = ((line, row.split("\t")) for line, row in lines(text))
    first = next(rows, None)
    if first is None:
        raise DataError(path, "empty file; expected a header row")
    for line, row in rows:
        if len(row) != len(first[1]):
            raise DataError(path, f"row has {len(row)} fields, expected {len(first[1])}", line)
        yield line, dict(zip(first[1], row))


def _generic_file(path, text_columns, choice_columns, label_column, labels, task_format, need_label):
    """One generic file -> Examples. A train or dev file (`need_label`) has a label in every row; a test
    file in every row or in none (then label None: nothing to score against)."""
    examples, labelled = [], None
    for line, row in _records(path):
        texts = tuple(str(field(path, line, row, c, object)) for c in text_columns)
        choices = tuple(str(field(path, line, row, c, object)) for c in choice_columns)
        if not all(t.strip() for t in texts + choices):
            raise DataError(path, "empty text", line)
        label = row.get(label_column) if label_column else None
        if label_column:
            labelled = need_label or (label is not None if labelled is None else labelled)
            _check_label_present(path, line, label_column, label is not None, labelled, need_label)
        if label is not None:
            label = label_of(path, line, str(label), labels)
        examples.append(Example(texts, label=label, choices=choices))
    if not examples:
        raise DataError(path, "no examples")
    return examples


def _check_label_present(path, line, column, present, wanted, need_label):
    if present == wanted:
        return
    if present:
        raise DataError(path, f"{column!r} here but not in the rows before (a test file labels every row or none)", line)
    why = "a train or dev file labels every row" if need_label else "the rows before have one"
    raise DataError(path, f"no {column!r} ({why})", line)


def generic_labels(path, label_column):
    """The sorted distinct values of a generic file's label column (class id = position)."""
    return sorted({str(r[label_column]) for _, r in _records(path) if r.get(label_column) is not None})


def generic(paths, *, text_columns, label_column=None, task_format, labels=None, choice_columns=()):
    """Examples from CSV/TSV/JSONL files with named columns: {split: [Example]}.

    `paths`: {split: path}, or a list of paths (split = file name without extension). Labels are
    `labels` (class id = position), else the sorted distinct labels of the first file; a similarity
    task without `labels` reads the label as a float score.
    """
    if task_format not in FORMATS:
        raise DataError(task_format, f"unknown task format; expected one of {', '.join(FORMATS)}")
    if (task_format == "multiple_choice") != bool(choice_columns):
        raise DataError(task_format, "choice_columns are for (and needed by) the multiple_choice format")
    if not isinstance(paths, dict):
        paths = {os.path.splitext(os.path.basename(p))[0]: p for p in paths}
    if labels is None and label_column and task_format != "similarity":
        labels = generic_labels(next(iter(paths.values())), label_column)
    labels = tuple(str(x) for x in labels or ())
    if label_column and not labels and task_format != "similarity":
        raise DataError(next(iter(paths.values())), f"no values in column {label_column!r} to take the labels "
                                                    "from; pass labels=[...]")
    return {split: _generic_file(p, tuple(text_columns), tuple(choice_columns), label_column, labels, task_format,
                                 need_label=not split.startswith("test")) for split, p in paths.items()}
