"""SNLI's jsonl files -> `Example`s; examples without a gold label (`-`) are counted and skipped, as its authors prescribe."""
import os

from gpt1_tf.data.rows import Example, field, json_object, label_of, lines, warn_skipped
from gpt1_tf.data.tasks import TASKS, locate, read_split, split_names
from gpt1_tf.errors import DataError


def _snli_file(path, split):
    """One SNLI jsonl file -> Examples; gold_label '-' (no majority) is counted and skipped."""
    examples, skipped = [], []
    for line, text in lines(read_split(path, "snli", split)):
        obj = json_object(path, line, text)
        texts = tuple(field(path, line, obj, k) for k in ("sentence1", "sentence2"))
        gold = field(path, line, obj, "gold_label")
        if gold == "-":
            skipped.append(line)
            continue
        if not all(t.strip() for t in texts):
            raise DataError(path, "empty sentence1 or sentence2", line)
        examples.append(Example(texts, label=label_of(path, line, gold, TASKS["snli"].labels)))
    warn_skipped(path, "examples with gold_label '-'", skipped)
    if not examples:
        raise DataError(path, f"no examples (the snli {split} split)")
    return examples


def snli(data_dir, splits=None):
    """SNLI's splits from snli_1.0_{train,dev,test}.jsonl (in data_dir or its snli_1.0/ folder)."""
    folder = locate("snli", data_dir)
    spec = TASKS["snli"]
    return {s: _snli_file(os.path.join(folder, spec.splits[s]), s) for s in split_names(spec, splits)}
