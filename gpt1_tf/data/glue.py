"""GLUE's tab-separated files (and SciTail's, in the same shape): files -> `Example`s.

`glue(task, data_dir)` reads a GLUE task's splits from its folder (or the GLUE folder above it),
`scitail(data_dir)` SciTail's tsv_format files. Quoting is off: quote characters are text. A train
file's malformed rows are counted and skipped (one warning line); elsewhere they are an error.
"""
import dataclasses
import os

from gpt1_tf.data.rows import Example, label_of, lines, warn_skipped
from gpt1_tf.data import tasks
from gpt1_tf.data.tasks import TASKS, locate, read_split, split_names
from gpt1_tf.errors import DataError


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where a tab-separated file keeps its texts, label and id (`columns`: the names of a headerless file)."""
    text: tuple
    label: str = None
    index: str = None
    columns: tuple = None


_PAIR = ("sentence1", "sentence2")
# task -> (layout of train/dev files, layout of test files)
_TSV = {
    "cola": (_Layout(("sentence",), "label", columns=("source", "label", "original_label", "sentence")),
             _Layout(("sentence",), index="index")),
    "sst2": (_Layout(("sentence",), "label"), _Layout(("sentence",), index="index")),
    "mrpc": (_Layout(("#1 String", "#2 String"), "Quality"), _Layout(("#1 String", "#2 String"), index="index")),
    "stsb": (_Layout(_PAIR, "score"), _Layout(_PAIR, index="index")),
    "qqp": (_Layout(("question1", "question2"), "is_duplicate"), _Layout(("question1", "question2"), index="id")),
    "mnli": (_Layout(_PAIR, "gold_label"), _Layout(_PAIR, index="index")),
    "qnli": (_Layout(("question", "sentence"), "label"), _Layout(("question", "sentence"), index="index")),
    "rte": (_Layout(_PAIR, "label"), _Layout(_PAIR, index="index")),
    "wnli": (_Layout(_PAIR, "label"), _Layout(_PAIR, index="index")),
    "scitail": (_Layout(("premise", "hypothesis"), "label", columns=("premise", "hypothesis", "label")),) * 2,
}


def _header(path, rows, layout, name, split):
    """The column names: the layout's (headerless file) or the first row's, checked for what is needed."""
    if layout.columns:
        return layout.columns
    first = next(rows, None)
    if first is None:
        raise DataError(path, f"empty file (the {name} {split} split)")
    line, columns = first[0], first[1].split("\t")
    needed = [c for c in (*layout.text, layout.label, layout.index) if c is not None]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(path, f"header lacks column(s) {', '.join(missing)} (is this the {name} {split} file?)", line)
    return columns


def _malformed(fields, columns, layout):
    """What is wrong with a row's shape (wrong field count, an empty text), or None."""
    if len(fields) != len(columns):
        return f"row has {len(fields)} tab-separated fields, expected {len(columns)}"
    for column in layout.text:
        if not fields[columns.index(column)].strip():
            return f"empty text in column {column!r}"
    return None


def _tsv_row(path, line, fields, columns, layout, labels):
    """One well-formed row -> Example (label class / score, or the test file's integer id)."""
    row = dict(zip(columns, fields))
    label = label_of(path, line, row[layout.label], labels) if layout.label else None
    index = None
    if layout.index:
        try:
            index = int(row[layout.index])
        except ValueError:
            raise DataError(path, f"{layout.index} {row[layout.index]!r} is not an integer", line) from None
    return Example(tuple(row[c] for c in layout.text), label=label, index=index)


def _tsv(path, name, split):
    """Read one tab-separated split file (quoting off: quote characters are text)."""
    layout = _TSV[name][split.startswith("test")]
    rows = lines(read_split(path, name, split))
    columns = tuple(_header(path, rows, layout, name, split))
    examples, skipped = [], []
    for line, text in rows:
        fields = text.split("\t")
        problem = _malformed(fields, columns, layout)
        if problem and split == "train":
            skipped.append(line)  # count it and go on: a few bad rows should not stop a long run
        elif problem:
            raise DataError(path, problem, line)
        else:
            examples.append(_tsv_row(path, line, fields, columns, layout, TASKS[name].labels))
    warn_skipped(path, "malformed rows", skipped)
    if not examples:
        raise DataError(path, f"no examples (the {name} {split} split)")
    return examples


def glue(task, data_dir, splits=None):
    """A GLUE task's splits ({split: [Example]}) from its folder (or the GLUE folder above it)."""
    spec = tasks.spec(task)
    if spec.dataset != "glue":
        raise DataError(task, "not a GLUE task")
    folder = locate(task, data_dir)
    return {s: _tsv(os.path.join(folder, spec.splits[s]), task, s) for s in split_names(spec, splits)}


def scitail(data_dir, splits=None):
    """SciTail's tsv splits, from the release folder, its tsv_format/ folder, or the files' own folder."""
    folder = locate("scitail", data_dir)
    spec = TASKS["scitail"]
    return {s: _tsv(os.path.join(folder, spec.splits[s]), "scitail", s) for s in split_names(spec, splits)}
