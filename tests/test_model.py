"""The network: golden forward parity, and unit tests of its pieces against NumPy."""
import math

import numpy as np
import tensorflow as tf

from helpers import FWD_CASES, ADAM_CASES, load_fixture, model_config, params_of
from gpt1_tf.network import ops, tokens
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.layers import Conv1D, Norm
from gpt1_tf.network.heads import lm_losses_full, pooled as pooled_states
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.weights.pretrained import set_params

FWD_TOL = 1e-5  # forward outputs within 1e-5 abs of the original's


def fixture_model(name):
    arrays, meta = load_fixture(name)
    model = TransformerModel(model_config(meta["hp"]))
    set_params(model, params_of(arrays, "before"))
    return model, arrays, meta


class ForwardParityTest(tf.test.TestCase):
    """clf logits, clf losses and lm losses equal those of the original code (golden fixtures)."""

    def test_forward_parity_all_fixtures(self):
        for name in FWD_CASES + ADAM_CASES:  # the adam fixtures also record the forward before updating
            for lm_head in ("masked", "full"):
                with self.subTest(fixture=name, lm_head=lm_head):
                    model, a, _ = fixture_model(name)
                    clf_logits, clf_losses, lm_losses = model(a["X"], a["M"], a["Y"], lm_head=lm_head)
                    self.assertEqual(clf_logits.shape, a["clf_logits"].shape)
                    self.assertEqual(lm_losses.shape, (2 * len(a["Y"]),))
                    self.assertAllClose(clf_logits, a["clf_logits"], atol=FWD_TOL, rtol=0)
                    self.assertAllClose(clf_losses, a["clf_losses"], atol=FWD_TOL, rtol=0)
                    self.assertAllClose(lm_losses, a["lm_losses"], atol=FWD_TOL, rtol=0)

    def test_trimmed_batch_gives_the_same_outputs(self):
        model, a, _ = fixture_model("fwd_gelu")
        T = int(a["M"].sum(-1).max())
        self.assertLess(T, a["X"].shape[2])
        full = model(a["X"], a["M"], a["Y"])
        trimmed = model(a["X"][:, :, :T], a["M"][:, :, :T], a["Y"])
        for x, y in zip(full, trimmed):
            self.assertAllClose(x, y, atol=1e-6, rtol=0)

    def test_variable_paths_follow_the_original_scopes(self):
        model, _, meta = fixture_model("fwd_gelu")
        names = [n.split(":")[0] for n in meta["param_names"]]
        self.assertEqual([p.path for p in model.params_in_order()], names)
        self.assertEqual(len(model.trainable_variables), len(names))


class PiecesTest(tf.test.TestCase):

    def test_gelu_is_the_tanh_form(self):
        x = np.linspace(-6, 6, 101).astype(np.float32)
        want = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        self.assertAllClose(ops.gelu(tf.constant(x)), want, atol=1e-6)
        erf_form = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
        self.assertGreater(np.abs(want - erf_form).max(), 1e-4)  # the two forms do differ

    def test_swish_and_relu(self):
        x = np.linspace(-5, 5, 41).astype(np.float32)
        self.assertAllClose(ops.swish(tf.constant(x)), x / (1 + np.exp(-x)), atol=1e-6)
        self.assertAllClose(ops.ACT_FNS["relu"](tf.constant(x)), np.maximum(x, 0))

    def test_norm_against_numpy(self):
        rng = np.random.RandomState(0)
        x = rng.randn(3, 5, 16).astype(np.float32) * 3 + 1
        layer = Norm(name="ln")
        layer.build(x.shape)
        g, b = rng.randn(16).astype(np.float32), rng.randn(16).astype(np.float32)
        layer.g.assign(g)
        layer.b.assign(b)
        u = x.mean(-1, keepdims=True)
        s = ((x - u) ** 2).mean(-1, keepdims=True)
        self.assertAllClose(layer(x), (x - u) / np.sqrt(s + 1e-5) * g + b, atol=1e-5)

    def test_conv1d_rf1_is_a_matmul(self):
        rng = np.random.RandomState(1)
        x = rng.randn(2, 7, 8).astype(np.float32)
        layer = Conv1D(12, 1, name="c")
        layer.build(x.shape)
        self.assertEqual(tuple(layer.w.shape), (1, 8, 12))
        w = layer.w.numpy()[0]
        self.assertAllClose(layer(x), x @ w + layer.b.numpy(), atol=1e-5)

    def test_conv1d_rf3_is_a_valid_convolution(self):
        rng = np.random.RandomState(2)
        x = rng.randn(2, 7, 4).astype(np.float32)
        layer = Conv1D(5, 3, name="c")
        layer.build(x.shape)
        layer.b.assign(rng.randn(5).astype(np.float32))
        w, b = layer.w.numpy(), layer.b.numpy()
        want = np.stack([sum(x[:, t + k] @ w[k] for k in range(3)) for t in range(5)], 1) + b
        self.assertAllClose(layer(x), want, atol=1e-5)

    def test_causal_mask_values(self):
        w = tf.ones([1, 1, 3, 3])
        masked = ops.mask_attn_weights(w).numpy()[0, 0]
        self.assertAllEqual(masked, [[1, -1e9, -1e9], [1, 1, -1e9], [1, 1, 1]])

    def test_future_tokens_do_not_change_earlier_outputs(self):
        cfg = ModelConfig(n_vocab=30, n_ctx=10, n_embd=16, n_head=2, n_layer=2)
        model = TransformerModel(cfg)
        rng = np.random.RandomState(3)
        X = rng.randint(0, 30, size=(2, 10, 2)).astype(np.int32)
        X[..., 1] = tokens.position_id(cfg.n_vocab, np.arange(10))
        h1, _ = model.transformer.hidden(tf.constant(X))
        X2 = X.copy()
        X2[:, 6:, 0] = rng.randint(0, 30, size=(2, 4))
        h2, _ = model.transformer.hidden(tf.constant(X2))
        self.assertAllClose(h1[:, :6], h2[:, :6], atol=1e-6)
        self.assertGreater(np.abs(h1[:, 6:] - h2[:, 6:]).max(), 1e-3)

    def test_lm_head_is_tied_to_the_whole_table(self):
        model, a, _ = fixture_model("fwd_relu")
        X = tf.reshape(a["X"], [-1, a["X"].shape[2], 2])
        M = tf.reshape(a["M"], [-1, a["M"].shape[2]])
        h, we = model.transformer.hidden(X)
        self.assertEqual(we.shape[0], model.cfg.n_table)  # positions included
        # numpy reference of the masked mean cross-entropy over all rows of we
        logits = h[:, :-1].numpy() @ we.numpy().T
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        tgt = X.numpy()[:, 1:, 0]
        xent = -np.take_along_axis(logp, tgt[..., None], -1)[..., 0]
        m = M.numpy()[:, 1:]
        self.assertAllClose(lm_losses_full(h, we, X, M), (xent * m).sum(1) / m.sum(1), atol=1e-5)

    def test_classifier_dropout_mask_is_shared_by_both_endings(self):
        cfg = ModelConfig(n_vocab=30, n_ctx=8, n_embd=16, n_head=2, n_layer=1,
                          embd_pdrop=0, attn_pdrop=0, resid_pdrop=0, clf_pdrop=0.5)
        model = TransformerModel(cfg)
        rng = np.random.RandomState(4)
        X = rng.randint(0, 30, size=(3, 2, 8, 2)).astype(np.int32)
        X[..., 1] = tokens.position_id(cfg.n_vocab, np.arange(8))
        X[:, :, 5, 0] = cfg.clf_token
        h, _ = model.transformer.hidden(tf.reshape(X, [-1, 8, 2]))
        pooled = tf.reshape(h[:, 5], [3, 2, 16]).numpy()
        model.clf.w.assign(np.ones((16, 1), np.float32))  # logit = sum of the (dropped) features + b
        seed = tf.constant([7, 9], tf.int64)
        clf_h = pooled_states(tf.reshape(h, [-1, 8, 16]), tf.reshape(X, [-1, 8, 2]), cfg.clf_token)
        self.assertAllEqual(tf.reshape(clf_h, [3, 2, 16]), pooled)  # the first _classify_ position
        logits = model.clf.logits(clf_h, 2, seed).numpy()
        self.assertNotAllClose(logits, pooled.sum(-1) + model.clf.b.numpy())
        # the mask classify used: same site seed, noise shape [B, 1, n_embd]
        site = tf.random.experimental.stateless_fold_in(seed, 1)
        dropped = ops.dropout(tf.constant(pooled), 0.5, site, noise_shape=[3, 1, 16]).numpy()
        self.assertAllEqual(dropped[:, 0] == 0, dropped[:, 1] == 0)
        self.assertAllClose(dropped.sum(-1) + model.clf.b.numpy(), logits, atol=1e-5)

    def test_config_errors_are_one_line(self):
        with self.assertRaisesRegex(Gpt1Error, "divisible"):
            ModelConfig(n_embd=10, n_head=3)
        with self.assertRaisesRegex(Gpt1Error, "afn"):
            ModelConfig(afn="tanh")



if __name__ == "__main__":
    tf.test.main()
