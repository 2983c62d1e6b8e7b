"""Keras 3 layers of GPT-1, named like the original variable scopes.

Variable paths read `model/h0/attn/c_attn/w`, `model/h0/ln_1/g`, ... (Keras 3 `v.path`).
Only layers that own weights are layers; the arithmetic lives in `gpt1_tf.ops`.
Dropout takes an explicit stateless `seed` ([2] int32 tensor or None): None means no dropout.
"""
import keras
import tensorflow as tf

from gpt1_tf import ops


def normal_init():
    """N(0, 0.02): the original initialiser of every weight matrix."""
    return keras.initializers.RandomNormal(stddev=0.02)


def site_seed(seed, site):
    """A distinct stateless seed for each dropout site (None stays None)."""
    if seed is None:
        return None
    return tf.random.experimental.stateless_fold_in(seed, site)


class Conv1D(keras.layers.Layer):
    """The original `conv1d(x, scope, nf, rf)`: weight `w` [rf, nx, nf], bias `b` [nf]."""

    def __init__(self, nf, rf=1, **kwargs):
        super().__init__(**kwargs)
        self.nf, self.rf = nf, rf

    def build(self, input_shape):
        nx = input_shape[-1]
        self.w = self.add_weight(name="w", shape=(self.rf, nx, self.nf), initializer=normal_init())
        self.b = self.add_weight(name="b", shape=(self.nf,), initializer="zeros")

    def call(self, x):
        if self.rf == 1:
            # the original's "faster 1x1 conv": a matmul over all positions
            x_shape = ops.shape_list(x)
            nx = x_shape[-1]
            c = tf.matmul(tf.reshape(x, [-1, nx]), tf.reshape(self.w, [-1, self.nf])) + self.b
            return tf.reshape(c, x_shape[:-1] + [self.nf])
        # a real 1-D convolution (the original notes it was used to train the LM)
        return tf.nn.conv1d(x, self.w, stride=1, padding="VALID") + self.b

    def get_config(self):
        return {**super().get_config(), "nf": self.nf, "rf": self.rf}


class Norm(keras.layers.Layer):
    """The original `norm(x, scope)`: layer norm over the last axis, eps 1e-5, g=1, b=0."""

    def __init__(self, e=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.e = e

    def build(self, input_shape):
        n_state = input_shape[-1]
        self.g = self.add_weight(name="g", shape=(n_state,), initializer="ones")
        self.b = self.add_weight(name="b", shape=(n_state,), initializer="zeros")

    def call(self, x):
        return ops.norm_arith(x, self.g, self.b, e=self.e)

    def get_config(self):
        return {**super().get_config(), "e": self.e}


class Attention(keras.layers.Layer):
    """Masked multi-head self-attention: `c_attn`, scaled q@k, causal mask, softmax, `c_proj`."""

    def __init__(self, n_state, *, n_head, attn_pdrop, resid_pdrop, scale=True, **kwargs):
        super().__init__(**kwargs)
        assert n_state % n_head == 0, f"n_state {n_state} must be divisible by n_head {n_head}"
        self.n_state, self.n_head, self.scale = n_state, n_head, scale
        self.attn_pdrop, self.resid_pdrop = attn_pdrop, resid_pdrop
        self.c_attn = Conv1D(n_state * 3, 1, name="c_attn")
        self.c_proj = Conv1D(n_state, 1, name="c_proj")

    def build(self, input_shape):
        self.c_attn.build(input_shape)
        self.c_proj.build(input_shape[:-1] + (self.n_state,))

    def _attn(self, q, k, v, seed):
        w = tf.matmul(q, k)  # [batch, heads, sequence, sequence]
        if self.scale:
            n_state = ops.shape_list(v)[-1]
            w = w * tf.math.rsqrt(tf.cast(n_state, w.dtype))
        w = ops.mask_attn_weights(w)
        w = tf.nn.softmax(w)
        w = ops.dropout(w, self.attn_pdrop, seed)
        return tf.matmul(w, v)  # [batch, heads, sequence, features/heads]

    def call(self, x, seed=None):
        c = self.c_attn(x)
        q, k, v = tf.split(c, 3, axis=2)
        q = ops.split_heads(q, self.n_head)  # [batch, heads, sequence, features/heads]
        k = ops.split_heads(k, self.n_head, k=True)  # [batch, heads, features/heads, sequence]
        v = ops.split_heads(v, self.n_head)
        a = self._attn(q, k, v, site_seed(seed, 0))
        a = ops.merge_heads(a)  # [batch, sequence, features]
        a = self.c_proj(a)
        return ops.dropout(a, self.resid_pdrop, site_seed(seed, 1))

    def get_config(self):
        return {**super().get_config(), "n_state": self.n_state, "n_head": self.n_head,
                "attn_pdrop": self.attn_pdrop, "resid_pdrop": self.resid_pdrop, "scale": self.scale}


class MLP(keras.layers.Layer):
    """Position-wise feed-forward: act(`c_fc`(x)) -> `c_proj`, then residual dropout."""

    def __init__(self, n_state, *, afn, resid_pdrop, **kwargs):
        super().__init__(**kwargs)
        self.n_state, self.afn, self.resid_pdrop = n_state, afn, resid_pdrop
        self.c_fc = None
        self.c_proj = None

    def build(self, input_shape):
        nx = input_shape[-1]
        self.c_fc = Conv1D(self.n_state, 1, name="c_fc")
        self.c_fc.build(input_shape)
        self.c_proj = Conv1D(nx, 1, name="c_proj")
        self.c_proj.build(input_shape[:-1] + (self.n_state,))

    def call(self, x, seed=None):
        h = ops.ACT_FNS[self.afn](self.c_fc(x))
        h2 = self.c_proj(h)
        return ops.dropout(h2, self.resid_pdrop, seed)

    def get_config(self):
        return {**super().get_config(), "n_state": self.n_state, "afn": self.afn, "resid_pdrop": self.resid_pdrop}


class Block(keras.layers.Layer):
    """Post-norm transformer block (GPT-1, unlike GPT-2): n = ln_1(x + attn(x)); h = ln_2(n + mlp(n))."""

    def __init__(self, cfg, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        nx = cfg.n_embd
        self.attn = Attention(nx, n_head=cfg.n_head, attn_pdrop=cfg.attn_pdrop,
                              resid_pdrop=cfg.resid_pdrop, scale=True, name="attn")
        self.ln_1 = Norm(name="ln_1")
        self.mlp = MLP(4 * nx, afn=cfg.afn, resid_pdrop=cfg.resid_pdrop, name="mlp")
        self.ln_2 = Norm(name="ln_2")

    def build(self, input_shape):
        # built in the original variable order: attn, ln_1, mlp, ln_2
        self.attn.build(input_shape)
        self.ln_1.build(input_shape)
        self.mlp.build(input_shape)
        self.ln_2.build(input_shape)

    def call(self, x, seed=None):
        a = self.attn(x, seed=site_seed(seed, 0))
        n = self.ln_1(x + a)
        m = self.mlp(n, seed=site_seed(seed, 1))
        return self.ln_2(n + m)


class ClfHead(keras.layers.Layer):
    """The original `clf(x, ny)`: a dense layer `w` [nx, ny] N(0, 0.02), `b` [ny] zeros."""

    def __init__(self, ny=1, **kwargs):
        super().__init__(**kwargs)
        self.ny = ny

    def build(self, input_shape):
        nx = input_shape[-1]
        self.w = self.add_weight(name="w", shape=(nx, self.ny), initializer=normal_init())
        self.b = self.add_weight(name="b", shape=(self.ny,), initializer="zeros")

    def call(self, x):
        return tf.matmul(x, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "ny": self.ny}
