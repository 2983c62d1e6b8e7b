"""GPT1CausalLM: generate (samplers, batches, stopping, traced once per shape), score, generate.py's new flags.

- greedy and beam search (num_beams 4) give transformers' tokens on the HF fixture
  (`fixtures/hf/expected.npz` greedy_*, `fixtures/hf/beam.npz` beam4_*, made by
  benchmarks/make_beam_fixture.py), alone and as one padded batch of both prompts;
- a batch of texts of different lengths gets, row by row, the tokens each gets alone (greedy, exact);
- seeded samplers repeat, other seeds differ; names and objects; bad samplers one line;
- stop_token_ids end a row (the token kept), stop strings cut the text, strip_prompt;
- a second call with the same shapes traces nothing; compile(sampler=...) traces anew;
- score is lm.scoring's (sliding windows) per text, perplexity its exp;
- the README's load -> generate snippet runs; generate.py's --prompt x2, --num_beams, --stop, bad input.
"""
import contextlib
import functools
import io
import os
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import tensorflow as tf

from helpers import FIXTURES, REPO
import gpt1_tf
from gpt1_tf.cli import generate as generate_cli
from gpt1_tf.errors import ConfigError, Gpt1Error
from gpt1_tf.lm import samplers
from gpt1_tf.lm.generation import Generator
from gpt1_tf.lm.scoring import token_losses
from gpt1_tf.models.causal_lm import GPT1CausalLM

HF_BARE = os.path.join(FIXTURES, "hf", "bare")
PROMPTS = ["karen was assigned a roommate her first year of college .", "tom was hungry", "it rained all day long ."]


def fixture(name):
    return dict(np.load(os.path.join(FIXTURES, "hf", name)))


def batch_of(rows):
    """keras-hub's preprocessed inputs of id lists, padded on the right."""
    T = max(len(r) for r in rows)
    token_ids, mask = np.zeros((len(rows), T), np.int32), np.zeros((len(rows), T), bool)
    for i, r in enumerate(rows):
        token_ids[i, :len(r)], mask[i, :len(r)] = r, True
    return {"token_ids": token_ids, "padding_mask": mask}


class CausalLMTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lm = GPT1CausalLM.from_preset(HF_BARE)

    def setUp(self):
        super().setUp()
        self.lm.compile(sampler="greedy")

    def new_tokens(self, rows, n_new, **kw):
        """Each row's n_new new ids, all rows in one call (max_length: the longest + n_new)."""
        out = self.lm.generate(batch_of(rows), max_length=max(map(len, rows)) + n_new, **kw)
        return [ids[len(r):len(r) + n_new] for ids, r in zip(out["token_ids"], rows)]

    def test_greedy_and_beam_equal_transformers_alone_and_batched(self):
        e, beam = fixture("expected.npz"), fixture("beam.npz")
        prompts = [e["ids_0"], e["ids_1"]]  # 5 and 17 tokens
        for sampler, want in (("greedy", [e["greedy_0"], e["greedy_1"]]),
                              (samplers.BeamSampler(num_beams=4), [beam["beam4_0"], beam["beam4_1"]])):
            self.lm.compile(sampler=sampler)
            for i, p in enumerate(prompts):
                self.assertAllEqual(self.new_tokens([p], 24)[0], want[i], msg=f"{sampler} prompt {i}")
            for i, got in enumerate(self.new_tokens(prompts, 24)):
                self.assertAllEqual(got, want[i], msg=f"{sampler} prompt {i} in a batch")
        self.assertNotAllEqual(beam["beam4_1"], e["greedy_1"])  # the beams find another continuation

    def test_a_batch_of_texts_gets_what_each_gets_alone(self):
        batch = self.lm.generate(PROMPTS, max_length=24)
        self.assertEqual(batch, [self.lm.generate(p, max_length=24) for p in PROMPTS])
        ids = [self.lm.tokenizer.tokenize(p) for p in PROMPTS]
        self.assertEqual(len({len(i) for i in ids}), 3)  # three lengths
        alone = [self.new_tokens([r], 24 - len(r))[0] for r in ids]
        for got, want in zip(self.new_tokens(ids, 24 - min(map(len, ids))), alone):
            self.assertAllEqual(got[:len(want)], want)
        self.assertIsInstance(self.lm.generate(PROMPTS[0], max_length=24), str)
        self.assertTrue(batch[0].startswith(PROMPTS[0]))

    def test_samplers_by_name_and_object_seeded(self):
        for sampler in (samplers.RandomSampler(temperature=2.0, seed=1), samplers.TopKSampler(k=50, seed=1),
                        samplers.TopPSampler(p=0.9, temperature=2.0, seed=1)):
            self.lm.compile(sampler=sampler)
            a, b = self.lm.generate(PROMPTS, max_length=20), self.lm.generate(PROMPTS, max_length=20)
            self.assertEqual(a, b, sampler)
            self.lm.compile(sampler=type(sampler)(**{**sampler.__dict__, "seed": 2}))
            self.assertNotEqual(self.lm.generate(PROMPTS, max_length=20), a, sampler)
        for name in samplers.SAMPLERS:
            self.lm.compile(sampler=name)
            self.assertIsInstance(self.lm.sampler, samplers.SAMPLERS[name])
            self.assertLen(self.lm.generate(PROMPTS[:2], max_length=16), 2)
        with self.assertRaisesRegex(ConfigError, "one of greedy, random, top_k, top_p, beam"):
            self.lm.compile(sampler="nucleus")
        self.assertRaises(ConfigError, samplers.get, samplers.TopPSampler(p=1.5))
        self.assertRaises(ConfigError, samplers.BeamSampler, num_beams=0)

    def test_stopping_and_strip_prompt(self):
        e = fixture("expected.npz")
        stop = int(e["greedy_1"][10])  # greedy_1: 10 times one token, then another
        out = self.lm.generate(batch_of([e["ids_1"]]), max_length=17 + 24, stop_token_ids=[stop])
        self.assertEqual(out["padding_mask"].sum(), 17 + 11)  # the stop token kept, nothing after it
        self.assertAllEqual(out["token_ids"][0, 17:28], e["greedy_1"][:11])
        full = self.lm.generate(PROMPTS[1], max_length=14)
        new = self.lm.generate(PROMPTS[1], max_length=14, strip_prompt=True)
        self.assertEqual(full, PROMPTS[1] + " " + new)
        word = new.split()[1]
        cut = self.lm.generate(PROMPTS[1], max_length=14, stop=["zzz", word])
        self.assertEqual(cut, (PROMPTS[1] + " " + new[:new.index(word)]).rstrip())
        self.assertRaisesRegex(ConfigError, "stop_token_ids", self.lm.generate, "x", stop_token_ids=[10 ** 6])

    def test_beams_stop_at_a_stop_token(self):
        e, beam = fixture("expected.npz"), fixture("beam.npz")
        self.lm.compile(sampler=samplers.BeamSampler(num_beams=4))
        stop = int(beam["beam4_1"][1])  # the beams' second token: some beam makes it early
        out = self.lm.generate(batch_of([e["ids_1"], e["ids_0"]]), max_length=17 + 24, stop_token_ids=[stop])
        for row, n, mask in zip(out["token_ids"], (17, 5), out["padding_mask"]):
            end = int(mask.sum())
            self.assertAllEqual(mask[:end], np.ones(end, bool))
            self.assertNotIn(stop, row[n:end - 1].tolist())  # nothing after the first stop token
            self.assertTrue(row[end - 1] == stop or end == 17 + 24)
        self.assertLess(out["padding_mask"][0].sum(), 17 + 24)  # the first prompt's best beam stopped

    def test_traced_once_per_shape_until_compile(self):
        traces = []
        original = Generator._decode

        @functools.wraps(original)
        def counted(*args, **kwargs):
            traces.append(1)
            return original(*args, **kwargs)

        with mock.patch.object(Generator, "_decode", counted):
            self.lm.compile(sampler="greedy")
            self.lm.generate(["tom was hungry", "a b c d e"], max_length=20)
            first = len(traces)
            self.assertGreater(first, 0)
            self.lm.generate(["it rained", "the dog ran away fast"], max_length=20)  # same batch, bucket, max_length
            self.assertLen(traces, first)
            self.lm.compile(sampler="greedy")
            self.lm.generate(["tom was hungry", "a b c d e"], max_length=20)
            self.assertLen(traces, first + 1)

    def test_bad_input_is_one_line(self):
        for call, words in ((lambda: self.lm.generate("word " * 512), "512 tokens"),
                            (lambda: self.lm.generate("a b c d", max_length=3), "max_length 3"),
                            (lambda: self.lm.generate("a", max_length=513), "max_length 513"),
                            (lambda: self.lm.score("a"), "at least 2")):
            with self.assertRaises(Gpt1Error) as caught:
                call()
            self.assertIn(words, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))
        self.assertRaisesRegex(Gpt1Error, "nonexistent", GPT1CausalLM.from_preset, "/nonexistent/model")

    def test_score_is_the_sliding_windows_of_lm_scoring(self):
        lm = GPT1CausalLM.from_preset(HF_BARE, max_sequence_length=16)
        text = " ".join(["karen was assigned a roommate her first year of college ."] * 4)
        ids = lm.tokenizer.tokenize(text)
        self.assertGreater(len(ids), 16)
        got = lm.score([text, PROMPTS[1]])
        self.assertAllClose(got["log_probs"][0], -token_losses(lm.backbone, ids), atol=1e-6, rtol=0)
        self.assertLen(got["log_probs"][1], len(lm.tokenizer.tokenize(PROMPTS[1])) - 1)
        self.assertAllClose(got["perplexity"], [np.exp(-lp.mean()) for lp in got["log_probs"]], rtol=1e-6)
        one = lm.score(PROMPTS[1])
        self.assertAllClose(one["log_probs"], got["log_probs"][1])
        self.assertIsInstance(one["perplexity"], float)

    def test_logits_are_the_tied_head_over_the_token_rows(self):
        e = fixture("expected.npz")
        logits = self.lm(e["ids_0"][None])
        self.assertEqual(logits.shape, (1, 5, 40478))
        self.assertAllClose(logits[0], e["lm_logits_0"], atol=1e-4, rtol=0)


class ReadmeAndTopTest(tf.test.TestCase):
    def test_the_readme_load_generate_snippet_runs(self):
        text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
        snippet = re.search(r"```python\n((?:(?!```).)*?GPT1CausalLM\.from_preset.*?)```", text, re.S).group(1)
        names = {}
        exec(snippet.replace('"model/"', repr(HF_BARE)), names)
        self.assertIsInstance(names["texts"], list)
        self.assertIsInstance(names["scores"]["perplexity"], list)

    def test_the_package_top_stays_tensorflow_free(self):
        code = ("import sys, gpt1_tf; assert 'tensorflow' not in sys.modules; "
                "assert 'GPT1CausalLM' in dir(gpt1_tf); print(gpt1_tf.GPT1CausalLM.__name__)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": REPO})
        self.assertEqual(out.stdout.strip().splitlines()[-1:], ["GPT1CausalLM"], out.stderr[-2000:])
        self.assertIs(gpt1_tf.GPT1CausalLM, GPT1CausalLM)


class GenerateCliTest(tf.test.TestCase):
    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = generate_cli.main(["--model_dir", HF_BARE, *args])
        return code, out.getvalue(), err.getvalue()

    def test_several_prompts_beams_and_stop(self):
        code, out, err = self.run_main("--prompt", PROMPTS[1], "--prompt", PROMPTS[2], "--num_beams", "4",
                                       "--length", "6")
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0::2], ["=== prompt 1, sample 1 ===", "=== prompt 2, sample 1 ==="])
        lm = GPT1CausalLM.from_preset(HF_BARE)
        lm.compile(sampler=samplers.BeamSampler(num_beams=4))
        n = [len(lm.tokenizer.tokenize(p)) for p in PROMPTS[1:]]
        self.assertEqual(lines[1::2], [lm.generate(p, max_length=k + 6) for p, k in zip(PROMPTS[1:], n)])
        code, out, err = self.run_main("--prompt", PROMPTS[1], "--greedy", "--length", "6")
        word = out.splitlines()[1][len(PROMPTS[1]):].split()[0]  # the first new word
        code, out, err = self.run_main("--prompt", PROMPTS[1], "--greedy", "--length", "6", "--stop", word)
        self.assertEqual((code, out.splitlines()[1]), (0, PROMPTS[1]), err)

    def test_bad_input(self):
        for args, words in ((("--num_beams", "0"), "--num_beams must be at least 1"),
                            (("--num_beams", "2", "--top_k", "5"), "--num_beams"),
                            (("--prompt", "word " * 600), "tokens: GPT-1's context holds 512")):
            code, out, err = self.run_main("--prompt", "x", *args) if args[0] != "--prompt" else self.run_main(*args)
            self.assertEqual(code, 1, out + err)
            self.assertLen(err.strip().splitlines(), 1, err)
            self.assertIn(words, err)
