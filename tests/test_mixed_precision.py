"""Mixed precision (`ModelConfig.compute_dtype`, `--mixed_precision`) and float16 loss scaling.

Half-precision arithmetic changes the numbers by design, so these tests bound the difference
from float32 (it must be rounding, not a wrong cast or a lost mask) and check what must stay
float32: parameters, gradients, optimizer state, layer norms, softmaxes and losses.
"""
import os

import numpy as np
import tensorflow as tf

from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.train.trainer import DynamicLossScale, Trainer

from helpers import N_CTX, N_VOCAB, story_batch

HALF = ("bfloat16", "float16")


def config(dtype, pdrop=0.0):
    return ModelConfig(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=32, n_head=4, n_layer=2, embd_pdrop=pdrop,
                       attn_pdrop=pdrop, resid_pdrop=pdrop, clf_pdrop=pdrop, compute_dtype=dtype)


def same_weights(models):
    rng = np.random.RandomState(0)
    for ps in zip(*[m.params_in_order() for m in models]):
        a = rng.normal(0, 0.2 if len(ps[0].shape) > 1 else 0.05, ps[0].shape).astype(np.float32)
        for p in ps:
            p.assign(a)


def trainers(dtype, pdrop=0.0, **options):
    strategy = tf.distribute.get_strategy()
    opt_cfg = OptConfig(t_total=10, lr=1e-3)
    ref = Trainer(config("float32", pdrop), opt_cfg, StepConfig(**options), strategy=strategy, lm_coef=0.5)
    half = Trainer(config(dtype, pdrop), opt_cfg, StepConfig(**options), strategy=strategy, lm_coef=0.5)
    same_weights([ref.model, half.model])
    return ref, half


class MixedPrecisionModelTest(tf.test.TestCase):

    def test_outputs_are_float32_and_close_to_float32(self):
        X, M, Y = story_batch(np.random.RandomState(1), 4)
        for dtype in HALF:
            ref, half = TransformerModel(config("float32")), TransformerModel(config(dtype))
            same_weights([ref, half])
            for packed in (False, True):
                with self.subTest(dtype=dtype, packed=packed):
                    want = ref(X, M, Y, packed=packed)
                    got = half(X, M, Y, packed=packed)
                    for g, w in zip(got, want):
                        self.assertEqual(g.dtype, tf.float32)
                        self.assertTrue(np.all(np.isfinite(g)))
                        # bfloat16 keeps 8 bits of mantissa, float16 11: rounding-sized differences
                        self.assertAllClose(g, w, atol=0.1 if dtype == "bfloat16" else 0.02, rtol=0.05)
                    self.assertNotAllClose(got[2], want[2], atol=1e-7, rtol=0)  # it did compute in half

    def test_hidden_states_in_compute_dtype_parameters_float32(self):
        X, M, _ = story_batch(np.random.RandomState(2), 2)
        for dtype in HALF:
            with self.subTest(dtype=dtype):
                model = TransformerModel(config(dtype))
                h, we = model.transformer.hidden(tf.reshape(X, [-1, N_CTX, 2]))
                self.assertEqual(h.dtype, tf.as_dtype(dtype))
                self.assertEqual(we.dtype, tf.float32)
                self.assertTrue(all(p.dtype == "float32" for p in model.params_in_order()))

    def test_causal_mask_survives_float16(self):
        # the original's -1e9 mask overflows float16: the softmax must run in float32, or the
        # future would leak (or NaN). Changing a later token must not change an earlier output.
        model = TransformerModel(config("float16"))
        X, M, Y = story_batch(np.random.RandomState(3), 1)
        X2 = X.copy()
        X2[0, 0, 10:, 0] = (X2[0, 0, 10:, 0] + 1) % N_VOCAB
        h1, _ = model.transformer.hidden(tf.reshape(X, [-1, N_CTX, 2]))
        h2, _ = model.transformer.hidden(tf.reshape(X2, [-1, N_CTX, 2]))
        self.assertAllEqual(h1[0, :10], h2[0, :10])
        self.assertNotAllClose(h1[0, 10:], h2[0, 10:])

    def test_dropout_masks_do_not_depend_on_the_dtype(self):
        # uniforms drawn in float32: a unit dropped in float32 is dropped in bfloat16
        X, M, Y = story_batch(np.random.RandomState(4), 2)
        ref, half = TransformerModel(config("float32", 0.5)), TransformerModel(config("bfloat16", 0.5))
        same_weights([ref, half])
        seed = tf.constant([5, 6], tf.int64)
        for layer in (lambda m: m.blocks[0].mlp,):
            x = tf.random.stateless_normal([4, N_CTX, 32], seed=[1, 1]) + 3.0  # no exact zeros
            a = layer(ref)(x, seed=seed)
            b = layer(half)(tf.cast(x, tf.bfloat16), seed=seed)
            self.assertAllEqual(a.numpy() == 0, tf.cast(b, tf.float32).numpy() == 0)

    def test_unknown_dtype_is_refused(self):
        with self.assertRaisesRegex(Gpt1Error, "compute_dtype"):
            ModelConfig(compute_dtype="float64")


class MixedPrecisionTrainerTest(tf.test.TestCase):

    def test_gradients_close_to_float32_and_float32_typed(self):
        X, M, Y = story_batch(np.random.RandomState(5), 4)
        for dtype in HALF:
            with self.subTest(dtype=dtype):
                ref, half = trainers(dtype, pdrop=0.1)
                self.assertEqual(half.loss_scale is not None, dtype == "float16")
                g_ref, clf_ref, _ = ref.compute_gradients(X, M, Y, 0)
                g, clf, _ = half.compute_gradients(X, M, Y, 0)
                self.assertAllClose(clf, clf_ref, atol=0.05, rtol=0.05)
                for a, b in zip(g, g_ref):
                    self.assertEqual(a.dtype, tf.float32)
                    # unscaled: the float16 gradients are not 32768 times too large
                    scale = max(float(np.abs(b).max()), 1e-3)
                    self.assertAllClose(a / scale, b / scale, atol=0.08 if dtype == "bfloat16" else 0.02, rtol=0)

    def test_training_updates_float32_parameters(self):
        X, M, Y = story_batch(np.random.RandomState(6), 4)
        for dtype in HALF:
            with self.subTest(dtype=dtype):
                _, half = trainers(dtype, pdrop=0.1)
                before = [p.numpy() for p in half.params]
                for i in range(3):
                    result = half.train_step(X, M, Y, i)
                    loss, norm = result.loss, result.norm
                    self.assertTrue(np.isfinite(loss) and np.isfinite(norm))
                self.assertEqual(half.n_updates, 3)
                slots = [v for v in half.optimizer.variables if "float" in str(v.dtype)]
                self.assertTrue(slots and all(v.dtype == "float32" for v in slots))
                self.assertNotAllClose(half.params[0], before[0])

    def test_overflow_skips_the_update_and_halves_the_scale(self):
        X, M, Y = story_batch(np.random.RandomState(7), 4)
        _, half = trainers("float16")
        half.loss_scale.scale.assign(2.0 ** 100)  # float16 gradients overflow for sure
        before = [p.numpy() for p in half.params]
        grads, clf, norm = half.compute_gradients(X, M, Y, 0)
        self.assertFalse(np.isfinite(float(norm)))
        self.assertTrue(half.overflowed(clf, norm))
        self.assertEqual(half.loss_scale.value(), 2.0 ** 99)
        half.loss_scale.scale.assign(2.0 ** 100)
        half.train_step(X, M, Y, 0)  # the same through train_step: nothing applied
        self.assertEqual(half.n_updates, 0)
        for p, b in zip(half.params, before):
            self.assertAllEqual(p, b)
        half.loss_scale.scale.assign(2.0 ** 10)
        half.train_step(X, M, Y, 0)
        self.assertEqual(half.n_updates, 1)
        self.assertEqual(int(half.loss_scale.good_steps.numpy()), 1)

    def test_float32_and_bfloat16_never_report_an_overflow(self):
        for dtype in ("float32", "bfloat16"):
            trainer = trainers(dtype)[1]
            self.assertIsNone(trainer.loss_scale)
            self.assertFalse(trainer.overflowed(np.zeros(2, np.float32), np.float32("inf")))

    def test_loss_scale_schedule(self):
        ls = DynamicLossScale(initial=8.0, growth_interval=3, minimum=2.0)
        for _ in range(3):
            ls.finite()
        self.assertEqual(ls.value(), 16.0)  # doubled after 3 finite updates in a row
        ls.finite()
        ls.finite()
        self.assertTrue(ls.overflow())  # halved, and the run of finite updates restarts
        self.assertEqual(ls.value(), 8.0)
        ls.finite()
        ls.finite()
        self.assertEqual(ls.value(), 8.0)
        self.assertTrue(ls.overflow())
        self.assertTrue(ls.overflow())
        self.assertEqual(ls.value(), 2.0)
        self.assertFalse(ls.overflow())  # at its minimum: a real divergence, for the caller's NaN policy
        self.assertEqual(ls.value(), 2.0)

    def test_exact_refuses_mixed_precision(self):
        with self.assertRaisesRegex(ValueError, "mixed precision"):
            Trainer(config("bfloat16"), OptConfig(), StepConfig(exact=True), strategy=tf.distribute.get_strategy(), lm_coef=0.5)

    def test_xla_with_mixed_precision(self):
        X, M, Y = story_batch(np.random.RandomState(8), 4)
        ref, half = trainers("bfloat16", pdrop=0.1, xla=True)
        for a, b in zip(half.eval_batch(X, M, Y), ref.eval_batch(X, M, Y)):
            self.assertAllClose(a, b, atol=0.05, rtol=0.05)
        half.train_step(X, M, Y, 0)
        self.assertEqual(half.n_updates, 1)


class Bfloat16OnCpuTest(tf.test.TestCase):
    """runtime.prepare_bfloat16: oneDNN's kernels for bfloat16, and a note where bfloat16 is slow on a CPU."""

    def prepare(self, env, flags):
        from unittest import mock

        from gpt1_tf import runtime
        with mock.patch.dict(os.environ, env, clear=False), mock.patch.object(runtime, "cpu_flags", lambda: flags):
            if not env:
                os.environ.pop(runtime.ONEDNN_ENV, None)
            note = runtime.prepare_bfloat16()
            return note, os.environ.get(runtime.ONEDNN_ENV)

    def test_native_bfloat16_cpu(self):
        for flags in ({"avx512f", "avx512_bf16"}, {"amx_bf16", "amx_tile"}):
            self.assertEqual(self.prepare({}, flags), (None, "1"))  # oneDNN's rewrite switched on, no note

    def test_cpu_without_bfloat16_arithmetic(self):
        note, onednn = self.prepare({}, {"avx2", "fma", "avx512f"})
        self.assertEqual(onednn, "1")
        self.assertIn("no native bfloat16", note)
        self.assertNotIn("\n", note)

    def test_user_switched_onednn_off(self):
        note, onednn = self.prepare({"TF_ENABLE_ONEDNN_OPTS": "0"}, {"avx512_bf16"})
        self.assertEqual(onednn, "0")  # the user's choice is kept ...
        self.assertIn("TF_ENABLE_ONEDNN_OPTS=0", note)  # ... and said to cost speed

    def test_unknown_cpu_gives_no_note(self):
        self.assertEqual(self.prepare({}, set()), (None, "1"))


if __name__ == "__main__":
    tf.test.main()
