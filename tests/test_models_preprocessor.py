"""gpt1_tf.models.GPT1Preprocessor: raw examples -> the arrays the project's own readers and transforms give.

Each format is checked on a bundled sample: the examples its reader gives, as a user would write
them, against `gpt1_tf.data.inputs.load`'s arrays of the same files. No model is run.
"""
import os
import unittest

import numpy as np
import tensorflow as tf

from helpers import REPO
from gpt1_tf.data import inputs, rocstories
from gpt1_tf.errors import ConfigError, Gpt1Error
from gpt1_tf.models.preprocessor import GPT1Preprocessor
from gpt1_tf.models.tokenizer import GPT1Tokenizer
from gpt1_tf.network import tokens

SAMPLES = os.path.join(REPO, "datasets")


def user_example(task_format, e):
    """A reader's Example as a user writes it: a text, a pair, or (context, [choices])."""
    if task_format == "classification":
        return e.texts[0]
    if task_format == "multiple_choice":
        return (e.texts[0] if len(e.texts) == 1 else e.texts, list(e.choices))
    return tuple(e.texts)


def splits_of(data):
    """A RunData's splits in the readers' order: train, dev(s), test(s)."""
    return [data.train, data.valid, *data.extra_valid, *data.tests]


class SampleTest(unittest.TestCase):
    """On each format, X and M equal those train.py builds from the same files (all splits: one n_ctx)."""

    @classmethod
    def setUpClass(cls):
        cls.tokenizer = GPT1Tokenizer()

    def check(self, task_format, x, data, y=None, y_split=None):
        pre = GPT1Preprocessor(self.tokenizer, task_format=task_format)
        X, M = pre(x)
        self.assertEqual(X.shape[2], data.n_ctx)  # the default: what the longest example needs
        np.testing.assert_array_equal(X, np.concatenate([s.X for s in splits_of(data)]))
        np.testing.assert_array_equal(M, np.concatenate([s.M for s in splits_of(data)]))
        self.assertEqual((X.dtype, M.dtype), (np.int32, np.float32))
        if y is not None:
            Y = pre(x[:len(y)], y)[2]
            np.testing.assert_array_equal(Y, y_split.Y)
            self.assertEqual(Y.dtype, y_split.Y.dtype)

    def task(self, name):
        cfg = inputs.DataConfig(dataset=name, data_dir=os.path.join(SAMPLES, f"{name}_sample"))
        task_format, _, examples, _ = inputs.read_examples(cfg)
        data = inputs.load(cfg, self.tokenizer.encoder)
        x = [user_example(task_format, e) for split in examples.values() for e in split]
        self.check(task_format, x, data, [e.label for e in examples["train"]], data.train)

    def test_classification_sst2(self):
        self.task("sst2")

    def test_entailment_snli(self):
        self.task("snli")

    def test_similarity_stsb(self):
        self.task("stsb")

    def test_multiple_choice_race(self):
        self.task("race")

    def test_multiple_choice_story_cloze(self):
        folder = os.path.join(SAMPLES, "rocstories_sample")
        data = inputs.load(inputs.DataConfig(dataset="rocstories", data_dir=folder, n_valid=20), self.tokenizer.encoder)
        splits = rocstories.rocstories(folder, n_valid=20)
        x = [(story, [e1, e2]) for split in splits for story, e1, e2 in zip(*split[:3])]
        self.check("multiple_choice", x, data, list(splits[0][3]), data.train)


class BehaviourTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tokenizer = GPT1Tokenizer()

    def test_a_second_call_encodes_no_text_again(self):
        pre = GPT1Preprocessor(self.tokenizer, task_format="similarity")
        encoded = []
        encode = self.tokenizer.encoder.encode

        def counting(texts, **kwargs):
            encoded.extend(texts)
            return encode(texts, **kwargs)

        self.tokenizer.encoder.encode = counting
        self.addCleanup(delattr, self.tokenizer.encoder, "encode")
        x = [("A man sleeps.", "A man rests."), ("A dog runs.", "A man sleeps.")]
        first = pre(x)
        self.assertEqual(sorted(encoded), sorted({"A man sleeps.", "A man rests.", "A dog runs."}))  # each once
        second = pre(x)
        self.assertEqual(len(encoded), 3)  # the second epoch encoded nothing
        np.testing.assert_array_equal(first[0], second[0])
        pre(x + [("A cat purrs.", "A dog runs.")])
        self.assertEqual(encoded[3:], ["A cat purrs."])

    def test_sequence_length_is_the_n_ctx_and_its_truncation(self):
        pre = GPT1Preprocessor(self.tokenizer, task_format="entailment", sequence_length=10)
        X, M = pre([("one two three four five six seven", "yes")])
        n_vocab = self.tokenizer.vocabulary_size
        premise = self.tokenizer.tokenize("one two three four five six seven")[:10 // 2 - 2]  # the rule
        want = [tokens.start_id(n_vocab), *premise, tokens.delimiter_id(n_vocab), *self.tokenizer.tokenize("yes"),
                tokens.clf_id(n_vocab)]
        self.assertEqual(X.shape, (1, 1, 10, 2))
        self.assertEqual(X[0, 0, :int(M.sum()), 0].tolist(), want)
        self.assertEqual(X[0, 0, :, 1].tolist(), [tokens.position_id(n_vocab, i) for i in range(10)])

    def test_one_string_and_a_dataset(self):
        pre = GPT1Preprocessor(self.tokenizer)
        np.testing.assert_array_equal(pre("Tom was hungry.")[0], pre(["Tom was hungry."])[0])
        mc = GPT1Preprocessor(self.tokenizer, task_format="multiple_choice")
        x = [("Tom was hungry.", ["He ate.", "He slept."]), ("Ann was cold.", ["She ran.", "She sat."])]
        ds = tf.data.Dataset.from_generator(lambda: iter(x), output_signature=(
            tf.TensorSpec((), tf.string), tf.TensorSpec((2,), tf.string)))
        got, want = mc(ds, tf.data.Dataset.from_tensor_slices([1, 0])), mc(x, [1, 0])
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)

    def test_bad_input_is_one_line(self):
        cases = [("entailment", ["A man sleeps."], None, "example 0: expected a \\(premise, hypothesis\\) pair"),
                 ("similarity", [("a", "b", "c")], None, "example 0: expected an \\(a, b\\) pair.*tuple of 3"),
                 ("multiple_choice", [("c", ["x", "y"]), ("c", ["x", "y", "z"])], None,
                  "example 1: 3 choices; example 0 has 2"),
                 ("multiple_choice", [("c", ["x"])], None, "example 0: 1 choice"),
                 ("multiple_choice", [("c", "xy")], None, "example 0: expected a \\(context"),
                 ("classification", ["fine", "  "], None, "example 1: empty text"),
                 ("entailment", [("fine", "")], None, "example 0\\[1\\]: empty text"),
                 ("classification", ["a", "b"], [0], "the labels: 1 label\\(s\\) .* for 2 examples"),
                 ("classification", ["a"], [-1], "label 0: -1 is not a class id"),
                 ("multiple_choice", [("c", ["x", "y"])], [2], "label 0: 2 is not the right choice's position 0..1"),
                 ("classification", ["a"], [0.5], "the labels: expected integer classes, got float"),
                 ("classification", [], None, "the examples: there are none"),
                 ("classification", 3, None, "the examples: expected a list of examples")]
        for task_format, x, y, message in cases:
            with self.subTest(task_format=task_format, x=x, y=y):
                with self.assertRaisesRegex(Gpt1Error, message) as ctx:
                    GPT1Preprocessor(self.tokenizer, task_format=task_format)(x, y)
                self.assertNotIn("\n", str(ctx.exception))

    def test_bad_settings(self):
        for kwargs in ({"task_format": "translation"}, {"sequence_length": 600}, {"max_sequence_length": 513},
                       {"sequence_length": 65, "max_sequence_length": 64}):
            with self.subTest(**kwargs), self.assertRaises(ConfigError):
                GPT1Preprocessor(self.tokenizer, **kwargs)


if __name__ == "__main__":
    unittest.main()
