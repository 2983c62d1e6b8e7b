"""GPT-1 as a language model: KV-cache generation and scoring, against transformers' outputs and NumPy.

- greedy continuations equal transformers' 24 tokens (`fixtures/hf/expected.npz`), through the HF
  weights and the same arrays converted to the original's shards, with and without XLA, and through
  `GPT1CausalLM.generate`;
- each cached step gives the logits and hidden states of a full forward over the whole prefix (1e-5);
- the softmax covers the n_vocab token rows only: a special row that would win the full table's
  argmax is never picked;
- sampling draws from the filtered softmax (frequencies, top-k, top-p against NumPy);
- per-sequence mean losses equal transformers' `lm_loss_*` (1e-5); sliding windows score each
  token once, with the context its window gives, whatever the stride (one of n_ctx or more too);
- the module docstring's example runs as written;
- generate.py: the bad inputs of the issue (non-finite floats, a params file without its head file),
  one line, exit 1; its missing-weights advice is its own, not train.py's.
"""
import contextlib
import io
import os
import tempfile

import numpy as np
import tensorflow as tf

from helpers import FIXTURES, N_CTX, N_VOCAB, randomised
from gpt1_tf.cli import export, generate
from gpt1_tf.weights import formats
from gpt1_tf.network import tokens
from gpt1_tf.weights import pretrained
from gpt1_tf.network.config import ModelConfig, Sampling
from gpt1_tf.lm.generation import Generator, filter_logits
from gpt1_tf.lm.scoring import token_losses, windows
from gpt1_tf.network.model import TransformerModel, with_positions
from gpt1_tf.weights.convert import model_config, to_params

HF_BARE = os.path.join(FIXTURES, "hf", "bare")
TOL = 1e-5


def expected():
    return dict(np.load(os.path.join(FIXTURES, "hf", "expected.npz")))


def model_of(weights, n_ctx=512):
    cfg = model_config(weights, n_ctx=n_ctx, embd_pdrop=0, attn_pdrop=0, resid_pdrop=0, clf_pdrop=0)
    model = TransformerModel(cfg)
    pretrained.set_params(model, to_params(weights, cfg))
    return model


def tiny_model(seed=0, n_ctx=N_CTX):
    cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=n_ctx, n_embd=16, n_head=2, n_layer=2, embd_pdrop=0, attn_pdrop=0,
                      resid_pdrop=0, clf_pdrop=0)
    return randomised(TransformerModel(cfg), seed=seed) if seed is not None else TransformerModel(cfg)


def full_logits(model, ids):
    """NumPy: the LM logits over the token rows at every position of ids, from a full forward."""
    cfg = model.cfg
    X = np.stack([ids, tokens.position_id(cfg.n_vocab, np.arange(len(ids)), cfg.n_special)], -1)[None]
    h, we = model.transformer.hidden(tf.constant(X, tf.int32))
    return h[0].numpy().astype(np.float64) @ we.numpy()[:cfg.n_vocab].T.astype(np.float64)


class GreedyParityTest(tf.test.TestCase):
    def test_greedy_equals_transformers_through_hf_weights_and_shards(self):
        from gpt1_tf.weights import hf
        e, tmp = expected(), tempfile.mkdtemp()
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(export.main([HF_BARE, "--to", "shards", "--out", f"{tmp}/shards"]), 0)
        weights = pretrained.load_shards(f"{tmp}/shards")
        from gpt1_tf.weights.convert import Weights
        models = {"hf": model_of(hf.read(HF_BARE)), "shards": model_of(Weights(weights, n_head=4))}
        for (name, model), jit in (((n, m), j) for n, m in models.items() for j in (False, True)):
            if name == "shards" and jit:
                continue  # one XLA compilation is enough
            generator = Generator(model, jit_compile=jit)
            for i in (0, 1):
                got = generator.generate(list(e[f"ids_{i}"]), 24)
                self.assertAllEqual(got[0], e[f"greedy_{i}"], msg=f"{name} xla={jit} prompt {i}")

    def test_the_causal_lm_gives_transformers_greedy_tokens(self):
        from gpt1_tf.models.causal_lm import GPT1CausalLM
        e, lm = expected(), GPT1CausalLM.from_preset(HF_BARE)
        lm.compile(sampler="greedy")
        for i in (0, 1):
            ids = e[f"ids_{i}"]
            out = lm.generate({"token_ids": ids[None], "padding_mask": np.ones((1, len(ids)), bool)},
                              max_length=len(ids) + 24)
            self.assertAllEqual(out["token_ids"][0, len(ids):], e[f"greedy_{i}"], msg=f"prompt {i}")


class CacheTest(tf.test.TestCase):
    def test_each_cached_step_gives_the_full_forward_logits(self):
        model = tiny_model(1)
        generator, body = Generator(model), model.transformer
        ids = np.random.RandomState(0).randint(0, N_VOCAB + 3, 12).astype(np.int32)
        want = full_logits(model, ids)
        h, cache = body.hidden_with_cache(tf.constant(ids[None, :5]), body.empty_cache(1), 0)
        self.assertAllClose(generator.next_logits(h[:, -1])[0], want[4], atol=TOL, rtol=0)
        for t in range(5, 12):
            h, cache = body.hidden_with_cache(tf.constant(ids[None, t:t + 1]), cache, tf.constant(t))
            self.assertAllClose(generator.next_logits(h[:, -1])[0], want[t], atol=TOL, rtol=0, msg=f"position {t}")

    def test_cached_states_equal_the_full_forwards(self):
        # the blocks given a cache (the generator's pass) and without one (training's) must agree:
        # two sequences, a prompt then one token a call, or one token a call from position 0
        model = tiny_model(10)
        body = model.transformer
        ids = np.random.RandomState(3).randint(0, N_VOCAB + 3, (2, N_CTX)).astype(np.int32)
        want = body.hidden(with_positions(tf.constant(ids), model.cfg))[0]
        for prompt in (4, 1):
            with self.subTest(prompt=prompt):
                h, cache = body.hidden_with_cache(tf.constant(ids[:, :prompt]), body.empty_cache(2), 0)
                got = [h]
                for t in range(prompt, N_CTX):
                    h, cache = body.hidden_with_cache(tf.constant(ids[:, t:t + 1]), cache, tf.constant(t))
                    got.append(h)
                self.assertEqual(cache.shape, body.empty_cache(2).shape)
                self.assertAllClose(tf.concat(got, 1), want, atol=TOL, rtol=0)

    def test_a_cache_as_long_as_the_text_gives_the_same_states(self):
        # the generator sizes its cache by max_length: fewer columns than n_ctx, the same states
        model = tiny_model(12)
        body = model.transformer
        ids = np.random.RandomState(4).randint(0, N_VOCAB + 3, (2, N_CTX)).astype(np.int32)
        want = body.hidden(with_positions(tf.constant(ids), model.cfg))[0]
        length = N_CTX // 2
        h, cache = body.hidden_with_cache(tf.constant(ids[:, :3]), body.empty_cache(2, length), 0)
        got = [h]
        for t in range(3, length):
            h, cache = body.hidden_with_cache(tf.constant(ids[:, t:t + 1]), cache, tf.constant(t))
            got.append(h)
        self.assertEqual(cache.shape[4], length)
        self.assertAllClose(tf.concat(got, 1), want[:, :length], atol=TOL, rtol=0)

    def test_several_positions_only_at_the_start(self):
        body = tiny_model(11).transformer
        with self.assertRaisesRegex(ValueError, "cache_update_index 0 only"):
            body.hidden_with_cache(tf.constant([[1, 2]]), body.empty_cache(1), 3)

    def test_greedy_is_the_argmax_of_the_full_forward_each_step(self):
        model = tiny_model(2)
        prompt = [N_VOCAB, 3, 7]  # _start_ and two tokens
        got = Generator(model).generate(prompt, 10)[0]
        ids = list(prompt)
        for _ in range(10):
            ids.append(int(np.argmax(full_logits(model, np.array(ids))[-1])))
        self.assertAllEqual(got, ids[3:])

    def test_the_special_and_position_rows_are_never_picked(self):
        model = tiny_model(3)
        prompt = [1, 2, 3]
        h = model.transformer.hidden(tf.constant([[[i, tokens.position_id(N_VOCAB, p)] for p, i in enumerate(prompt)]]))[0]
        we = model.we.numpy()
        we[N_VOCAB] = 1000 * h[0, -1].numpy()  # _start_'s row: the full table's argmax, had it been scored
        we[tokens.position_id(N_VOCAB, 0):] = 1000 * h[0, -1].numpy()
        model.we.assign(we)
        self.assertGreaterEqual(int(np.argmax(we @ h[0, -1].numpy())), N_VOCAB)
        got = Generator(model).generate(prompt, 5)
        self.assertLess(got.max(), N_VOCAB)
        sampled = Generator(model).generate(prompt, 5, n_samples=50, sampling=Sampling(temperature=5.0), seed=1)
        self.assertLess(sampled.max(), N_VOCAB)

    def test_the_context_limit(self):
        generator = Generator(tiny_model(4))
        self.assertEqual(generator.room([1] * 10), N_CTX - 10)
        self.assertEqual(generator.generate([1] * 10, N_CTX - 10).shape, (1, N_CTX - 10))
        with self.assertRaisesRegex(Exception, "exceed the 16 positions"):
            generator.generate([1] * 10, N_CTX - 9)


class SamplingTest(tf.test.TestCase):
    def test_first_tokens_follow_the_softmax(self):
        model = tiny_model(5)
        model.we.assign(model.we * 0.3)  # a flat-ish distribution: many tokens get drawn
        prompt = [N_VOCAB, 4, 9]
        p = np.exp(full_logits(model, np.array(prompt))[-1])
        p /= p.sum()
        n = 4000
        got = Generator(model).generate(prompt, 1, n_samples=n, sampling=Sampling(), seed=7)[:, 0]
        freq = np.bincount(got, minlength=N_VOCAB) / n
        self.assertLess(np.abs(freq - p).max(), 4 * np.sqrt(p.max() / n))  # 4 standard deviations
        self.assertGreater(len(set(got.tolist())), 5)

    def test_seeds(self):
        gen, s = Generator(tiny_model(6)), Sampling(temperature=2.0)
        a, b, c = (gen.generate([1, 2], 8, n_samples=3, sampling=s, seed=seed) for seed in (1, 1, 2))
        self.assertAllEqual(a, b)
        self.assertNotAllEqual(a, c)

    def test_top_k_and_top_p_against_numpy(self):
        logits = np.random.RandomState(0).randn(4, 30).astype(np.float32) * 2
        for top_k, top_p, temperature in ((5, 1.0, 1.0), (0, 0.5, 1.0), (0, 0.9, 0.7), (3, 0.8, 1.3)):
            got = filter_logits(tf.constant(logits), Sampling(temperature, top_k, top_p)).numpy()
            for row, z in zip(got, logits / temperature):
                keep = np.ones(30, bool)
                if top_k:
                    keep &= z >= np.sort(z)[-top_k]
                # top-p on what top-k kept, renormalised (the usual order: k first, then p)
                order = np.argsort(-np.where(keep, z, -np.inf))[:keep.sum()]
                p = np.exp(z[order] - z.max())
                p /= p.sum()
                n_nucleus = int(np.searchsorted(np.cumsum(p), top_p) + 1)  # smallest prefix with mass >= top_p
                nucleus = np.zeros(30, bool)
                nucleus[order[:n_nucleus]] = True
                keep &= nucleus
                self.assertAllEqual(np.isfinite(row), keep, msg=f"top_k {top_k} top_p {top_p}")
                self.assertAllClose(row[keep], z[keep], atol=1e-6, rtol=0)

    def test_bad_sampling_settings(self):
        for kw in (dict(top_p=0.0), dict(top_p=1.01), dict(top_k=-1), dict(temperature=0.0)):
            self.assertRaises(Exception, Sampling, **kw)


class ScoringTest(tf.test.TestCase):
    def test_mean_losses_equal_transformers(self):
        from gpt1_tf.weights import hf
        e, model = expected(), model_of(hf.read(HF_BARE))
        for i in range(4):
            losses = token_losses(model, e[f"ids_{i}"])
            self.assertLen(losses, len(e[f"ids_{i}"]) - 1)
            self.assertAllClose(losses.mean(), e[f"lm_loss_{i}"], atol=TOL, rtol=0)

    def test_windows_score_each_token_once(self):
        cases = [(5, 16, None), (16, 16, None), (17, 16, None), (100, 16, None), (100, 16, 5), (512, 512, None),
                 (1300, 512, 256), (180, 64, 64), (1300, 512, 512)]
        cases += [(n, n_ctx, stride) for n in (1, 2, 3, 5, 16, 17, 40, 100) for n_ctx in (2, 3, 7, 16)
                  for stride in (None, 1, 2, n_ctx - 1, n_ctx, n_ctx + 1, 3 * n_ctx)]
        for n, n_ctx, stride in cases:
            with self.subTest(n=n, n_ctx=n_ctx, stride=stride):
                spans = windows(n, n_ctx, stride)
                scored = [j for start, end, first in spans for j in range(first, end)]
                self.assertEqual(scored, list(range(1, n)))  # each token after the first, once, in order
                self.assertTrue(all(0 <= start and end - start <= n_ctx for start, end, _ in spans))
                # a scored token's window holds at least one token before it: its context
                self.assertTrue(all(start < first for start, end, first in spans))
        self.assertEqual(windows(1, 1), [(0, 1, 1)])
        self.assertRaisesRegex(Exception, "1 position cannot score", windows, 2, 1)  # no token has context

    def assert_window_losses(self, model, ids, stride):
        """token_losses: n - 1 losses, each its window's full-forward loss (NumPy)."""
        losses = token_losses(model, ids, stride=stride)
        self.assertEqual(losses.shape, (len(ids) - 1,))
        for start, end, first in windows(len(ids), model.cfg.n_ctx, stride):
            z = full_logits(model, ids[start:end])
            z = z - z.max(-1, keepdims=True)
            nll = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(end - start - 1), ids[start + 1:end]]
            self.assertAllClose(losses[first - 1:end - 1], nll[first - start - 1:], atol=TOL, rtol=0)
        return losses

    def test_long_texts_use_each_windows_context(self):
        model = tiny_model(8)
        ids = np.random.RandomState(1).randint(0, N_VOCAB, 40).astype(np.int32)
        self.assert_window_losses(model, ids, 6)

    def test_a_stride_of_n_ctx_or_more_scores_every_token(self):
        model = tiny_model(8)
        ids = np.random.RandomState(2).randint(0, N_VOCAB, 40).astype(np.int32)
        one_window = token_losses(model, ids[:N_CTX])  # the text that fits: its losses whatever the stride
        for stride in (N_CTX - 1, N_CTX, N_CTX + 1, 100):
            with self.subTest(stride=stride):
                losses = self.assert_window_losses(model, ids, stride)
                self.assertAllClose(losses[:N_CTX - 1], one_window, atol=TOL, rtol=0)
                self.assertAllEqual(token_losses(model, ids[:N_CTX], stride=stride), one_window)


class DocstringExampleTest(tf.test.TestCase):
    def test_the_module_docstrings_example_runs(self):
        from gpt1_tf.lm import generation
        example = [line[4:] for line in generation.__doc__.splitlines() if line.startswith("    ")]
        self.assertTrue(any("gen.generate(" in line for line in example), example)
        names = {"model": tiny_model(9, n_ctx=64), "prompt_ids": [N_VOCAB, 3, 7], "text_ids": [i % N_VOCAB for i in range(79)]}
        exec("\n".join(example), names)
        self.assertEqual(names["ids"].shape, (2, 40))
        self.assertEqual(names["losses"].shape, (78,))


class GenerateCliTest(tf.test.TestCase):
    def run_main(self, *args, stdin=""):
        import sys
        out, err, saved = io.StringIO(), io.StringIO(), sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = generate.main(["--model_dir", HF_BARE, *args])
        finally:
            sys.stdin = saved
        return code, out.getvalue(), err.getvalue()

    def assert_one_line_error(self, result, *words):
        code, out, err = result
        self.assertEqual(code, 1, out + err)
        self.assertLen(err.strip().splitlines(), 1, err)
        for word in words:
            self.assertIn(word, err)

    def test_prompt_from_stdin_and_the_decoded_text(self):
        code, out, err = self.run_main("--greedy", "--length", "4", stdin="karen was assigned a roommate")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.splitlines()[1].startswith("karen was assigned a roommate "), out)

    def test_it_stops_at_the_context(self):
        code, out, err = self.run_main("--greedy", "--length", "5", "--prompt", "word " * 510)
        self.assertEqual(code, 0, err)
        self.assertIn("stopped after 2 new tokens", err)

    def test_bad_input(self):
        self.assert_one_line_error(self.run_main("--prompt", "word " * 512), "512 tokens", "context")
        self.assert_one_line_error(self.run_main("--prompt", "x", "--top_p", "1.5"), "--top_p")
        self.assert_one_line_error(self.run_main("--prompt", "x", "--top_p", "0"), "--top_p")
        code, out, err = self.run_main("--prompt", "x", "--model_dir", "/nonexistent/model")
        self.assertEqual(code, 1)
        self.assertIn("/nonexistent/model", err)
        path = os.path.join(tempfile.mkdtemp(), "latin1.txt")
        with open(path, "wb") as f:
            f.write(b"caf\xe9\n")
        self.assert_one_line_error(self.run_main("--score", path), path, "UTF-8")

    def test_non_finite_floats_are_refused(self):
        for flag in ("--temperature", "--top_p"):
            for value in ("nan", "inf", "-inf"):
                with self.subTest(flag=flag, value=value):
                    self.assert_one_line_error(self.run_main("--prompt", "x", f"{flag}={value}"),
                                               f"{flag} must be a finite number")
        self.assert_one_line_error(self.run_main("--prompt", "x", "--greedy", "--temperature", "nan"),
                                   "--temperature must be a finite number")

    def test_missing_weights_get_generates_own_advice(self):
        empty = tempfile.mkdtemp()
        for model_dir, file in (("/nonexistent/model", "/nonexistent/model"),
                                (empty, os.path.join(empty, "params_shapes.json"))):
            with self.subTest(model_dir=model_dir):
                result = self.run_main("--prompt", "x", "--model_dir", model_dir)
                self.assert_one_line_error(result, file, "--model_dir", "--params")
                self.assertNotIn("n_transfer", result[2])
        # train.py's --model_dir keeps its own
        with self.assertRaisesRegex(Exception, "--n_transfer -1 to train from scratch$"):
            formats.read_pretrained("/nonexistent/model")

    def test_a_params_file_without_its_head_file(self):
        # the original's best_params.jl (ROCStories, multiple choice) never had a head file: it loads;
        # another head's params without theirs are refused naming the missing file, not "the heads differ"
        from gpt1_tf.weights import hf
        weights, tmp = hf.read(HF_BARE), tempfile.mkdtemp()
        for task_format, n_classes in (("multiple_choice", 0), ("classification", 3)):
            cfg = ModelConfig(n_vocab=weights.tokens.shape[0], n_ctx=20, n_embd=32, n_head=4, n_layer=2,
                              task_format=task_format, n_classes=n_classes)
            path = os.path.join(tmp, task_format, "best_params.jl")
            pretrained.save_params(path, to_params(weights, cfg), cfg)
            os.unlink(pretrained.head_path(path))
            result = self.run_main("--params", path, "--n_head", "4", "--greedy", "--length", "2", "--prompt", "x")
            out = os.path.join(tmp, task_format, "hf")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                exported = export.main([path, "--to", "hf", "--out", out, "--n_head", "4"]), err.getvalue()
            if task_format == "multiple_choice":
                self.assertEqual((result[0], exported[0]), (0, 0), result[2] + exported[1])
                continue
            for code, err in (result[::2], exported):
                self.assert_one_line_error((code, "", err), path, "best_params.head.json is missing", "(32, 3)")
                self.assertNotIn("heads differ", err)
            self.assertFalse(os.path.exists(out))

    def test_score_with_a_stride_of_n_ctx_scores_every_token(self):
        # 512 positions: --stride 512 advances by 511, as --stride 511 does (its second window had no
        # context for its first token and scored only its last; a third window is needed to show it)
        path = os.path.join(tempfile.mkdtemp(), "long.txt")
        with open(path, "w") as f:
            f.write("the cat sat on the mat . " * 160)
        lines = []
        for stride in ("511", "512", "2000"):
            code, out, err = self.run_main("--score", path, "--stride", stride)
            self.assertEqual(code, 0, err)
            lines.append(out)
        self.assertEqual(lines[1], lines[0])
        self.assertEqual(lines[2], lines[0])
        self.assertGreater(int(lines[0].split("\t")[1].split()[1]), 2 * 512)

    def test_a_fine_tuned_params_file(self):
        # a best_params.jl (with its head file) of a model of the fixture's size: greedy tokens of its LM
        from gpt1_tf.weights import hf
        weights = hf.read(HF_BARE)
        model = model_of(weights, n_ctx=40)
        path = os.path.join(tempfile.mkdtemp(), "best_params.jl")
        pretrained.save_params(path, pretrained.get_params(model), model.cfg)
        code, out, err = self.run_main("--params", path, "--n_head", "4", "--greedy", "--length", "6",
                                       "--prompt", "the cat sat")
        self.assertEqual(code, 0, err)
        from gpt1_tf.data.text_utils import TextEncoder
        enc = TextEncoder()
        ids = enc.encode(["the cat sat"], verbose=False)[0]
        want = Generator(model).generate(ids, 6)[0]
        self.assertEqual(out.splitlines()[1], enc.decode(list(ids) + list(want)))

    def test_score_prints_tokens_loss_and_perplexity(self):
        path = os.path.join(tempfile.mkdtemp(), "a.txt")
        with open(path, "w") as f:
            f.write("the cat sat on the mat . it was happy .")
        code, out, err = self.run_main("--score", path)
        self.assertEqual(code, 0, err)
        fields = out.strip().split("\t")
        self.assertEqual(fields[0], path)
        loss = float(fields[2].split()[1])
        self.assertAlmostEqual(float(fields[3].split()[1]), np.exp(loss), delta=np.exp(loss) * 1e-3)
