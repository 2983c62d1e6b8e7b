"""LoRA and partial fine-tuning (issue 25): the network (`network.lora`), the Trainer, train.py, PEFT's folder.

In-process tests run the Trainer on tiny models and toy batches of each task format; the train.py
tests run the program (a fresh process each) on the bundled Story Cloze sample's first stories.
"""
import contextlib
import dataclasses
import io
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from gpt1_tf.cli import train as train_cli
from gpt1_tf.network import lora
from gpt1_tf.network.arrays import LORA_TARGETS
from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig, TuningConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.train.trainer import APPLIED, Trainer
from gpt1_tf.weights import peft, pretrained
from tests.helpers import TINY, final_checkpoint_arrays, log_without_time, run_train, write_tiny_cloze

N_VOCAB, T = 40, 8
ALL_TARGETS = tuple(LORA_TARGETS)
# each task format: (n_classes, K sequences an example)
FORMATS = {"classification": (2, 1), "entailment": (3, 1), "similarity": (2, 2), "regression": (0, 2),
           "multiple_choice": (0, 3)}


def config(task="multiple_choice", pdrop=0.0, **kw):
    fmt = "similarity" if task == "regression" else task
    return ModelConfig(n_vocab=N_VOCAB, n_ctx=T, n_embd=16, n_head=2, n_layer=2, task_format=fmt,
                       n_classes=FORMATS[task][0], embd_pdrop=pdrop, attn_pdrop=pdrop, resid_pdrop=pdrop,
                       clf_pdrop=pdrop, **kw)


def toy_batch(task, n, seed):
    """X [n, K, T, 2], M, Y of a toy task whose label one token says (`_start_ t1 t2 t3 _delimiter_ t4 t5 _classify_`)."""
    rng = np.random.RandomState(seed)
    n_classes, K = FORMATS[task]
    Y = rng.randint(0, max(n_classes, K if task == "multiple_choice" else 2), n)
    X = np.zeros((n, K, T, 2), np.int32)
    X[..., 0] = rng.randint(0, 30, (n, K, T))
    X[..., 0, 0], X[..., 4, 0], X[..., 7, 0] = N_VOCAB, N_VOCAB + 1, N_VOCAB + 2
    X[..., 1] = N_VOCAB + 3 + np.arange(T)
    for i, y in enumerate(Y):
        if task == "multiple_choice":
            X[i, :, 5, 0] = 31
            X[i, y, 5, 0] = 32  # the right ending holds token 32
        else:
            X[i, :, 6, 0] = 32 + y  # the last token says the class
    M = np.ones((n, K, T), np.float32)
    return X, M, (Y.astype(np.float32) if task == "regression" else Y.astype(np.int32))


def trainer(cfg, tuning, *, lr=1e-3, t_total=100, n_towers=1, step=None, seed=7):
    keras_seed(seed)
    return Trainer(cfg, OptConfig(lr=lr, t_total=t_total, lr_schedule="warmup_constant", lr_warmup=0.01),
                   step or StepConfig(), strategy=tf.distribute.get_strategy(), lm_coef=0.5, n_towers=n_towers,
                   tuning=tuning)


def keras_seed(seed):
    import keras
    keras.utils.set_random_seed(seed)


def values(variables):
    return [v.numpy().copy() for v in variables]


def outputs(model, X, M, Y, seed=None):
    return [o.numpy() for o in model(X, M, Y, training=seed is not None, seed=seed)]


class AdaptTest(tf.test.TestCase):
    """`lora.adapt` on a built model: what freezes, what is added, what the outputs are."""

    def test_b_zero_gives_the_base_outputs_exactly(self):
        for task in FORMATS:
            for tuning in (TuningConfig(lora_rank=4), TuningConfig(lora_rank=2, lora_alpha=16, lora_targets=ALL_TARGETS)):
                keras_seed(1)
                model = TransformerModel(config(task, pdrop=0.1))
                X, M, Y = toy_batch(task, 4, 0)
                seed = tf.constant([3, 4], tf.int64)
                before = outputs(model, X, M, Y), outputs(model, X, M, Y, seed)
                lora.adapt(model.transformer, tuning)
                after = outputs(model, X, M, Y), outputs(model, X, M, Y, seed)
                for b, a in zip(before[0] + before[1], after[0] + after[1]):
                    self.assertAllEqual(b, a, msg=f"{task} {tuning}")

    def test_what_trains(self):
        cfg = config()
        n_layer_arrays = 12
        cases = {
            TuningConfig(): 3 + 2 * n_layer_arrays,
            TuningConfig(lora_rank=4): 1 + 2 * 2 * 2 + 2,  # special rows, (A, B) x 2 targets x 2 layers, head
            TuningConfig(lora_rank=4, lora_targets=ALL_TARGETS, train_layers=1): 1 + 2 * 4 + 2,
            TuningConfig(lora_rank=4, freeze_embeddings=True): 2 * 2 * 2 + 2,
            TuningConfig(train_layers=1): 1 + n_layer_arrays + 2,
            TuningConfig(freeze_embeddings=True): 2 * n_layer_arrays + 2,
        }
        for tuning, n in cases.items():
            model = TransformerModel(cfg)
            lora.adapt(model.transformer, tuning)
            trained = model.trained_in_order()
            self.assertLen(trained, n, msg=str(tuning))
            self.assertEqual(sum(v.trainable for v in model.weights), n, msg=str(tuning))
            self.assertEqual(tuning.n_trained(cfg), lora.n_values(trained), msg=str(tuning))  # the memory estimate's count
        model = TransformerModel(cfg)
        self.assertEqual([id(v) for v in model.trained_in_order()], [id(v) for v in model.params_in_order()])

    def test_merged_equals_lora(self):
        for task in ("multiple_choice", "classification"):
            keras_seed(2)
            model = TransformerModel(config(task))
            lora.adapt(model.transformer, TuningConfig(lora_rank=3, lora_alpha=6, lora_targets=ALL_TARGETS))
            for v in model.trained_in_order():
                v.assign(tf.random.normal(v.shape, stddev=0.3, seed=5))
            X, M, Y = toy_batch(task, 6, 1)
            adapted = outputs(model, X, M, Y)
            plain = TransformerModel(config(task))
            pretrained.set_params(plain, pretrained.get_params(model))
            for a, b in zip(adapted, outputs(plain, X, M, Y)):
                self.assertAllClose(a, b, rtol=1e-5, atol=1e-5)
            self.assertGreater(np.abs(adapted[0] - outputs(TransformerModel(config(task)), X, M, Y)[0]).max(), 1e-3)
            # merged arrays back into the adapted model itself: the adapters then add nothing more
            pretrained.set_params(model, pretrained.get_params(model))
            for a, b in zip(adapted, outputs(model, X, M, Y)):
                self.assertAllClose(a, b, rtol=1e-5, atol=1e-5)

    def test_the_memory_estimate_counts_adam_state_for_the_trained_values_only(self):
        from gpt1_tf.train.memory import estimate_train_bytes
        cfg = ModelConfig(n_ctx=77)  # full size: the estimate train.py checks before building anything
        full = estimate_train_bytes(cfg, 8)
        self.assertEqual(estimate_train_bytes(cfg, 8, n_trained=TuningConfig().n_trained(cfg)), full)
        lora_8 = estimate_train_bytes(cfg, 8, n_trained=TuningConfig(lora_rank=8).n_trained(cfg))
        self.assertEqual(TuningConfig(lora_rank=8).n_trained(cfg), 445441)  # BENCHMARKS run K's count
        # gradients, m and v of 116.2M values (1.3 GiB) no longer counted; the parameters still are
        self.assertAllClose(full.state - lora_8.state, 3 * 4 * (116203777 - 445441))
        self.assertEqual(full.activations, lora_8.activations)

    def test_refused(self):
        cfg = config()
        for kwargs, words in ((dict(lora_rank=0), "at least 1"), (dict(lora_rank=-2), "at least 1"),
                              (dict(lora_rank=4, lora_targets=("c_attn", "q_proj")), "unknown LoRA target"),
                              (dict(lora_alpha=8.0), "needs a LoRA rank"), (dict(train_layers=0), "at least 1"),
                              (dict(lora_rank=4, lora_alpha=float("nan")), "finite")):
            with self.assertRaisesRegex(ValueError, words):
                TuningConfig(**kwargs)
        for kwargs, words in ((dict(lora_rank=17), "larger than c_attn's smaller side"),
                              (dict(train_layers=3), "more than the model's 2 layers")):
            with self.assertRaisesRegex(ValueError, words):
                lora.adapt(TransformerModel(cfg).transformer, TuningConfig(**kwargs))


class TrainerTest(tf.test.TestCase):
    """The Trainer under a tuning: what a step changes, towers, Adam's state, learning each format."""

    def step_and_compare(self, tuning, changed):
        """Two updates; every variable of the model is either expected to change (`changed(path)`) or bit-equal."""
        t = trainer(config(pdrop=0.1), tuning)
        X, M, Y = toy_batch("multiple_choice", 8, 0)
        everything = t.model.weights
        before = values(everything)
        for n in range(2):
            self.assertEqual(t.train_step(X, M, Y, n).status, APPLIED)
        self.assertLen(t.optimizer.variables, 2 + 2 * len(t.params))  # iterations, lr; m and v of the trained only
        for v, b in zip(everything, before):
            if v.path.endswith("clf/b"):
                continue  # multiple choice: a mathematically zero gradient, no decay on vectors (test_train's TowersTest)
            moved = not np.array_equal(v.numpy(), b)
            self.assertEqual(moved, changed(v.path), msg=f"{tuning}: {v.path}")
        return t

    def test_lora_step_changes_only_the_adapters_special_rows_and_head(self):
        t = self.step_and_compare(TuningConfig(lora_rank=4),
                                  lambda p: "lora_kernel" in p or p.endswith("special") or "/clf/" in p)
        self.assertEqual(sorted({v.path.rsplit("/", 2)[-2] for v in t.params if "lora" in v.path}), ["c_attn", "c_proj"])

    def test_lora_with_frozen_embeddings_and_top_layer(self):
        self.step_and_compare(TuningConfig(lora_rank=2, lora_targets=("c_fc", "mlp/c_proj"), train_layers=1,
                                           freeze_embeddings=True),
                              lambda p: ("h1/mlp" in p and "lora_kernel" in p) or "/clf/" in p)

    def test_partial_fine_tuning_changes_only_the_top_layers(self):
        self.step_and_compare(TuningConfig(train_layers=1),
                              lambda p: "/h1/" in p or p.endswith("special") or "/clf/" in p)

    def test_towers_equal_one_tower(self):
        # the averaged gradients of 4 towers are one tower's of the whole batch (Adam would amplify their rounding
        # where a gradient is near zero, as test_train's TowersTest explains, so the gradients are compared)
        tuning = TuningConfig(lora_rank=4, lora_targets=ALL_TARGETS)
        X, M, Y = toy_batch("multiple_choice", 8, 3)
        runs = []
        for n_towers in (1, 4):
            t = trainer(config(), tuning, n_towers=n_towers)
            for i, v in enumerate(t.params):  # B too: else A's gradients are zero
                v.assign(tf.random.stateless_normal(v.shape, [i, 1], stddev=0.2))
            grads, clf_losses, norm = t.compute_gradients(X, M, Y, 0)
            runs.append(([g.numpy() for g in grads], clf_losses.numpy(), float(norm)))
        (g1, l1, n1), (g4, l4, n4) = runs
        self.assertAllClose(l1, l4, rtol=1e-6, atol=1e-6)
        self.assertAllClose(n1, n4, rtol=1e-5)
        self.assertLen(g1, 1 + 2 * 4 * 2 + 2)
        for a, b in zip(g1[:-1], g4[:-1]):  # clf/b's is mathematically zero under the choices' softmax: noise
            self.assertAllClose(a, b, rtol=1e-5, atol=1e-5 * np.abs(a).max())

    def test_a_tiny_model_learns_each_format_with_lora(self):
        for task in FORMATS:
            t = trainer(config(task), TuningConfig(lora_rank=4, lora_targets=ALL_TARGETS), lr=1e-2)
            X, M, Y = toy_batch(task, 64, 10)
            for n in range(80):
                at = slice(16 * (n % 4), 16 * (n % 4 + 1))
                t.train_step(X[at], M[at], Y[at], n)
            Xv, Mv, Yv = toy_batch(task, 64, 11)
            logits, _ = t.eval_batch(Xv, Mv, Yv)
            if task == "regression":
                self.assertLess(np.mean((logits[:, 0] - Yv) ** 2), 0.1, msg=task)
            else:
                self.assertGreater(np.mean(np.argmax(logits, 1) == Yv), 0.9, msg=task)

    def test_mixed_precision_and_xla(self):
        X, M, Y = toy_batch("classification", 8, 4)
        for cfg, step in ((config("classification", compute_dtype="bfloat16"), StepConfig()),
                          (config("classification"), StepConfig(xla=True))):
            t = trainer(cfg, TuningConfig(lora_rank=4))
            b0 = values(t.params)
            result = t.train_step(X, M, Y, 0)
            self.assertEqual(result.status, APPLIED)
            self.assertTrue(np.isfinite(result.loss))
            self.assertFalse(all(np.array_equal(a, b) for a, b in zip(b0, values(t.params))))


class PeftFolderTest(tf.test.TestCase):
    """The adapter folder: written as PEFT lays it out, read back onto its base only."""

    def adapted(self, tuning=TuningConfig(lora_rank=4, lora_alpha=8), seed=3):
        keras_seed(seed)
        model = TransformerModel(config())
        lora.adapt(model.transformer, tuning)
        for v in model.trained_in_order():
            v.assign(tf.random.normal(v.shape, stddev=0.2))
        return model

    def test_round_trip_and_layout(self):
        model, folder = self.adapted(), tempfile.mkdtemp()
        base = peft.fingerprint(model)
        peft.write(folder, model, model.transformer.tuning, base=base)
        with open(os.path.join(folder, peft.CONFIG)) as f:
            config_json = json.load(f)
        self.assertEqual((config_json["r"], config_json["lora_alpha"], config_json["fan_in_fan_out"]), (4, 8, True))
        self.assertEqual(config_json["target_modules"], ["attn.c_attn", "attn.c_proj"])
        self.assertEqual(config_json["modules_to_save"], ["multiple_choice_head"])
        self.assertEqual(config_json["trainable_token_indices"], {"tokens_embed": [N_VOCAB, N_VOCAB + 1, N_VOCAB + 2]})
        from safetensors.numpy import load_file
        tensors = load_file(os.path.join(folder, peft.WEIGHTS))
        self.assertEqual(tensors["base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"].shape, (4, 16))
        self.assertEqual(tensors["base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"].shape, (48, 4))
        self.assertEqual(tensors["base_model.model.multiple_choice_head.summary.weight"].shape, (1, 16))
        self.assertEqual(peft.read_tuning(folder, 2), model.transformer.tuning)
        # onto a fresh model of the same base: the same outputs
        fresh = self.adapted(seed=3)
        for v in fresh.trained_in_order():
            v.assign(tf.zeros_like(v))
        peft.load(fresh, folder, base=peft.fingerprint(fresh))
        X, M, Y = toy_batch("multiple_choice", 4, 0)
        for a, b in zip(outputs(model, X, M, Y), outputs(fresh, X, M, Y)):
            self.assertAllEqual(a, b)
        # another base, another layout: refused, nothing loaded
        other = self.adapted(seed=4)
        with self.assertRaisesRegex(Exception, "other base weights"):
            peft.load(other, folder, base=peft.fingerprint(other))
        wider = self.adapted(TuningConfig(lora_rank=2, lora_alpha=8), seed=3)
        with self.assertRaisesRegex(Exception, "shape"):
            peft.load(wider, folder, base=peft.fingerprint(wider))


class TrainPyTest(tf.test.TestCase):
    """train.py with LoRA: outputs, resume, --lora_from; bad flags refused before any work."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        cls.data = write_tiny_cloze(os.path.join(cls.root, "data"))
        cls.common = TINY + ["--data_dir", cls.data, "--n_gpu", "2", "--n_batch", "2", "--lr", "1e-2"]
        cls.flags = cls.common + ["--lora_rank", "4", "--lora_alpha", "8"]
        cls.runs = {}
        for name, extra in (("a", ["--submit"]), ("stopped", ["--submit", "--stop_after_updates", "3"]),
                            ("resumed", ["--submit", "--resume"])):
            workdir = os.path.join(cls.root, "resumed" if name == "stopped" else name)
            os.makedirs(workdir, exist_ok=True)
            cls.runs[name] = run_train(workdir, *cls.flags, *extra)

    def test_outputs_merged_params_and_adapters(self):
        run = os.path.join(self.root, "a", "save", "rocstories")
        self.assertIn("training LoRA rank 4 (alpha 8) on c_attn, c_proj of h0", self.runs["a"].stdout)
        self.assertCountEqual([f for f in os.listdir(run) if not f.startswith(".")],
                              ["adapter_config.json", "adapter_model.safetensors", "best_params.head.json",
                               "best_params.jl", "checkpoints"])
        arrays = pretrained.read_params_file(os.path.join(run, "best_params.jl"))
        cfg = ModelConfig(n_vocab=40478, n_ctx=arrays[0].shape[0] - 40478 - 3, n_embd=16, n_head=2, n_layer=1)
        pretrained.check_params(arrays, cfg, "best_params.jl")  # the original layout of a plain model

    def test_resume_ends_with_the_uninterrupted_run(self):
        a, r = os.path.join(self.root, "a"), os.path.join(self.root, "resumed")
        self.assertIn("resumed at update 3", self.runs["resumed"].stdout)
        self.assertEqual(log_without_time(a), log_without_time(r))
        fa, fr = final_checkpoint_arrays(a), final_checkpoint_arrays(r)
        # the adapters are in it (under the optimizer's keys: a checkpoint keys a variable by its shortest path)
        self.assertTrue(any(v.shape == (4, 48) for v in fa.values()))  # c_attn's B [rank, 3 n_embd]
        self.assertEqual(sorted(fa), sorted(fr))
        for k in fa:
            self.assertAllEqual(fa[k], fr[k], msg=k)

    def test_lora_from_loads_the_adapters_for_evaluation(self):
        adapter = os.path.join(self.root, "a", "save", "rocstories")
        workdir = os.path.join(self.root, "from")
        os.makedirs(workdir)
        # the layout comes from the folder; lr 0: the first evaluation is the saved adapters' own
        run_train(workdir, *self.common, "--lora_from", adapter, "--lr", "0", "--n_iter", "1")
        evaluations = [r for r in log_without_time(os.path.join(self.root, "a")) if "va_acc" in r]
        best = next(r for r in evaluations if r["va_acc"] == max(e["va_acc"] for e in evaluations))
        first = next(r for r in log_without_time(workdir) if "va_acc" in r)
        self.assertEqual(first["va_acc"], best["va_acc"])
        self.assertAllClose(first["va_cost"], best["va_cost"], rtol=1e-5)

    def assert_refused(self, args, *words):
        err = io.StringIO()
        cwd = os.getcwd()
        workdir = tempfile.mkdtemp()
        os.chdir(workdir)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = train_cli.main(list(args))
        finally:
            os.chdir(cwd)
        lines = [line for line in err.getvalue().splitlines() if line.strip() and "it/s" not in line]
        self.assertEqual(code, 1, err.getvalue())
        self.assertLen(lines, 1, err.getvalue())
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(os.listdir(workdir), [], "something was written")

    def test_bad_flags_are_refused_before_any_work(self):
        base = self.common
        adapter = os.path.join(self.root, "a", "save", "rocstories")
        for extra, words in ((["--lora_rank", "0"], ("--lora_rank must be at least 1",)),
                             (["--lora_rank", "-3"], ("--lora_rank must be at least 1",)),
                             (["--lora_rank", "17"], ("larger than c_attn's smaller side (16",)),
                             (["--lora_rank", "4", "--lora_targets", "c_attn,qkv"], ("unknown LoRA target 'qkv'",)),
                             (["--train_layers", "2"], ("--train_layers must be in 1..1",)),
                             (["--lora_alpha", "4"], ("need --lora_rank",)),
                             (["--lora_rank", "4", "--lora_alpha", "nan"], ("--lora_alpha must be a finite",)),
                             (["--lora_from", os.path.join(self.root, "nowhere")], ("not a folder",)),
                             (["--lora_from", adapter, "--lora_rank", "2"], ("its adapters are rank 4", "rank 2")),
                             (["--lora_from", adapter, "--lora_alpha", "3"], ("(alpha 8)", "(alpha 3)")),
                             (["--lora_from", adapter, "--seed", "5"], ("other base weights",))):
            self.assert_refused(base + extra, *words)


if __name__ == "__main__":
    tf.test.main()
