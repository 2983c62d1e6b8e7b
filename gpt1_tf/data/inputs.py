"""What a fine-tuning run reads: its dataset's splits as model arrays, and the task's shape.

`load(cfg, text_encoder)` (a `DataConfig`) gives a `RunData`: Story Cloze through the original's path
(`gpt1_tf.data.rocstories.rocstories`, `transforms.transform_roc`), any other task through its reader
(`gpt1_tf.data.tasks`: files -> examples) and the paper's input transformation
(`transforms.transform_task`: examples -> X, M). The validation split is the dataset's own dev
file; without one (a generic dataset), `--n_valid` examples split off train as the original did.
"""
import dataclasses
import os

import numpy as np

from gpt1_tf import metrics
from gpt1_tf.data import generic, glue, race, snli, tasks, transforms
from gpt1_tf.errors import DataError

ROCSTORIES_SUBMISSION = "ROCStories.tsv"
SUBMISSIONS = {"snli": "SNLI.tsv", "scitail": "SciTail.tsv", "race": "RACE.tsv"}  # GLUE's: tasks.TASKS
GENERIC_SPLITS = ("train", "dev", "test")
GENERIC_TYPES = (".csv", ".tsv", ".jsonl")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What a run reads, as train.py's flags say it (checked by `gpt1_tf.cli.train`).

    n_ctx: the --n_ctx cap on the context (the data may need less); desc: the run's name, which a
    generic dataset's submission takes. The rest is a generic dataset's (--task_format, ...).
    """
    dataset: str
    data_dir: str
    n_valid: int = 374
    n_ctx: int = 512
    submit: bool = False
    desc: str = None
    task_format: str = None
    text_columns: tuple = None
    choice_columns: tuple = None
    label_column: str = "label"
    labels: tuple = None


@dataclasses.dataclass
class Split:
    """One split as model arrays: X [N, K, n_ctx, 2], M [N, K, n_ctx], Y [N] (None without labels)."""
    name: str
    X: np.ndarray
    M: np.ndarray
    Y: np.ndarray = None
    index: list = None       # the id of each row in its file, written in the submission
    groups: np.ndarray = None  # RACE: "middle" / "high" of each row
    submission: str = None   # a test split: the file its predictions go to


@dataclasses.dataclass
class RunData:
    """A run's splits and what its head and metrics need to know of the task."""
    task: str                # the --dataset name
    task_format: str         # one of config.TASK_FORMATS
    labels: tuple            # label strings, class (or choice) id = position; () for a real-valued score
    n_ctx: int
    train: Split
    valid: Split
    extra_valid: list        # further dev splits, evaluated and logged too (MNLI mismatched)
    tests: list

    @property
    def regression(self):
        return not self.labels

    @property
    def n_classes(self):
        """The head's classes: 0 for multiple choice (a softmax over the choices) and a real-valued score."""
        return 0 if self.task_format == "multiple_choice" else len(self.labels)

    @property
    def metrics(self):
        return metrics.metric_names(self.task, self.regression)


def load(cfg, text_encoder):
    """The run's data (`cfg` a DataConfig), read, encoded and transformed; nothing written."""
    if cfg.dataset == "rocstories":
        return load_rocstories(cfg, text_encoder)
    return load_task(cfg, text_encoder)


def load_rocstories(cfg, text_encoder):
    """Story Cloze, as the original: train and valid from the val file, the test file to predict."""
    from gpt1_tf.data import rocstories
    splits = rocstories.rocstories(cfg.data_dir, n_valid=cfg.n_valid)
    (trX1, trX2, trX3, trY), (vaX1, vaX2, vaX3, vaY), (teX1, teX2, teX3) = transforms.encode_dataset(
        splits, encoder=text_encoder, verbose=True)
    n_vocab = len(text_encoder.encoder)
    max_len = transforms.max_len_for(cfg.n_ctx)
    n_ctx = transforms.compute_n_ctx([(trX1, trX2, trX3), (vaX1, vaX2, vaX3), (teX1, teX2, teX3)], cfg.n_ctx)

    def split(name, X1, X2, X3, Y=None, submission=None):
        X, M = transforms.transform_roc(X1, X2, X3, n_ctx=n_ctx, max_len=max_len, n_vocab=n_vocab)
        return Split(name, X, M, Y, index=list(range(len(X))), submission=submission)

    return RunData("rocstories", "multiple_choice", ("0", "1"), n_ctx,
                   split("train", trX1, trX2, trX3, trY), split("valid", vaX1, vaX2, vaX3, vaY), [],
                   [split("test", teX1, teX2, teX3, submission=ROCSTORIES_SUBMISSION)])


def load_task(cfg, text_encoder):
    """A named task (GLUE, SNLI, SciTail, RACE) or a generic dataset: its splits as model arrays."""
    task_format, labels, examples, submissions = read_examples(cfg)
    names = list(examples)
    encoded = transforms.encode_examples([e for n in names for e in examples[n]], encoder=text_encoder, verbose=True)
    at = np.cumsum([0] + [len(examples[n]) for n in names])
    examples = {n: encoded[at[i]:at[i + 1]] for i, n in enumerate(names)}
    n_ctx = transforms.task_n_ctx(task_format, list(examples.values()), cfg.n_ctx)
    # each text is cut by the cap's rule (--n_ctx), as the original's max_len, not by the n_ctx the data needs
    max_len = transforms.max_field_len(cfg.n_ctx, transforms.N_FIELDS[task_format])
    n_vocab = len(text_encoder.encoder)

    def split(name):
        rows = examples[name]
        X, M = transforms.transform_task(task_format, rows, n_ctx=n_ctx, n_vocab=n_vocab, max_len=max_len)
        Y = None if rows[0].label is None else np.asarray([e.label for e in rows],
                                                           np.float32 if not labels else np.int32)
        groups = np.asarray([e.group for e in rows]) if rows[0].group is not None else None
        index = [i if e.index is None else e.index for i, e in enumerate(rows)]
        return Split(name, X, M, Y, index=index, groups=groups, submission=submissions.get(name))

    dev = [n for n in names if n.startswith("dev")]
    tests = [n for n in names if n.startswith("test")]
    return RunData(cfg.dataset, task_format, labels, n_ctx, split("train"), split(dev[0]),
                   [split(n) for n in dev[1:]], [split(n) for n in tests])


def read_examples(cfg):
    """(format, label strings, {split: [Example]} with train first, {test split: submission file})."""
    if cfg.dataset == "generic":
        return read_generic(cfg)
    spec = tasks.TASKS[cfg.dataset]
    examples = read_task(cfg.dataset, cfg.data_dir)
    submissions = dict(spec.submission) or {"test": SUBMISSIONS[cfg.dataset]}
    return spec.format, spec.labels, examples, submissions


def read_task(name, data_dir, splits=None):
    """The splits of any task in `tasks.TASKS`, by its source's reader: {split: [Example]}."""
    dataset = tasks.spec(name).dataset
    if dataset == "glue":
        return glue.glue(name, data_dir, splits)
    return {"snli": snli.snli, "scitail": glue.scitail, "race": race.race}[dataset](data_dir, splits)


def generic_files(data_dir):
    """{split: path} of train/dev/test.{csv,tsv,jsonl} in data_dir; train is required."""
    if not os.path.isdir(data_dir):
        raise DataError(data_dir, "data folder not found")
    found = {}
    for split in GENERIC_SPLITS:
        paths = [os.path.join(data_dir, split + ext) for ext in GENERIC_TYPES
                 if os.path.exists(os.path.join(data_dir, split + ext))]
        if len(paths) > 1:
            raise DataError(data_dir, f"{len(paths)} {split} files ({', '.join(map(os.path.basename, paths))}); keep one")
        if paths:
            found[split] = paths[0]
    if "train" not in found:
        raise DataError(os.path.join(data_dir, "train.csv"), "no such file (a generic dataset needs "
                                                             "train.csv, train.tsv or train.jsonl)")
    return found


def read_generic(cfg):
    """A user's own CSV/TSV/JSONL files, columns and task format named by flags."""
    paths = generic_files(cfg.data_dir)
    if "test" not in paths and cfg.submit:
        raise DataError(os.path.join(cfg.data_dir, "test.csv"), "no such file (--submit predicts the test split: "
                                                                 "add test.csv, test.tsv or test.jsonl)")
    labels = tuple(cfg.labels or ())
    if not labels and cfg.task_format == "multiple_choice":
        labels = tuple(str(k) for k in range(len(cfg.choice_columns)))  # the right choice's position
    elif not labels and cfg.task_format != "similarity":  # similarity without --labels: a real-valued score
        labels = tuple(generic.generic_labels(paths["train"], cfg.label_column))
    examples = generic.generic(paths, text_columns=cfg.text_columns, label_column=cfg.label_column,
                                 task_format=cfg.task_format, labels=labels or None,
                                 choice_columns=cfg.choice_columns or ())
    if "dev" not in examples:
        examples = {"train": None, "dev": None, **examples}
        examples["train"], examples["dev"] = carve_out(examples["train"], cfg.n_valid, paths["train"])
    if labels and len(labels) < 2 and cfg.task_format != "multiple_choice":
        raise DataError(paths["train"], f"column {cfg.label_column!r} has one label ({labels[0]}); a classifier needs two")
    return cfg.task_format, labels, examples, {"test": f"{cfg.desc}.tsv"}


def carve_out(examples, n_valid, path):
    """The original's split of one labelled file: n_valid examples for validation (its seed), the rest train."""
    from gpt1_tf.data.splits import check_room, split_valid
    check_room(f"{len(examples)} examples and no dev file", len(examples), n_valid, path)
    train, valid = split_valid(examples, n_valid=n_valid)
    return list(train), list(valid)
