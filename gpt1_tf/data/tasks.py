"""The GPT-1 paper's other datasets (GLUE, SNLI, SciTail, RACE), by name: their shapes, files and where to get them.

`TASKS` says of each task its input format, label strings, split files and (GLUE) submission
files; `locate`, `split_names` and `read_split` find a task's folder and files, naming where the
dataset is distributed when one is missing. The readers, one module a source: `glue` (GLUE and
SciTail's tab-separated files), `snli`, `race`; `generic` reads a user's own files. Each returns
{split: [Example, ...]} in file order (`gpt1_tf.data.inputs.read_task` picks the reader of a name).
Malformed input is a one-line `DataError("path:line: problem")`, except in train files, where rows
with the wrong number of fields (or an empty text) are counted, skipped and reported in one stderr
warning line per file. No TensorFlow here.
"""
import dataclasses
import os
import types

from gpt1_tf.errors import DataError
from gpt1_tf.files import read_text
from gpt1_tf.network.config import TASK_FORMATS

FORMATS = TASK_FORMATS  # the input formats of the paper; their owner is gpt1_tf.network.config
URLS = {
    "glue": "https://gluebenchmark.com/tasks",
    "snli": "https://nlp.stanford.edu/projects/snli/",
    "scitail": "https://allenai.org/data/scitail",
    "race": "https://www.cs.cmu.edu/~glai1/data/race/",
}
RACE_GROUPS = ("middle", "high")


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


def where(name):
    """'<dataset> is distributed at <url>' for a task name."""
    dataset = TASKS[name].dataset
    return f"{'GLUE' if dataset == 'glue' else dataset} is distributed at {URLS[dataset]}"


def spec(name):
    """The Task called `name`; an unknown name is a one-line DataError listing the known ones."""
    if name not in TASKS:
        raise DataError(name, f"unknown task; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def locate(name, data_dir):
    """The folder holding the task's files: data_dir/<folder>, data_dir/<folder's tail>, or data_dir."""
    if not os.path.isdir(data_dir):
        raise DataError(data_dir, f"data folder not found ({name}: {where(name)})")
    parts = TASKS[name].folder.split("/") if TASKS[name].folder else []
    for i in range(len(parts)):
        candidate = os.path.join(data_dir, *parts[i:])
        if os.path.isdir(candidate):
            return candidate
    return data_dir


def read_split(path, name, split):
    """The text of one split file; a missing file is a one-line DataError saying where to get it."""
    what = f"{name} {split} split"
    return read_text(path, what, bom=True, missing=f"no such file (the {what}; {where(name)})")


def split_names(task, splits):
    """The splits to read: all of the task's, or the chosen ones (an unknown one is a DataError)."""
    splits = tuple(task.splits) if splits is None else tuple(splits)
    unknown = [s for s in splits if s not in task.splits]
    if unknown:
        raise DataError(", ".join(unknown), f"unknown split; this task has {', '.join(task.splits)}")
    return splits
