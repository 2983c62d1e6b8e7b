"""Readers for the GPT-1 paper's other datasets (GLUE, SNLI, SciTail, RACE): files -> `Example`s.

Each reader takes the folder the publisher's archive unpacks to (or the folder above it) and returns
{split: [Example, ...]} in file order. Malformed input is a one-line `DataError("path:line: problem")`,
except in train files, where rows with the wrong number of fields (or an empty text) are counted,
skipped and reported in one stderr warning line per file. SNLI's examples without a gold label
(`-`) are skipped and counted in every split, as the dataset's authors prescribe. No TensorFlow here.
"""

import dataclasses
import json
import math
import os
import sys
import types

from gpt1_tf.network.config import TASK_FORMATS
from gpt1_tf.errors import DataError
from gpt1_tf.files import csv_rows, read_text

FORMATS = TASK_FORMATS  # the input formats of the paper; their owner is gpt1_tf.network.config
URLS = {
    "glue": "https://gluebenchmark.com/tasks",
    "snli": "https://nlp.stanford.edu/projects/snli/",
    "scitail": "https://allenai.org/data/scitail",
    "race": "https://www.cs.cmu.edu/~glai1/data/race/",
}
RACE_GROUPS = ("middle", "high")


@dataclasses.dataclass(frozen=True)
class Example:
    """One example as its file gives it."""
    texts: tuple          # classification: (text,); entailment / similarity: (a, b); multiple choice: the
                          # context's texts in reading order (Story Cloze: (story,); RACE: (article, question))
    label: object = None  # int class index, float score (STS-B), or None in a test file without labels
    choices: tuple = ()   # multiple choice only: the K answer texts
    index: object = None  # the row's id in its file (GLUE test `index`/`id`), for submissions
    group: object = None  # RACE: "middle" or "high"


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset's shape: its format, label strings, split files and GLUE submission files."""
    format: str            # one of FORMATS
    labels: tuple          # label strings; class id = position (empty for STS-B's float score)
    splits: types.MappingProxyType = dataclasses.field(hash=False)  # split -> file name(s) under `folder`
    submission: types.MappingProxyType = dataclasses.field(hash=False)  # GLUE: test split -> submission file
    dataset: str = "glue"  # the reader: glue, snli, scitail or race
    folder: str = ""       # the folder the archive unpacks to, relative to the data dir (optional there)


def _glue(folder, fmt, labels, submission, dev=("dev",), test=("test",)):
    """A GLUE task: <split>.tsv files in its folder; one submission file per test split."""
    splits = {name: name + ".tsv" for name in ("train", *dev, *test)}
    return Task(fmt, labels, types.MappingProxyType(splits),
                types.MappingProxyType(dict(zip(test, submission))), "glue", folder)


NLI3 = ("entailment", "neutral", "contradiction")
BINARY = ("0", "1")
TASKS = types.MappingProxyType({
    "cola": _glue("CoLA", "classification", BINARY, ("CoLA.tsv",)),
    "sst2": _glue("SST-2", "classification", BINARY, ("SST-2.tsv",)),
    "mrpc": _glue("MRPC", "similarity", BINARY, ("MRPC.tsv",)),
    "stsb": _glue("STS-B", "similarity", (), ("STS-B.tsv",)),
    "qqp": _glue("QQP", "similarity", BINARY, ("QQP.tsv",)),
    "mnli": _glue("MNLI", "entailment", NLI3, ("MNLI-m.tsv", "MNLI-mm.tsv"),
                  ("dev_matched", "dev_mismatched"), ("test_matched", "test_mismatched")),
    "qnli": _glue("QNLI", "entailment", ("entailment", "not_entailment"), ("QNLI.tsv",)),
    "rte": _glue("RTE", "entailment", ("entailment", "not_entailment"), ("RTE.tsv",)),
    "wnli": _glue("WNLI", "entailment", BINARY, ("WNLI.tsv",)),
    "snli": Task("entailment", NLI3, types.MappingProxyType(
        {s: f"snli_1.0_{s}.jsonl" for s in ("train", "dev", "test")}), types.MappingProxyType({}), "snli", "snli_1.0"),
    "scitail": Task("entailment", ("entails", "neutral"), types.MappingProxyType(
        {s: f"scitail_1.0_{s}.tsv" for s in ("train", "dev", "test")}), types.MappingProxyType({}),
        "scitail", "SciTailV1.1/tsv_format"),
    "race": Task("multiple_choice", ("A", "B", "C", "D"), types.MappingProxyType(
        {s: tuple(f"{s}/{g}" for g in RACE_GROUPS) for s in ("train", "dev", "test")}),
        types.MappingProxyType({}), "race", "RACE"),
})


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


def _where(name):
    """'<dataset> is distributed at <url>' for a task name."""
    dataset = TASKS[name].dataset
    return f"{'GLUE' if dataset == 'glue' else dataset} is distributed at {URLS[dataset]}"


def _task(name):
    """The Task called `name`; an unknown name is a one-line DataError listing the known ones."""
    if name not in TASKS:
        raise DataError(name, f"unknown task; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def _locate(name, data_dir):
    """The folder holding the task's files: data_dir/<folder>, data_dir/<folder's tail>, or data_dir."""
    if not os.path.isdir(data_dir):
        raise DataError(data_dir, f"data folder not found ({name}: {_where(name)})")
    parts = TASKS[name].folder.split("/") if TASKS[name].folder else []
    for i in range(len(parts)):
        candidate = os.path.join(data_dir, *parts[i:])
        if os.path.isdir(candidate):
            return candidate
    return data_dir


def _read(path, name, split):
    """The text of one split file; a missing file is a one-line DataError saying where to get it."""
    what = f"{name} {split} split"
    return read_text(path, what, bom=True, missing=f"no such file (the {what}; {_where(name)})")


def _lines(text):
    """Yield (line number, line) for each non-blank line; only '\\n' ends a line (texts may hold \\x0b, \\u2028)."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line[:-1] if line.endswith("\r") else line
        if line.strip():
            yield number, line


def _warn(path, what, lines):
    """One stderr line for the rows a train file's reader skipped."""
    if lines:
        print(f"warning: {path}: skipped {len(lines)} {what} (first at line {lines[0]})", file=sys.stderr)


def _label(path, line, value, labels):
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
    label = _label(path, line, row[layout.label], labels) if layout.label else None
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
    rows = _lines(_read(path, name, split))
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
    _warn(path, "malformed rows", skipped)
    if not examples:
        raise DataError(path, f"no examples (the {name} {split} split)")
    return examples


def _split_names(task, splits):
    """The splits to read: all of the task's, or the chosen ones (an unknown one is a DataError)."""
    splits = tuple(task.splits) if splits is None else tuple(splits)
    unknown = [s for s in splits if s not in task.splits]
    if unknown:
        raise DataError(", ".join(unknown), f"unknown split; this task has {', '.join(task.splits)}")
    return splits


def glue(task, data_dir, splits=None):
    """A GLUE task's splits ({split: [Example]}) from its folder (or the GLUE folder above it)."""
    spec = _task(task)
    if spec.dataset != "glue":
        raise DataError(task, "not a GLUE task")
    folder = _locate(task, data_dir)
    return {s: _tsv(os.path.join(folder, spec.splits[s]), task, s) for s in _split_names(spec, splits)}


def scitail(data_dir, splits=None):
    """SciTail's tsv splits, from the release folder, its tsv_format/ folder, or the files' own folder."""
    folder = _locate("scitail", data_dir)
    spec = TASKS["scitail"]
    return {s: _tsv(os.path.join(folder, spec.splits[s]), "scitail", s) for s in _split_names(spec, splits)}


def _json(path, line, text):
    """Parse one JSON object; invalid JSON (a truncated file) or a non-object is a DataError."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err.msg}; is the file truncated?)", line) from None
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line)
    return obj


def _field(path, line, obj, key, kind=str):
    """obj[key], which must be present and of type `kind`."""
    if key not in obj:
        raise DataError(path, f"no {key!r} field", line)
    if not isinstance(obj[key], kind):
        raise DataError(path, f"{key!r} is {type(obj[key]).__name__}, expected {kind.__name__}", line)
    return obj[key]


def _snli_file(path, split):
    """One SNLI jsonl file -> Examples; gold_label '-' (no majority) is counted and skipped."""
    examples, skipped = [], []
    for line, text in _lines(_read(path, "snli", split)):
        obj = _json(path, line, text)
        texts = tuple(_field(path, line, obj, k) for k in ("sentence1", "sentence2"))
        gold = _field(path, line, obj, "gold_label")
        if gold == "-":
            skipped.append(line)
            continue
        if not all(t.strip() for t in texts):
            raise DataError(path, "empty sentence1 or sentence2", line)
        examples.append(Example(texts, label=_label(path, line, gold, TASKS["snli"].labels)))
    _warn(path, "examples with gold_label '-'", skipped)
    if not examples:
        raise DataError(path, f"no examples (the snli {split} split)")
    return examples


def snli(data_dir, splits=None):
    """SNLI's splits from snli_1.0_{train,dev,test}.jsonl (in data_dir or its snli_1.0/ folder)."""
    folder = _locate("snli", data_dir)
    spec = TASKS["snli"]
    return {s: _snli_file(os.path.join(folder, spec.splits[s]), s) for s in _split_names(spec, splits)}


def _race_file(path, group):
    """One RACE file (a JSON object: article, questions, options, answers) -> one Example per question."""
    obj = _json(path, None, read_text(path, "RACE file", bom=True))
    article = _field(path, None, obj, "article")
    questions, options, answers = (_field(path, None, obj, k, list) for k in ("questions", "options", "answers"))
    if not len(questions) == len(options) == len(answers):
        raise DataError(path, f"{len(questions)} questions, {len(options)} option lists and {len(answers)} "
                              "answers; expected as many of each")
    examples = []
    for i, (question, choices, answer) in enumerate(zip(questions, options, answers), 1):
        if not (isinstance(choices, list) and len(choices) == 4 and all(isinstance(c, str) for c in choices)):
            raise DataError(path, f"question {i}: options must be a list of 4 strings")
        if answer not in TASKS["race"].labels:
            raise DataError(path, f"question {i}: answer {answer!r} is not one of A, B, C, D")
        examples.append(Example((article, question), label="ABCD".index(answer), choices=tuple(choices), group=group))
    return examples


def _race_split(root, split):
    """A RACE split: middle then high, each folder's .txt files sorted by name."""
    examples = []
    for sub in TASKS["race"].splits[split]:
        folder = os.path.join(root, sub)
        if not os.path.isdir(folder):
            raise DataError(folder, f"folder not found (the race {split} split; {_where('race')})")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
        if not names:
            raise DataError(folder, f"no .txt files (the race {split} split)")
        for n in names:
            examples.extend(_race_file(os.path.join(folder, n), sub.split("/")[-1]))
    return examples


def race(data_dir, splits=None):
    """RACE's splits from RACE/{train,dev,test}/{middle,high}/*.txt (data_dir: RACE/ or its parent)."""
    root = _locate("race", data_dir)
    return {s: _race_split(root, s) for s in _split_names(TASKS["race"], splits)}


def read_task(name, data_dir, splits=None):
    """The splits of any task in TASKS, by its reader."""
    dataset = _task(name).dataset
    if dataset == "glue":
        return glue(name, data_dir, splits)
    return {"snli": snli, "scitail": scitail, "race": race}[dataset](data_dir, splits)


def _records(path):
    """Yield (line, {column: value}) from a .csv (with header), .tsv (header, quoting off) or .jsonl file."""
    text = read_text(path, "data file", bom=True)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".jsonl":
        for line, row in _lines(text):
            yield line, _json(path, line, row)
        return
    if ext not in (".csv", ".tsv"):
        raise DataError(path, "unknown file type; expected .csv, .tsv or .jsonl")
    if ext == ".csv":
        rows = csv_rows(path, text)
    else:
        rows = ((line, row.split("\t")) for line, row in _lines(text))
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
        texts = tuple(str(_field(path, line, row, c, object)) for c in text_columns)
        choices = tuple(str(_field(path, line, row, c, object)) for c in choice_columns)
        if not all(t.strip() for t in texts + choices):
            raise DataError(path, "empty text", line)
        label = row.get(label_column) if label_column else None
        if label_column:
            labelled = need_label or (label is not None if labelled is None else labelled)
            _check_label_present(path, line, label_column, label is not None, labelled, need_label)
        if label is not None:
            label = _label(path, line, str(label), labels)
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
