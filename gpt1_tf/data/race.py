"""RACE's files (one JSON object a passage: article, questions, options, answers) -> one `Example` per question.

The splits are RACE/{train,dev,test}/{middle,high}/*.txt, middle then high, each folder's files
sorted by name; each example's `group` says which.
"""
import os

from gpt1_tf.data.rows import Example, field, json_object
from gpt1_tf.data.tasks import TASKS, locate, split_names, where
from gpt1_tf.errors import DataError
from gpt1_tf.files import read_text


def _race_file(path, group):
    """One RACE file (a JSON object: article, questions, options, answers) -> one Example per question."""
    obj = json_object(path, None, read_text(path, "RACE file", bom=True))
    article = field(path, None, obj, "article")
    questions, options, answers = (field(path, None, obj, k, list) for k in ("questions", "options", "answers"))
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
            raise DataError(folder, f"folder not found (the race {split} split; {where('race')})")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
        if not names:
            raise DataError(folder, f"no .txt files (the race {split} split)")
        for n in names:
            examples.extend(_race_file(os.path.join(folder, n), sub.split("/")[-1]))
    return examples


def race(data_dir, splits=None):
    """RACE's splits from RACE/{train,dev,test}/{middle,high}/*.txt (data_dir: RACE/ or its parent)."""
    root = locate("race", data_dir)
    return {s: _race_split(root, s) for s in split_names(TASKS["race"], splits)}
