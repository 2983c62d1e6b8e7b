"""HuggingFace `openai-gpt` weights in and out, against the folders and outputs transformers made.

`fixtures/hf/` (see its README) is a tiny random `openai-gpt` saved by transformers 5.24 in its two
layouts, with its hidden states, LM logits and multiple-choice logits. These tests show:
- reading either layout gives transformers' outputs (hidden 1e-5, LM logits 1e-4, MC logits 1e-5);
- HF -> shards -> HF gives transformers' own files back, key for key and bit for bit; HF (double
  heads) -> .keras -> HF too, but for the tied table's name;
- a best_params.jl of each head goes out as HF and comes back the same;
- train.py fine-tunes from an HF folder as from the same weights as shards;
- the bad inputs the issue lists: one line naming the file, exit 1, no output.
"""
import contextlib
import io
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from helpers import FIXTURES, REPO, randomised, run_train
from gpt1_tf.cli import export
from gpt1_tf.network import tokens
from gpt1_tf.weights import hf, pretrained
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.weights.formats import read_pretrained
from gpt1_tf.weights.convert import config_of_params, from_params, to_params

HF = os.path.join(FIXTURES, "hf")
BARE, DOUBLE = os.path.join(HF, "bare"), os.path.join(HF, "double_heads")
N_VOCAB = 40478
TINY = dict(n_embd=32, n_head=4, n_layer=2)


def expected():
    return dict(np.load(os.path.join(HF, "expected.npz")))


def hf_model(folder, n_ctx=None):
    """Our model holding a fixture folder's weights, no dropout."""
    weights = hf.read(folder)
    cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=n_ctx or 512, **TINY, embd_pdrop=0, attn_pdrop=0, resid_pdrop=0,
                      clf_pdrop=0, **(weights.head or {}))
    model = TransformerModel(cfg)
    pretrained.set_params(model, to_params(weights, cfg))
    return model


def with_positions(ids):
    """X [..., T, 2]: token ids and the position rows 0..T-1 (HF's default position ids)."""
    ids = np.asarray(ids, np.int32)
    pos = np.broadcast_to(tokens.position_id(N_VOCAB, np.arange(ids.shape[-1])), ids.shape)
    return np.stack([ids, pos], -1).astype(np.int32)


def run_export(*args):
    """export.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = export.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_same_folder_tensors(test, ours, theirs, rename=None):
    a, b = load_file(os.path.join(ours, hf.SAFETENSORS)), load_file(os.path.join(theirs, hf.SAFETENSORS))
    a = {(rename or {}).get(k, k): v for k, v in a.items()}
    test.assertEqual(sorted(a), sorted(b))
    for key in a:
        test.assertEqual(a[key].dtype, b[key].dtype, key)
        test.assertTrue(np.array_equal(a[key], b[key]), key)


class ParityTest(tf.test.TestCase):
    """Our network on transformers' weights gives transformers' outputs."""

    def test_hidden_states_and_lm_logits_of_both_layouts(self):
        e = expected()
        for folder in (BARE, DOUBLE):
            model = hf_model(folder)
            for i in range(4):
                h, we = model.transformer.hidden(with_positions(e[f"ids_{i}"])[None])
                self.assertAllClose(h[0], e[f"hidden_{i}"], atol=1e-5, rtol=0, msg=f"{folder} sequence {i}")
            logits = tf.matmul(model.transformer.hidden(with_positions(e["ids_0"])[None])[0][0], we[:N_VOCAB],
                               transpose_b=True)
            self.assertAllClose(logits, e["lm_logits_0"], atol=1e-4, rtol=0)

    def test_multiple_choice_logits(self):
        e = expected()
        model = hf_model(DOUBLE)
        self.assertEqual(model.cfg.task_format, "multiple_choice")
        X = with_positions(e["mc_input_ids"])
        # HF reads the state at mc_token_ids; ours at the first _classify_: the same positions here
        self.assertAllEqual(np.argmax(X[..., 0] == tokens.clf_id(N_VOCAB), -1), e["mc_token_ids"])
        logits = model(X, np.ones(X.shape[:-1], np.float32), compute_lm=False)[0]
        self.assertAllClose(logits[0], e["mc_logits"], atol=1e-5, rtol=0)

    def test_both_layouts_hold_the_same_body(self):
        bare, double = hf.read(BARE), hf.read(DOUBLE)
        self.assertIsNone(bare.special_rows)
        self.assertEqual(double.special_rows.shape, (3, 32))
        for a, b in zip(bare.shards, double.shards):
            self.assertAllEqual(a, b)
        self.assertEqual(double.clf[0].shape, (32, 1))


class RoundTripTest(tf.test.TestCase):
    def test_hf_to_shards_to_hf_is_exact(self):
        tmp = tempfile.mkdtemp()
        self.assertEqual(run_export(BARE, "--to", "shards", "--out", f"{tmp}/shards")[0], 0)
        with open(f"{tmp}/shards/params_shapes.json") as f:
            shapes = json.load(f)
        self.assertEqual(shapes[:3], [[512, 32], [N_VOCAB, 32], [1, 32, 96]])  # the original's layout
        code, out, err = run_export(f"{tmp}/shards", "--to", "hf", "--out", f"{tmp}/hf", "--n_head", "4")
        self.assertEqual(code, 0, err)
        assert_same_folder_tensors(self, f"{tmp}/hf", BARE)
        config = hf.read_config(f"{tmp}/hf/config.json")
        theirs = hf.read_config(f"{BARE}/config.json")
        for key in ("model_type", "afn", "n_embd", "n_head", "n_layer", "n_positions", "vocab_size",
                    "layer_norm_epsilon", "tie_word_embeddings"):
            self.assertEqual(config[key], theirs[key], key)
        self.assertEqual(config["architectures"], ["OpenAIGPTLMHeadModel"])
        for name, shipped in (("vocab.json", "encoder_bpe_40000.json"), ("merges.txt", "vocab_40000.bpe")):
            with open(f"{tmp}/hf/{name}", "rb") as a, open(os.path.join(REPO, "gpt1_tf", "data", "vocab", shipped), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_double_heads_through_keras_back_to_hf_is_exact(self):
        tmp = tempfile.mkdtemp()
        self.assertEqual(run_export(DOUBLE, "--to", "keras", "--out", f"{tmp}/m.keras")[0], 0)
        code, _, err = run_export(f"{tmp}/m.keras", "--to", "hf", "--out", f"{tmp}/hf")
        self.assertEqual(code, 0, err)
        # transformers wrote the tied table as lm_head.weight; ours is transformer.tokens_embed.weight,
        # which every transformers class reads (OpenAIGPTModel would not find the former)
        assert_same_folder_tensors(self, f"{tmp}/hf", DOUBLE,
                                   rename={"transformer.tokens_embed.weight": "lm_head.weight"})
        config = hf.read_config(f"{tmp}/hf/config.json")
        self.assertEqual((config["architectures"], config["vocab_size"], config["id2label"]),
                         (["OpenAIGPTDoubleHeadsModel"], N_VOCAB + 3, {"0": "LABEL_0"}))

    def test_keras_file_gives_the_same_outputs(self):
        import keras
        e, tmp = expected(), tempfile.mkdtemp()
        self.assertEqual(run_export(DOUBLE, "--to", "keras", "--out", f"{tmp}/m.keras")[0], 0)
        loaded, model = keras.saving.load_model(f"{tmp}/m.keras"), hf_model(DOUBLE)
        X = with_positions(e["mc_input_ids"])
        M = np.ones(X.shape[:-1], np.float32)
        self.assertAllEqual(loaded(X, M, compute_lm=False)[0], model(X, M, compute_lm=False)[0])

    def test_fine_tuned_params_of_each_head_go_out_and_back(self):
        for task_format, n_classes in (("multiple_choice", 0), ("classification", 3), ("similarity", 0)):
            tmp = tempfile.mkdtemp()
            cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=20, **TINY, task_format=task_format, n_classes=n_classes)
            arrays = pretrained.get_params(randomised(TransformerModel(cfg)))
            pretrained.save_params(f"{tmp}/best_params.jl", arrays, cfg)
            code, _, err = run_export(f"{tmp}/best_params.jl", "--to", "hf", "--out", f"{tmp}/hf", "--n_head", "4")
            self.assertEqual(code, 0, err)
            back = hf.read(f"{tmp}/hf")
            self.assertEqual(back.head, {"task_format": task_format, "n_classes": n_classes})
            self.assertEqual((back.n_head, back.positions.shape[0]), (4, 20))
            again = to_params(back, cfg)
            for i, (a, b) in enumerate(zip(again, arrays)):
                self.assertTrue(np.array_equal(a, b), f"{task_format} array {i}")

    def test_heads_transformers_lacks_go_out_as_ours(self):
        tmp = tempfile.mkdtemp()
        for task_format, n_classes, keys, architecture in (
                ("multiple_choice", 0, "multiple_choice_head.summary.", "OpenAIGPTDoubleHeadsModel"),
                ("entailment", 3, "clf.", "OpenAIGPTLMHeadModel")):
            cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=20, **TINY, task_format=task_format, n_classes=n_classes)
            weights = from_params(pretrained.get_params(randomised(TransformerModel(cfg))), cfg)
            hf.write(weights, f"{tmp}/{task_format}", encoder_path=os.devnull, bpe_path=os.devnull)
            tensors = load_file(f"{tmp}/{task_format}/model.safetensors")
            self.assertAllEqual(tensors[keys + "weight"], weights.clf[0].T)
            self.assertAllEqual(tensors[keys + "bias"], weights.clf[1])
            self.assertEqual(tensors["transformer.tokens_embed.weight"].shape, (N_VOCAB + 3, 32))
            config = hf.read_config(f"{tmp}/{task_format}/config.json")
            self.assertEqual(config["architectures"], [architecture])
            self.assertEqual(config["gpt1_tf"], {"task_format": task_format, "n_classes": n_classes})

    def test_a_params_file_says_its_own_shape(self):
        cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=33, n_embd=16, n_head=2, n_layer=3)
        found = config_of_params(pretrained.get_params(TransformerModel(cfg)), "x.jl")
        self.assertEqual((found.n_ctx, found.n_embd, found.n_layer), (33, 16, 3))


class TrainFromHfTest(tf.test.TestCase):
    """train.py --model_dir takes an HF folder: the same initial arrays as the same weights as shards."""

    def test_initial_params_equal_those_from_shards(self):
        from gpt1_tf.cli import train as train_cli
        from gpt1_tf.train.finetune import initial_params
        tmp = tempfile.mkdtemp()
        self.assertEqual(run_export(BARE, "--to", "shards", "--out", f"{tmp}/shards")[0], 0)
        cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=30, **TINY)
        run_cfg = train_cli.run_config(train_cli.build_parser().parse_args(
            ["--dataset", "rocstories", "--desc", "x", "--seed", "3", "--model_dir", "m"]))
        from_hf = initial_params(run_cfg, read_pretrained(BARE), cfg)
        from_shards = initial_params(run_cfg, read_pretrained(f"{tmp}/shards"), cfg)
        self.assertLen(from_hf, 1 + 24)
        for a, b in zip(from_hf, from_shards):
            self.assertAllEqual(a, b)
        # a double-heads checkpoint brings its trained special rows; the random ones are drawn all the same
        with_specials = initial_params(run_cfg, read_pretrained(DOUBLE), cfg)[0]
        self.assertAllEqual(with_specials[N_VOCAB:N_VOCAB + 3], hf.read(DOUBLE).special_rows)
        self.assertAllEqual(np.delete(with_specials, np.s_[N_VOCAB:N_VOCAB + 3], 0),
                            np.delete(from_hf[0], np.s_[N_VOCAB:N_VOCAB + 3], 0))

    def test_train_py_runs_from_an_hf_folder_and_checks_its_config(self):
        work = tempfile.mkdtemp()
        common = ["--dataset", "rocstories", "--data_dir", os.path.join(REPO, "datasets", "rocstories_sample"),
                  "--n_valid", "16", "--n_iter", "1", "--n_gpu", "1", "--n_batch", "4", "--model_dir", DOUBLE]
        proc = run_train(work, *common, "--n_embd", "32", "--n_head", "4", "--n_layer", "2", "--submit")
        self.assertTrue(os.path.exists(os.path.join(work, "save", "rocstories", "best_params.jl")), proc.stdout)
        for flag, value in (("--n_embd", "64"), ("--n_head", "8"), ("--n_layer", "3")):
            args = {"--n_embd": "32", "--n_head": "4", "--n_layer": "2", flag: value}
            proc = run_train(work, *common, *sum(args.items(), ()), "--desc", "bad", check=False)
            self.assertEqual(proc.returncode, 1)
            line = proc.stderr.strip().splitlines()[-1]
            self.assertIn(os.path.join(DOUBLE, "config.json"), line)
            self.assertIn(f"{flag[2:]} is ", line)
            self.assertNotIn("Traceback", proc.stderr)
            self.assertFalse(os.path.exists(os.path.join(work, "log", "bad.jsonl")))


class BadInputTest(tf.test.TestCase):
    """Each bad HF folder: one line naming the file, exit 1, nothing written."""

    def broken(self, change_tensors=None, change_config=None, truncate=None):
        folder = os.path.join(tempfile.mkdtemp(), "hf")
        shutil.copytree(BARE, folder)
        os.chmod(folder, 0o755)
        path = os.path.join(folder, hf.SAFETENSORS)
        if change_tensors:
            tensors = load_file(path)
            change_tensors(tensors)
            os.chmod(path, 0o644)
            save_file(tensors, path)
        if change_config:
            with open(os.path.join(folder, hf.CONFIG)) as f:
                config = json.load(f)
            change_config(config)
            os.chmod(os.path.join(folder, hf.CONFIG), 0o644)
            with open(os.path.join(folder, hf.CONFIG), "w") as f:
                json.dump(config, f)
        if truncate:
            with open(path, "rb") as f:
                data = f.read()
            os.chmod(path, 0o644)
            with open(path, "wb") as f:
                f.write(data[:truncate(len(data))])
        return folder

    def assert_refused(self, folder, file, *words, extra=()):
        out = os.path.join(tempfile.mkdtemp(), "out")
        code, stdout, err = run_export(folder, "--to", "shards", "--out", out, *extra)
        lines = err.strip().splitlines()
        self.assertEqual(code, 1, stdout + err)
        self.assertLen(lines, 1, err)
        self.assertIn(os.path.join(folder, file), lines[0])
        for word in words:
            self.assertIn(word, lines[0])
        self.assertFalse(os.path.exists(out))
        self.assertEqual([f for f in os.listdir(os.path.dirname(out))], [])  # no temporary left either

    def test_missing_tensor(self):
        folder = self.broken(lambda t: t.pop("h.1.mlp.c_fc.bias"))
        self.assertRaisesRegex(Exception, "missing tensor h.1.mlp.c_fc.bias", hf.read, folder)
        self.assert_refused(folder, "model.safetensors", "missing tensor h.1.mlp.c_fc.bias")

    def test_wrong_shape(self):
        folder = self.broken(lambda t: t.update({"h.0.attn.c_proj.weight": np.zeros((32, 31), np.float32)}))
        self.assert_refused(folder, "model.safetensors", "h.0.attn.c_proj.weight", "(32, 31)", "(32, 32)")

    def test_config_disagreeing_with_the_flags(self):
        self.assert_refused(BARE, "config.json", "n_head is 4", extra=("--n_head", "12"))

    def test_config_disagreeing_with_the_tensors(self):
        folder = self.broken(change_config=lambda c: c.update(n_layer=3))
        self.assert_refused(folder, "model.safetensors", "missing tensor h.2.")

    def test_truncated_safetensors(self):
        for keep in (lambda n: n // 2, lambda n: 5, lambda n: n - 1):
            self.assert_refused(self.broken(truncate=keep), "model.safetensors", "truncated or corrupt")

    def test_unknown_key_layout(self):
        folder = self.broken(lambda t: t.update({"model." + k: t.pop(k) for k in list(t)}))
        self.assert_refused(folder, "model.safetensors", "unknown key layout")

    def test_more_that_config_json_does_not_explain(self):
        folder = self.broken(lambda t: t.update({"score.weight": np.zeros((2, 32), np.float32)}))
        self.assert_refused(folder, "model.safetensors", "unexpected tensors score.weight")

    def test_untied_lm_head(self):
        def untie(t):
            t["lm_head.weight"] = t["tokens_embed.weight"] + 1
        self.assert_refused(self.broken(untie), "model.safetensors", "tied")

    def test_not_an_openai_gpt_config(self):
        self.assert_refused(self.broken(change_config=lambda c: c.update(model_type="gpt2")), "config.json",
                            "not an openai-gpt")

    def test_missing_safetensors(self):
        folder = self.broken()
        os.unlink(os.path.join(folder, hf.SAFETENSORS))
        self.assert_refused(folder, "model.safetensors", "missing")

    def test_buffers_are_ignored(self):
        # older checkpoints (the published pytorch_model.bin and its safetensors conversion) hold
        # the causal mask `h.{i}.attn.bias` [1, 1, 512, 512]; transformers 5 may write position_ids
        def add_buffers(t):
            t["h.0.attn.bias"] = np.tril(np.ones((1, 1, 512, 512), np.float32))
            t["position_ids"] = np.arange(512, dtype=np.float32)[None]
        weights = hf.read(self.broken(add_buffers))
        for a, b in zip(weights.shards, hf.read(BARE).shards):
            self.assertAllEqual(a, b)

    def test_output_in_the_way(self):
        out = tempfile.mkdtemp()
        with open(os.path.join(out, "x"), "w") as f:
            f.write("x")
        code, _, err = run_export(BARE, "--to", "hf", "--out", out)
        self.assertEqual((code, os.listdir(out)), (1, ["x"]))
        self.assertIn("not an empty folder", err)

    def test_special_rows_and_head_are_named_when_left_out_of_shards(self):
        code, out, _ = run_export(DOUBLE, "--to", "shards", "--out", os.path.join(tempfile.mkdtemp(), "s"))
        self.assertEqual(code, 0)
        self.assertIn("special-token rows and the classifier are left out", out)


class ServingFromHfTest(tf.test.TestCase):
    def test_saved_model_of_the_hf_weights_gives_transformers_next_token_distribution(self):
        e, out = expected(), os.path.join(tempfile.mkdtemp(), "gpt1", "1")
        code, _, err = run_export(BARE, "--to", "saved_model", "--out", out, "--n_ctx", "64")
        self.assertEqual(code, 0, err)
        served = tf.saved_model.load(out).signatures["next_token_log_probs"]
        ids = np.zeros((2, 17), np.int32)
        ids[0, :5], ids[1] = e["ids_0"], e["ids_1"]
        got = served(ids=tf.constant(ids), lengths=tf.constant([5, 17], tf.int32))["log_probs"].numpy()
        want = e["lm_logits_0"][-1] - np.log(np.exp(e["lm_logits_0"][-1].astype(np.float64)).sum())
        self.assertAllClose(got[0], want, atol=1e-4, rtol=0)
        self.assertEqual(int(np.argmax(got[1])), int(e["greedy_1"][0]))  # transformers' first greedy token
