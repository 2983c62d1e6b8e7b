"""Every speed lever leaves the numbers alone.

Reference: the original computation (batch padded to n_ctx, LM head at every position, no packing).
Each lever (masked LM head, trimming, packing, prefix sharing at evaluation, the last block at the
`_classify_` positions only at evaluation, the Trainer's default path, the XLA-compiled optimizer
update, the XLA-compiled static-shape step) must give the same clf logits, clf losses, lm losses and
gradients of every parameter (abs 1e-5), on padded batches of unequal lengths, with dropout on
(the same stateless seed must then drop the same units) and off.
"""
import numpy as np
import tensorflow as tf

from helpers import N_CTX, N_VOCAB, assert_same_step, forward_and_grads, randomised, story_batch
from gpt1_tf.network import packing
from gpt1_tf.errors import ConfigError
from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.train.trainer import Trainer, trim_to_longest

TOL = 1e-5


def config(pdrop):
    return ModelConfig(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=16, n_head=2, n_layer=2, embd_pdrop=pdrop,
                       attn_pdrop=pdrop, resid_pdrop=pdrop, clf_pdrop=pdrop)


def odd_batch(rng):
    """Masks that are not a prefix, a sequence without `_classify_`, identical endings, padding tokens."""
    X, M, Y = story_batch(rng, 3)
    M[0, 0, 2] = 0  # a hole in the mask
    X[1, 1, :, 0] = np.where(X[1, 1, :, 0] == N_VOCAB + 2, 5, X[1, 1, :, 0])  # no _classify_: pools at 0
    X[2, 1], M[2, 1] = X[2, 0], M[2, 0]  # both endings the same
    return X, M, Y


def make_model(pdrop, seed=0):
    return randomised(TransformerModel(config(pdrop)), seed)


REFERENCE = dict(lm_head="full", packed=False)


class LeverTest(tf.test.TestCase):

    def assert_same(self, got, want, what):
        self.assertEqual(len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            name = ["clf_logits", "clf_losses", "lm_losses"][i] if i < 3 else f"grad {i - 3}"
            self.assertAllClose(g, w, atol=TOL, rtol=0, msg=f"{what}: {name}")

    def cases(self):
        rng = np.random.RandomState(1)
        return [("stories", *story_batch(rng, 4)), ("odd", *odd_batch(rng))]

    def check_lever(self, lever, pdrops=(0.0, 0.2), training=(True, False)):
        """`lever(model, X, M, Y, training, seed)` against the padded, full-head reference."""
        for pdrop in pdrops:
            model = make_model(pdrop)
            for name, X, M, Y in self.cases():
                if name == "odd" and len(pdrops) > 1 and not pdrop:
                    continue  # the odd batch once, with dropout (keeps the file under a minute)
                for train in training:
                    with self.subTest(batch=name, pdrop=pdrop, training=train):
                        seed = tf.constant([3, 11], tf.int64) if pdrop else None
                        want = forward_and_grads(model, X, M, Y, training=train, seed=seed, **REFERENCE)
                        if pdrop and train and name == "stories":  # the test must see dropout at work
                            plain = forward_and_grads(model, X, M, Y, training=False, **REFERENCE)
                            self.assertGreater(np.abs(plain[0] - want[0]).max(), 1e-3)
                        self.assert_same(lever(model, X, M, Y, train, seed), want, name)

    def test_masked_lm_head(self):
        self.check_lever(lambda m, X, M, Y, train, seed: forward_and_grads(
            m, X, M, Y, training=train, seed=seed, lm_head="masked", packed=False))

    def test_trim_to_longest(self):
        def lever(m, X, M, Y, train, seed):
            Xt, Mt = trim_to_longest(X, M)
            self.assertLess(Xt.shape[2], X.shape[2])
            return forward_and_grads(m, Xt, Mt, Y, training=train, seed=seed, **REFERENCE)
        self.check_lever(lever)

    def test_trim_to_a_multiple(self):
        X = np.zeros((2, 2, 16, 2), np.int32)
        M = np.zeros((2, 2, 16), np.float32)
        M[1, 0, :9] = 1  # longest sequence: 9
        self.assertEqual(trim_to_longest(X, M)[0].shape[2], 9)
        self.assertEqual(trim_to_longest(X, M, 8)[1].shape[2], 16)
        M[1, 0, 9:] = 1
        self.assertEqual(trim_to_longest(X, M, 8)[0].shape[2], 16)  # never past n_ctx
        M[:] = 0
        M[0, 1, :3] = 1
        self.assertEqual(trim_to_longest(X, M, 8)[0].shape[2], 8)

    def test_packed(self):
        self.check_lever(lambda m, X, M, Y, train, seed: forward_and_grads(
            m, X, M, Y, training=train, seed=seed, lm_head="masked", packed=True))

    def test_packed_trimmed(self):
        def lever(m, X, M, Y, train, seed):
            Xt, Mt = trim_to_longest(X, M)
            return forward_and_grads(m, Xt, Mt, Y, training=train, seed=seed, lm_head="masked", packed=True)
        self.check_lever(lever)

    def test_packed_full_lm_head(self):
        self.check_lever(lambda m, X, M, Y, train, seed: forward_and_grads(
            m, X, M, Y, training=train, seed=seed, lm_head="full", packed=True), pdrops=(0.2,))

    def test_prefix_sharing_without_dropout(self):
        # training without dropout (seed None) shares the prefix too: gradients included
        self.check_lever(lambda m, X, M, Y, train, seed: forward_and_grads(
            m, X, M, Y, training=train, seed=seed, packed=True), pdrops=(0.0,))

    def test_pool_only_last_block(self):
        # evaluation: no LM head, no dropout; the last block only where the classifier reads
        def clf_and_grads(model, X, M, Y, **options):
            with tf.GradientTape() as tape:
                logits, clf, lm = model(X, M, Y, compute_lm=False, **options)
                loss = tf.reduce_sum(clf * tf.range(1, tf.size(clf) + 1, dtype=tf.float32))
            self.assertIsNone(lm)
            return [logits, clf] + [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.params_in_order())]
        model = make_model(0.0)
        for name, X, M, Y in self.cases():
            want = clf_and_grads(model, X, M, Y, packed=False)
            for packed in (False, True):
                with self.subTest(batch=name, packed=packed):
                    got = clf_and_grads(model, X, M, Y, packed=packed, pool_only=True)
                    for g, w in zip(got, want):
                        self.assertAllClose(g, w, atol=TOL, rtol=0)

    def test_layout_shares_the_story_prefix(self):
        rng = np.random.RandomState(2)
        X, M, _ = story_batch(rng, 4)
        X, M = tf.reshape(X, [-1, N_CTX, 2]), tf.reshape(M, [-1, N_CTX])
        plain = packing.pack_layout(X, M, clf_token=N_VOCAB + 2)
        shared = packing.pack_layout(X, M, clf_token=N_VOCAB + 2, share_prefix=True)
        self.assertEqual(int(tf.size(plain.rows)), int(M.numpy().sum()))  # real tokens only
        prefix = sum(int(np.sum(np.cumprod(X.numpy()[2 * b, :, 0] == X.numpy()[2 * b + 1, :, 0]))) for b in range(4))
        self.assertEqual(int(tf.size(shared.rows)), int(M.numpy().sum()) - prefix)

    def test_packed_dropout_mask_is_the_padded_one(self):
        rng = np.random.RandomState(5)
        X, M, _ = story_batch(rng, 3)
        Xs, Ms = tf.reshape(X, [-1, N_CTX, 2]), tf.reshape(M, [-1, N_CTX])
        layout = packing.pack_layout(Xs, Ms, clf_token=N_VOCAB + 2)
        x = tf.constant(rng.normal(size=(6, N_CTX, 8)).astype(np.float32))
        seed = tf.constant([1, 2], tf.int64)
        padded = tf.nn.experimental.stateless_dropout(x, rate=0.5, seed=seed)  # what ops.dropout does
        packed = packing.dropout(packing.pack(x, layout), 0.5, seed, layout)
        self.assertAllEqual(packed, packing.pack(padded, layout))


class TrainerTest(tf.test.TestCase):
    """The Trainer's default path (trim, packing, masked head) against its original mode."""

    def trainers(self, pdrop, ref_options=dict(trim=False, packed=False, lm_head="full", pool_only_eval=False),
                 **options):
        strategy = tf.distribute.get_strategy()
        opt_cfg = OptConfig(t_total=10, max_grad_norm=1.0, l2=0.01)
        ref = Trainer(config(pdrop), opt_cfg, StepConfig(**ref_options), strategy=strategy, lm_coef=0.5)
        fast = Trainer(config(pdrop), opt_cfg, StepConfig(**options), strategy=strategy, lm_coef=0.5)
        init = make_model(pdrop).params_in_order()
        for t in (ref, fast):
            for p, a in zip(t.params, init):
                p.assign(a)
        return ref, fast

    def assert_same_step(self, ref, fast, X, M, Y, *, grads=True):
        assert_same_step(self, ref, fast, X, M, Y, grads=grads, tol=TOL)

    def test_default_path_gradients_and_eval(self):
        X, M, Y = story_batch(np.random.RandomState(7), 4)
        # without dropout: LeverTest.test_prefix_sharing_without_dropout
        self.assert_same_step(*self.trainers(0.2), X, M, Y)

    def test_xla_step_equals_the_original(self):
        # --xla: static shapes (trimmed to a multiple of 8, padded layout, full head), XLA-compiled.
        # Without dropout: XLA's Philox generator yields other uniforms than TensorFlow's kernel for
        # the same seed (other masks, same distribution), so with dropout only evaluation is compared.
        X, M, Y = story_batch(np.random.RandomState(9), 4)
        for pdrop in (0.0, 0.2):
            with self.subTest(pdrop=pdrop):
                ref, fast = self.trainers(pdrop, xla=True)
                self.assertEqual(fast.step_cfg.trim_multiple, 8)
                self.assert_same_step(ref, fast, X, M, Y, grads=not pdrop)

    def test_xla_update_equals_the_plain_one(self):
        X, M, Y = story_batch(np.random.RandomState(8), 4)
        # same gradients; the update plain in one, XLA-fused in the other
        ref, fast = self.trainers(0.1, ref_options=dict(fused_apply=False), fused_apply=True)
        ref.train_step(X, M, Y, 0)
        fast.train_step(X, M, Y, 0)
        for a, b in zip(fast.params, ref.params):
            self.assertAllClose(a, b, atol=1e-6, rtol=0)
        self.assertEqual(fast.n_updates, 1)

    def test_recomputed_gelu_gives_the_same_gradients(self):
        # the default step recomputes the GELU in the backward pass (less memory): the same ops on the
        # same values, the same losses; gradients equal up to rounding (TensorFlow may pick other
        # matmul kernels for the changed graph: 4e-9 apart here), with dropout, packed or padded, XLA
        X, M, Y = story_batch(np.random.RandomState(5), 4)
        for options in (dict(), dict(trim=False, packed=False, lm_head="full"), dict(xla=True)):
            with self.subTest(**options):
                ref, fast = self.trainers(0.2, ref_options=dict(options, recompute=False), **options)
                self.assertTrue(fast.step_cfg.recompute)
                (g_ref, clf_ref, _), (g, clf, _) = (t.compute_gradients(X, M, Y, 3) for t in (ref, fast))
                self.assertAllEqual(clf, clf_ref)
                for a, b in zip(g, g_ref):
                    self.assertAllClose(a, b, atol=1e-7, rtol=1e-6)

    def test_recomputed_gelu_is_recomputed(self):
        # the gradient graph runs each block's tanh twice (forward, recomputation) instead of once,
        # and the exact mode (the original's graph) not at all
        X, M, Y = story_batch(np.random.RandomState(5), 2)
        counts = {}
        for name, options in (("kept", dict(recompute=False)), ("recomputed", dict()), ("exact", dict(exact=True))):
            trainer = Trainer(config(0.0), OptConfig(t_total=10), StepConfig(**options),
                              strategy=tf.distribute.get_strategy(), lm_coef=0.5)
            graph = trainer._grads_fn.get_concrete_function(*trainer._grads_fn.input_signature).graph
            ops = [op for f in [graph, *graph._functions.values()] for op in
                   (f.get_operations() if f is graph else f.graph.get_operations() if hasattr(f, "graph") else [])]
            counts[name] = sum(op.type == "Tanh" for op in ops)
        n_layer = config(0.0).n_layer
        self.assertEqual(counts["kept"], n_layer)
        self.assertEqual(counts["recomputed"], 2 * n_layer)
        self.assertEqual(counts["exact"], n_layer)
        with self.assertRaises(ConfigError):
            StepConfig(exact=True, recompute=True)


if __name__ == "__main__":
    tf.test.main()
