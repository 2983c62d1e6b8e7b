"""GPT1Backbone.embed: one vector per text, batched as alone, and features a linear model can learn from.

A tiny random backbone (2 layers, 32 wide) on the real vocabulary; every expected vector is the
backbone's own states of the text alone.
"""
import itertools
import os
import re
import shutil
import tempfile
import unittest

import numpy as np
from sklearn.linear_model import LogisticRegression

from helpers import FIXTURES, REPO
from gpt1_tf.errors import ConfigError, Gpt1Error
from gpt1_tf.models.backbone import GPT1Backbone
from gpt1_tf.models.tokenizer import GPT1Tokenizer

FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "plum"]
VEHICLES = ["car", "truck", "bus", "train", "boat", "plane", "bike", "van"]
FILLERS = ["today", "outside", "again", "there", "yesterday", "at home"]


def tiny_backbone(n_ctx=24):
    """Every matrix N(0, 0.1), the layer norms as built: attention spreads, so a last state sees the words before it.

    (The 0.02 init leaves each state nearly its own token's; `helpers.randomised`'s layer-norm gains,
    near zero, wash the words out.)
    """
    backbone = GPT1Backbone(num_layers=2, num_heads=4, hidden_dim=32, dropout=0.0, max_sequence_length=n_ctx)
    rng = np.random.RandomState(0)
    for p in backbone.transformer.params_in_order():
        if len(p.shape) > 1:
            p.assign(rng.normal(0, 0.1, p.shape).astype(np.float32))
    return backbone


def toy_task():
    """Sentences naming two fruits (label 0) or two vehicles (label 1), then a filler shared by both."""
    rng = np.random.RandomState(0)
    texts, labels = [], []
    for label, words in enumerate((FRUITS, VEHICLES)):
        for a, b in itertools.permutations(words, 2):
            texts.append(f"I saw a {a} and a {b} {FILLERS[rng.randint(len(FILLERS))]}.")
            labels.append(label)
    return texts, np.array(labels)


class EmbedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tokenizer = GPT1Tokenizer()
        cls.backbone = tiny_backbone()

    def embed(self, texts, **kwargs):
        return self.backbone.embed(texts, tokenizer=self.tokenizer, **kwargs)

    def states_alone(self, text):
        ids = np.array([self.tokenizer.tokenize(text)], np.int32)
        return self.backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}).numpy()[0]  # [T, 32]

    def test_a_linear_model_learns_a_toy_task_from_the_embeddings(self):
        texts, labels = toy_task()
        held_out = np.random.RandomState(1).rand(len(texts)) < 0.3
        for pooling in ("last", "mean"):
            with self.subTest(pooling=pooling):
                features = self.embed(texts, pooling=pooling)
                clf = LogisticRegression(C=100, max_iter=5000).fit(features[~held_out], labels[~held_out])
                accuracy = clf.score(features[held_out], labels[held_out])
                self.assertGreater(accuracy, 0.8, f"{pooling}: {accuracy:.2f} on {held_out.sum()} held-out texts")

    def test_batched_texts_give_what_each_gives_alone(self):
        texts = ["Tom.", "Karen was assigned a roommate her first year of college.", "They went to a show!",
                 "Yes", "The bus was late again today, so I walked."]
        for pooling in ("last", "mean"):
            batched = self.embed(texts, pooling=pooling, batch_size=3)
            self.assertEqual((batched.shape, batched.dtype), ((5, 32), np.float32))
            for text, row in zip(texts, batched):
                h = self.states_alone(text)
                want = h[-1] if pooling == "last" else h.mean(0)
                np.testing.assert_allclose(row, want, atol=1e-5, rtol=0, err_msg=f"{pooling}: {text}")
                np.testing.assert_allclose(row, self.embed([text], pooling=pooling)[0], atol=1e-5, rtol=0)

    def test_mean_and_last_differ_where_they_should(self):
        texts = ["Yes", "Karen was assigned a roommate."]
        self.assertEqual(len(self.tokenizer.tokenize("Yes")), 1)
        last, mean = self.embed(texts, pooling="last"), self.embed(texts, pooling="mean")
        np.testing.assert_allclose(last[0], mean[0], atol=1e-6)  # one token: its state is the mean
        self.assertGreater(np.abs(last[1] - mean[1]).max(), 1e-2)  # several: the last is not the mean
        np.testing.assert_allclose(self.embed("Yes"), last[:1], atol=1e-6)  # one string: one row

    def test_bad_input_is_one_line(self):
        for texts, message in ((["fine", ""], "text 1: 0 tokens"), (["word " * 30], "text 0: 30 tokens; .*1..24")):
            with self.subTest(message=message), self.assertRaisesRegex(Gpt1Error, message) as ctx:
                self.embed(texts)
            self.assertNotIn("\n", str(ctx.exception))
        with self.assertRaisesRegex(ConfigError, "pooling 'max'"):
            self.embed(["fine"], pooling="max")


class ReadmeTest(unittest.TestCase):
    def test_the_preprocessor_and_embed_snippet_runs_as_written(self):
        """README's second "Keras objects" block, run on the HF fixture (a tiny GPT-1, 32 wide) in `model/`."""
        readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
        section = readme.split("### Keras objects", 1)[1].split("\n## ", 1)[0]
        block = re.findall(r"```python\n(.*?)```", section, re.S)[1]
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(FIXTURES, "hf", "bare"), os.path.join(tmp, "model"))
            cwd, scope = os.getcwd(), {}
            os.chdir(tmp)
            try:
                exec(compile(block, "README.md", "exec"), scope)
            finally:
                os.chdir(cwd)
        X, M, Y = scope["X"], scope["M"], scope["Y"]
        self.assertEqual((X.shape[:2], X.shape[3], M.shape, Y.tolist()), ((2, 1), 2, X.shape[:3], [0, 2]))
        self.assertEqual(M.sum(-1).max(), X.shape[2])  # n_ctx: what the longer example needs
        vectors, backbone = scope["vectors"], scope["backbone"]
        self.assertEqual((vectors.shape, vectors.dtype), ((2, 32), np.float32))
        np.testing.assert_allclose(vectors[1], backbone.embed("The bus was late.", pooling="mean")[0], atol=1e-5)


if __name__ == "__main__":
    unittest.main()
