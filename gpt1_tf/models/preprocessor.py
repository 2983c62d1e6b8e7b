"""`GPT1Preprocessor`: raw examples of the paper's four task formats -> the arrays the trainer takes.

The examples become `gpt1_tf.data.rows.Example`s, their texts are encoded by the tokenizer (the
original's ftfy + spaCy + BPE; each text once per preprocessor), and the project's own input
transformation builds X and M (`gpt1_tf.data.transforms`: the one token layout, the one truncation
rule, the context each example needs). This module only checks and reshapes what a user gives.
"""
import numpy as np

from gpt1_tf.data import transforms
from gpt1_tf.data.rows import Example
from gpt1_tf.errors import ConfigError, DataError
from gpt1_tf.models import presets
from gpt1_tf.models.tokenizer import GPT1Tokenizer
from gpt1_tf.network.config import MAX_N_CTX, TASK_FORMATS

# what one example of each format is, for the error that names a wrong one
SHAPES = {"classification": "a text", "entailment": "a (premise, hypothesis) pair of texts",
          "similarity": "an (a, b) pair of texts",
          "multiple_choice": "a (context, [choice_1, ..., choice_K]) pair, the context a text or a tuple of texts"}


class GPT1Preprocessor:
    """Examples of one task format -> X int32 [N, K, n_ctx, 2], M float32 [N, K, n_ctx] (and labels Y [N]).

    One class with a `task_format` rather than one class per format, because the project has one
    transformation for the four (`transforms.transform_task(task_format, ...)`): the formats differ
    only in what one example is, which `task_format` says:
    - "classification": a text (a lone string is one example); K = 1, `[s] text [e]`;
    - "entailment": a (premise, hypothesis) pair; K = 1, `[s] premise [$] hypothesis [e]`;
    - "similarity": an (a, b) pair; K = 2, both orders, as the paper's similarity format;
    - "multiple_choice": (context, [choice_1, ..., choice_K]), the context one text (Story Cloze's
      story) or a tuple of texts (RACE's (article, question): the last kept whole, the earlier cut);
      K the same for every example (Story Cloze 2, RACE 4).

    `sequence_length` is the n_ctx of the arrays and train.py's `--n_ctx`: each text keeps its
    first `sequence_length // n_fields - 2` tokens, the rest is padding (M = 0). None: what the
    longest example needs, with the texts cut by the rule of `max_sequence_length` (the model's
    positions, 512 for GPT-1's table), as train.py computes its n_ctx.

    Each text is encoded once: the ids are kept in `self.cache` (text -> ids) for the
    preprocessor's life, so a second epoch over the same texts encodes nothing. A `tf.data.Dataset`
    of examples is read whole into memory first (the context length depends on every example);
    its labels, if any, are given as `y`, not inside the dataset.
    """

    def __init__(self, tokenizer=None, *, task_format="classification", sequence_length=None,
                 max_sequence_length=MAX_N_CTX):
        if task_format not in TASK_FORMATS:
            raise ConfigError(f"task_format {task_format!r}: one of {', '.join(TASK_FORMATS)}")
        if not 0 < max_sequence_length <= MAX_N_CTX:
            raise ConfigError(f"max_sequence_length {max_sequence_length}: GPT-1 has 1..{MAX_N_CTX} positions")
        if sequence_length is not None and not 0 < sequence_length <= max_sequence_length:
            raise ConfigError(f"sequence_length {sequence_length}: the model has {max_sequence_length} positions")
        self.tokenizer = tokenizer or GPT1Tokenizer()
        self.task_format = task_format
        self.sequence_length = sequence_length
        self.max_sequence_length = max_sequence_length
        self.cache = {}  # text -> its BPE ids (a tuple), filled by `encode`

    @classmethod
    def from_preset(cls, preset, *, task_format="classification", **kwargs):
        """A preprocessor with the tokenizer of any source `GPT1Backbone.from_preset` reads.

        `max_sequence_length`: a preset folder's positions (what `save_to_preset` recorded); for the
        other sources 512, GPT-1's table (give `max_sequence_length=backbone.cfg.n_ctx` for fewer).
        """
        if "max_sequence_length" not in kwargs and presets.kind_of(preset) == "preset":
            kwargs["max_sequence_length"] = presets.read_config(preset).n_ctx
        return cls(GPT1Tokenizer.from_preset(preset), task_format=task_format, **kwargs)

    def __call__(self, x, y=None, *, num_classes=None):
        """(X, M) of the examples `x`; with labels `y`, (X, M, Y): the trainer's `train_step(X, M, Y, ...)`.

        Y is int32 for integer labels (a class, or the right choice's position), float32 for scores.
        `num_classes` (a task model's): classes 0..num_classes-1 only; 0: real-valued scores (ints
        too, as float32). A wrong example, an empty text, len(y) != len(x), a label outside the
        classes or choices: a one-line `Gpt1Error` naming the example.
        """
        examples = self.examples(x)
        encoded = self.encode(examples)
        cap = self.sequence_length or self.max_sequence_length
        n_ctx = self.sequence_length or transforms.task_n_ctx(self.task_format, [encoded], cap)
        X, M = transforms.transform_task(self.task_format, encoded, n_ctx=n_ctx, n_vocab=self.tokenizer.vocabulary_size,
                                         max_len=transforms.max_field_len(cap, transforms.N_FIELDS[self.task_format]))
        if y is None:
            return X, M
        return X, M, labels_of(y, examples, self.task_format, num_classes)

    # --- examples -----------------------------------------------------------------------------

    def examples(self, x):
        """`x` as a list of `Example`s of texts, each checked against the task format."""
        if isinstance(x, str) and self.task_format == "classification":
            x = [x]
        elif hasattr(x, "as_numpy_iterator"):  # a tf.data.Dataset, read whole; no TensorFlow imported here
            x = [as_text(e) for e in x.as_numpy_iterator()]
        if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
            raise DataError("the examples", f"expected a list of examples, each {SHAPES[self.task_format]}; "
                                            f"got {type(x).__name__}")
        x = list(x)
        if not x:
            raise DataError("the examples", "there are none")
        examples = [self.example(i, e) for i, e in enumerate(x)]
        K = len(examples[0].choices)
        for i, e in enumerate(examples):
            if len(e.choices) != K:
                raise DataError(f"example {i}", f"{len(e.choices)} choices; example 0 has {K} (every example "
                                                "needs the same number)")
        return examples

    def example(self, i, e):
        """One example of the task format as an `Example`; anything else is a one-line DataError."""
        fmt, where = self.task_format, f"example {i}"
        if fmt == "classification" and isinstance(e, str):
            return Example(texts=(text(where, e),))
        if fmt in ("entailment", "similarity") and is_pair(e) and all(isinstance(t, str) for t in e):
            return Example(texts=tuple(text(f"{where}[{k}]", t) for k, t in enumerate(e)))
        if fmt == "multiple_choice" and is_pair(e) and is_texts(e[1]) and (isinstance(e[0], str) or is_texts(e[0])):
            context = (e[0],) if isinstance(e[0], str) else tuple(e[0])
            if len(e[1]) < 2:
                raise DataError(where, f"{len(e[1])} choice(s); multiple choice needs at least 2")
            return Example(texts=tuple(text(f"{where} context", t) for t in context),
                           choices=tuple(text(f"{where} choice {k}", t) for k, t in enumerate(e[1])))
        raise DataError(where, f"expected {SHAPES[fmt]}, got {describe(e)}")

    def encode(self, examples):
        """The examples with their texts as BPE ids; only texts not in the cache are encoded (in one call)."""
        texts = [t for e in examples for t in (*e.texts, *e.choices)]
        new = list(dict.fromkeys(t for t in texts if t not in self.cache))  # each once, in order
        if new:
            self.cache.update(zip(new, map(tuple, self.tokenizer.tokenize(new))))
        return [Example(texts=tuple(self.cache[t] for t in e.texts), choices=tuple(self.cache[t] for t in e.choices))
                for e in examples]


def labels_of(y, examples, task_format, num_classes=None):
    """Y [N]: int32 of integer labels (a class, the right choice's position), float32 of similarity scores.

    `num_classes` None: any class id >= 0; n >= 2: ids below n; 0: real-valued scores (a regression head).
    """
    Y = np.asarray(list(y.as_numpy_iterator()) if hasattr(y, "as_numpy_iterator") else y)
    if Y.ndim != 1 or len(Y) != len(examples):
        raise DataError("the labels", f"{len(Y) if Y.ndim else 'one'} label(s) of shape {Y.shape[1:]} for "
                                      f"{len(examples)} examples: give one label per example")
    if num_classes == 0 and task_format == "similarity" and Y.dtype.kind in "iu":
        Y = Y.astype(np.float32)  # integer scores of a regression head
    if Y.dtype.kind in "iu":
        K = len(examples[0].choices)
        top = K if task_format == "multiple_choice" else num_classes
        bad = np.flatnonzero((Y < 0) | (Y >= top)) if top else np.flatnonzero(Y < 0)
        if bad.size:
            what = (f"the right choice's position 0..{K - 1}" if K else f"a class id 0..{top - 1}" if top
                    else "a class id (0, 1, ...)")
            raise DataError(f"label {bad[0]}", f"{Y[bad[0]]} is not {what}")
        return Y.astype(np.int32)
    if Y.dtype.kind == "f" and num_classes:
        raise DataError("the labels", f"expected integer classes 0..{num_classes - 1}, got {Y.dtype} values")
    if Y.dtype.kind == "f" and task_format == "similarity" and np.isfinite(Y).all():
        return Y.astype(np.float32)
    scores = " or finite scores" if task_format == "similarity" else ""
    raise DataError("the labels", f"expected integer classes{scores}, got {Y.dtype} values")


def text(where, t):
    """A non-empty text (an empty one has nothing to encode, as the readers refuse it)."""
    if not t.strip():
        raise DataError(where, "empty text")
    return t


def is_pair(e):
    return isinstance(e, (tuple, list)) and len(e) == 2


def is_texts(e):
    return isinstance(e, (tuple, list)) and len(e) > 0 and all(isinstance(t, str) for t in e)


def describe(e):
    """What a wrong example is, briefly: its type, and its length if it has one."""
    return f"{type(e).__name__} of {len(e)}" if isinstance(e, (tuple, list)) else type(e).__name__


def as_text(element):
    """A tf.data element (NumPy bytes, arrays, tuples of them) as str and tuples of str."""
    element = element.tolist() if hasattr(element, "tolist") else element
    if isinstance(element, bytes):
        return element.decode("utf-8")
    if isinstance(element, (tuple, list)):
        return tuple(as_text(t) for t in element)
    return element
