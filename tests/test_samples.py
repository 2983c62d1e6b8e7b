"""The bundled task samples (datasets/make_task_samples.py): reproducible, readable, balanced, learnable.

"Learnable" here: a bag of words (or, for STS-B and RACE, a one-line heuristic) does clearly better
than chance on dev; "not trivially": it stays clearly below 100%, so a small model trained from
scratch has something to learn over the epochs and cannot be perfect after one. RACE: an option's
word alone (does any article use it?) gets about half right, because NOT questions turn it round;
reading the question and the article gets about 90%.
"""

import contextlib
import importlib.util
import io
import os
import re
import tempfile
import unittest

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

from gpt1_tf.data.generic import generic
from gpt1_tf.data.inputs import read_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = os.path.join(REPO, "datasets")
FOLDERS = ("sst2_sample", "snli_sample", "stsb_sample", "race_sample", "generic_sample")
SIZES = {"sst2": (400, 100, 100), "snli": (400, 100, 100), "stsb": (400, 100, 100), "race": (300, 99, 100),
         "generic": (400, 100, 100)}
N_CLASSES = {"sst2": 2, "snli": 3, "race": 4, "generic": 3}


def words(text):
    """Lowercased words (letters and apostrophes)."""
    return re.findall(r"[a-z']+", text.lower())


def read_all():
    """{task: {split: [Example]}} of the bundled samples, and what the readers wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        data = {name: read_task(name, os.path.join(DATASETS, f"{name}_sample"))
                for name in ("sst2", "snli", "stsb", "race")}
        paths = {s: os.path.join(DATASETS, "generic_sample", f"{s}.csv") for s in ("train", "dev", "test")}
        data["generic"] = generic(paths, text_columns=["text"], label_column="label", task_format="classification")
    return data, err.getvalue()


def files_under(root):
    """Relative paths of the files under root, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def bow_accuracy(data, text):
    """Dev accuracy of CountVectorizer + LogisticRegression trained on train; text(example) -> str."""
    vectorizer = CountVectorizer(token_pattern=r"\S+", binary=True)
    x = vectorizer.fit_transform([text(e) for e in data["train"]])
    model = LogisticRegression(max_iter=2000).fit(x, [e.label for e in data["train"]])
    predicted = model.predict(vectorizer.transform([text(e) for e in data["dev"]]))
    return float(np.mean(predicted == np.array([e.label for e in data["dev"]])))


def new_words(example):
    """The hypothesis's words that the premise lacks (a bag of words that sees the pair), or NONE."""
    premise = set(words(example.texts[0]))
    return " ".join(w for w in words(example.texts[1]) if w not in premise) or "NONE"


def jaccard(example):
    """Word overlap of the two sentences: |a & b| / |a | b|."""
    a, b = set(words(example.texts[0])), set(words(example.texts[1]))
    return len(a & b) / len(a | b)


def pair_words(example):
    """The words of both sentences, as one text."""
    return " ".join(words(" ".join(example.texts)))


def mentions(article, option):
    """Whether every word of the option occurs in the article."""
    return set(words(option)) <= set(words(article))


def is_not_question(example):
    """A RACE question asking which option the passage does NOT mention."""
    return "not" in words(example.texts[1])


def reads_the_question(example):
    """The first option the article mentions (NOT questions: does not mention), A if none."""
    negated = is_not_question(example)
    return next((i for i, c in enumerate(example.choices) if mentions(example.texts[0], c) != negated), 0)


def option_words_alone(vocabulary):
    """example -> the first option whose words all occur in some article of `vocabulary`, A if none."""
    return lambda example: next((i for i, c in enumerate(example.choices) if set(words(c)) <= vocabulary), 0)


class ReproducibleTest(unittest.TestCase):
    def assert_rewrites(self, script, folders, into=""):
        """datasets/<script>'s main(out) writes `folders` (under out/`into`) as bundled, byte for byte."""
        spec = importlib.util.spec_from_file_location(script[:-3], os.path.join(DATASETS, script))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with tempfile.TemporaryDirectory() as out:
            module.main(os.path.join(out, into))
            self.assertEqual(sorted(os.listdir(out)), sorted(folders))
            for folder in folders:
                names = files_under(os.path.join(out, folder))
                self.assertEqual(names, files_under(os.path.join(DATASETS, folder)), folder)
                for name in names:
                    with open(os.path.join(out, folder, name), "rb") as a, \
                            open(os.path.join(DATASETS, folder, name), "rb") as b:
                        self.assertEqual(a.read(), b.read(), os.path.join(folder, name))

    def test_generator_rewrites_the_bundled_files_byte_for_byte(self):
        self.assert_rewrites("make_task_samples.py", FOLDERS)

    def test_pretraining_corpus_is_rewritten_byte_for_byte(self):
        self.assert_rewrites("make_pretrain_sample.py", ["pretrain_sample"], into="pretrain_sample")


class ReadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data, cls.stderr = read_all()

    def test_only_warnings_are_snli_no_majority_rows(self):
        expected = [f"warning: {os.path.join(DATASETS, 'snli_sample', f'snli_1.0_{s}.jsonl')}: skipped {n} "
                    f"examples with gold_label '-'" for s, n in (("train", 8), ("dev", 2), ("test", 2))]
        lines = self.stderr.splitlines()
        self.assertEqual([line.split(" (first")[0] for line in lines], expected)

    def test_split_sizes(self):
        for name, sizes in SIZES.items():
            got = tuple(len(self.data[name][s]) for s in ("train", "dev", "test"))
            self.assertEqual(got, sizes, name)

    def test_every_class_in_every_split_in_a_fair_share(self):
        for name, k in N_CLASSES.items():
            for split, examples in self.data[name].items():
                if name == "sst2" and split == "test":
                    continue  # GLUE's test files have no labels
                shares = np.bincount([e.label for e in examples], minlength=k) / len(examples)
                low, high = (0.2, 0.8) if k == 2 else (0.15, 1.0)
                self.assertEqual(len(shares), k, (name, split))
                self.assertTrue(all(low <= x <= high for x in shares), (name, split, shares))

    def test_glue_test_files_have_ids_and_no_labels(self):
        for name in ("sst2", "stsb"):
            test = self.data[name]["test"]
            self.assertEqual([e.index for e in test], list(range(len(test))), name)
            self.assertTrue(all(e.label is None for e in test), name)

    def test_stsb_scores_spread_over_0_to_5(self):
        for split in ("train", "dev"):
            scores = np.array([e.label for e in self.data["stsb"][split]])
            self.assertTrue(0 <= scores.min() < 1 and 4 < scores.max() <= 5, split)
            self.assertTrue(all(np.histogram(scores, bins=5, range=(0, 5))[0] > 0.05 * len(scores)), split)

    def test_race_shapes(self):
        for split, examples in self.data["race"].items():
            self.assertEqual({e.group for e in examples}, {"middle", "high"}, split)
            self.assertTrue(all(len(e.choices) == 4 for e in examples), split)
            self.assertTrue(all(20 <= len(e.texts[0].split()) <= 60 for e in examples), split)
            self.assertTrue(any("_" in e.texts[1] for e in examples), split)  # some cloze questions
            not_share = np.mean([is_not_question(e) for e in examples])
            self.assertTrue(0.25 <= not_share <= 0.5, (split, not_share))

    def test_race_answers_are_exact(self):
        """A fact question's answer is in the article; a NOT question's is the one option that is not."""
        for split, examples in self.data["race"].items():
            for e in examples:
                mentioned = [mentions(e.texts[0], c) for c in e.choices]
                if is_not_question(e):
                    self.assertEqual(mentioned, [i != e.label for i in range(4)], (split, e.texts[1], e.choices))
                else:
                    self.assertTrue(mentioned[e.label], (split, e.texts[1], e.choices))

    def test_texts_are_short(self):
        for name in ("sst2", "snli", "stsb", "generic"):
            for split, examples in self.data[name].items():
                longest = max(len(" ".join(e.texts).split()) for e in examples)
                self.assertLessEqual(longest, 30, (name, split))

    def test_generic_csv_quotes_texts_with_commas(self):
        texts = [e.texts[0] for e in self.data["generic"]["train"]]
        self.assertTrue(any("," in t for t in texts))
        with open(os.path.join(DATASETS, "generic_sample", "train.csv"), encoding="utf-8") as f:
            self.assertIn('"', f.read())


class LearnableTest(unittest.TestCase):
    """Clearly above chance, clearly below 100%: the numbers the samples were tuned to."""

    @classmethod
    def setUpClass(cls):
        cls.data, _ = read_all()

    def test_classification_bag_of_words(self):
        for name in ("sst2", "generic"):
            accuracy = bow_accuracy(self.data[name], lambda e: " ".join(words(e.texts[0])))
            self.assertTrue(0.65 <= accuracy <= 0.93, (name, accuracy))

    def test_snli_label_depends_on_the_pair(self):
        pair = bow_accuracy(self.data["snli"], new_words)
        hypothesis_only = bow_accuracy(self.data["snli"], lambda e: " ".join(words(e.texts[1])))
        self.assertTrue(0.65 <= pair <= 0.93, pair)
        self.assertLess(hypothesis_only, pair - 0.05)  # the premise matters

    def test_stsb_score_follows_word_overlap(self):
        for split in ("train", "dev"):
            examples = self.data["stsb"][split]
            r = np.corrcoef([jaccard(e) for e in examples], [e.label for e in examples])[0, 1]
            self.assertTrue(0.5 <= r <= 0.95, (split, r))

    def test_stsb_bag_of_words_helps_but_not_fully(self):
        """The pair's words (rewordings' synonyms) predict the score in part: ridge regression, dev Pearson.

        Word counts over both sentences, so that the overlap itself is no feature (a binary bag would
        see it as fewer distinct words)."""
        data = self.data["stsb"]
        vectorizer = CountVectorizer(token_pattern=r"\S+")
        x = vectorizer.fit_transform([pair_words(e) for e in data["train"]])
        model = Ridge(alpha=1.0).fit(x, [e.label for e in data["train"]])
        predicted = model.predict(vectorizer.transform([pair_words(e) for e in data["dev"]]))
        r = np.corrcoef(predicted, [e.label for e in data["dev"]])[0, 1]
        self.assertTrue(0.4 <= r <= 0.85, r)

    def test_race_answer_follows_the_article_and_the_question(self):
        for split, examples in self.data["race"].items():
            hits = np.mean([reads_the_question(e) == e.label for e in examples])
            self.assertTrue(0.8 <= hits <= 0.97, (split, hits))  # traps: two options the article mentions

    def test_race_option_words_alone_are_not_enough(self):
        """Which words articles use is a cue, but NOT questions turn it round: about half right."""
        guess = option_words_alone({w for e in self.data["race"]["train"] for w in words(e.texts[0])})
        for split, examples in self.data["race"].items():
            alone = np.mean([guess(e) == e.label for e in examples])
            self.assertTrue(0.35 <= alone <= 0.7, (split, alone))


if __name__ == "__main__":
    unittest.main()
