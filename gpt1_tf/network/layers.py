"""Keras 3 layers of GPT-1, named like the original variable scopes.

Layer names follow the original's scopes: `h0/attn/c_attn/w`, `h0/ln_1/g`, `clf/w`, ...
Only layers that own weights are layers; the arithmetic lives in `gpt1_tf.network.ops`.
Dropout takes an explicit stateless `seed` ([2] int32 tensor or None): None means no dropout.
"""
import dataclasses
import math

import keras
import tensorflow as tf

from gpt1_tf.network import ops, packing
from gpt1_tf.network.config import ModelConfig

serializable = keras.saving.register_keras_serializable("gpt1_tf")


def normal_init():
    """N(0, 0.02): the original initialiser of every weight matrix."""
    return keras.initializers.RandomNormal(stddev=0.02)


def site_seed(seed, site):
    """A distinct stateless seed for each dropout site (None stays None)."""
    if seed is None:
        return None
    if isinstance(seed, ops.WindowSeed):
        return ops.WindowSeed(tf.random.experimental.stateless_fold_in(seed.seed, site), seed.first)
    return tf.random.experimental.stateless_fold_in(seed, site)


def _dropout(x, rate, seed, *, n_ctx=None, seq_axes=(), layout=None):
    """Stateless dropout whose mask does not depend on how the batch was trimmed or packed.

    The uniforms are drawn for the batch padded to `n_ctx` on `seq_axes` (the original's layout)
    and sliced to x's sequence length, so a trimmed batch drops exactly the units the padded one
    drops at the same positions; with `layout`, x is packed [N, n] and the mask is gathered the
    same way (`packing.dropout`). Without n_ctx, `ops.dropout` on x's own shape. Arithmetic as
    tf.nn.experimental.stateless_dropout: x * (1 / (1 - rate)) where uniform >= rate, else 0.
    The uniforms are float32 whatever x's dtype (the same mask under mixed precision). With an
    `ops.WindowSeed` (x [windows, ...], padded layout), row b's uniforms are window first + b's
    (`ops.window_uniform`): the masks do not depend on how the global batch was split.
    """
    if seed is None or rate <= 0:
        return x
    windows = isinstance(seed, ops.WindowSeed)
    if layout is not None:
        assert not windows, "packed layouts: fine-tuning's per-tower seeds only"
        return packing.dropout(x, rate, seed, layout, n_ctx=n_ctx)
    if n_ctx is None:
        return ops.dropout(x, rate, seed)
    shape = ops.shape_list(x)
    full = [n_ctx if axis in seq_axes else d for axis, d in enumerate(shape)]
    if windows:
        u = ops.window_uniform(full, seed)
    else:  # a stack of the dimensions, not a scatter: XLA must see the shape as a compile-time constant
        u = tf.random.stateless_uniform(tf.stack(full), seed=seed, dtype=tf.float32)
    u = tf.slice(u, [0] * len(shape), tf.shape(x))
    return packing.apply_keep(x, u >= rate, rate)


def _rows_at(x, pool, layout=None):
    """Row `pool[s]` of each sequence s: x [S, T, n], or packed [N, n] with its layout -> [S, n]."""
    if layout is not None:
        return tf.gather(x, tf.gather(layout.row_map, tf.range(layout.S) * layout.T + pool))
    return ops.rows_at(x, pool)


class _Layer(keras.layers.Layer):
    """A Keras layer that leaves its inputs' dtype alone.

    Keras would cast every float input to the layer's float32 policy; under mixed precision the
    model casts explicitly instead (`ModelConfig.compute_dtype`): matmuls in the compute dtype,
    layer norms, softmaxes and losses in float32.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)


@serializable
class Conv1D(_Layer):
    """The original `conv1d(x, scope, nf, rf)`: weight `w` [rf, nx, nf], bias `b` [nf]."""

    def __init__(self, nf, rf=1, **kwargs):
        super().__init__(**kwargs)
        self.nf, self.rf = nf, rf
        self.lora_rank = self.lora_scale = None

    def build(self, input_shape):
        nx = input_shape[-1]
        self.w = self.add_weight(name="w", shape=(self.rf, nx, self.nf), initializer=normal_init())
        self.b = self.add_weight(name="b", shape=(self.nf,), initializer="zeros")

    def enable_lora(self, rank, alpha=None):
        """LoRA (Keras's `Dense.enable_lora`, PEFT's initialisation): `w` and `b` frozen, x W + b + (alpha / rank) x A B.

        A `lora_kernel_a` [nx, rank] ~ U(+-1/sqrt(nx)) (PEFT's kaiming_uniform(a=sqrt(5)) of lora_A),
        B `lora_kernel_b` [rank, nf] zeros: right after this the outputs are the base layer's exactly.
        """
        if self.rf != 1:
            raise ValueError("LoRA adapts the 1x1 conv (a matmul) only")
        if self.lora_rank is not None:
            raise ValueError(f"{self.name}: LoRA is enabled already")
        nx = self.w.shape[1]
        self.w.trainable = self.b.trainable = False
        self.lora_rank, self.lora_scale = rank, (rank if alpha is None else alpha) / rank
        bound = 1 / math.sqrt(nx)
        self._tracker.unlock()  # a built layer's state is locked (Keras's Dense.enable_lora unlocks it too)
        self.lora_kernel_a = self.add_weight(name="lora_kernel_a", shape=(nx, rank),
                                             initializer=keras.initializers.RandomUniform(-bound, bound))
        self.lora_kernel_b = self.add_weight(name="lora_kernel_b", shape=(rank, self.nf), initializer="zeros")
        self._tracker.lock()

    def merged_w(self):
        """The weight the layer computes with: w, or w + (alpha / rank) A B with LoRA ([rf, nx, nf], float32)."""
        if self.lora_rank is None:
            return self.w
        return self.w + self.lora_scale * tf.matmul(self.lora_kernel_a, self.lora_kernel_b)[None]

    def save_own_variables(self, store):
        """A saved model stores the merged weight (keras-hub's convention): it loads into a layer without LoRA.

        With LoRA, also the base weight and A, B: a LoRA layer loads them back exactly (Keras's
        checkpoint callbacks, `save_weights` then `load_weights`), not merged into its base.
        """
        store["0"], store["1"] = tf.convert_to_tensor(self.merged_w()), self.b
        if self.lora_rank is not None:
            store["2"], store["3"], store["4"] = self.w, self.lora_kernel_a, self.lora_kernel_b

    def load_own_variables(self, store):
        self.b.assign(store["1"])
        if self.lora_rank is not None and len(store.keys()) == 5:  # a LoRA layer's own, loaded as it was
            for variable, key in ((self.w, "2"), (self.lora_kernel_a, "3"), (self.lora_kernel_b, "4")):
                variable.assign(store[key])
            return
        self.w.assign(store["0"])
        if self.lora_rank is not None:  # the merged weight is in w now
            self.lora_kernel_b.assign(tf.zeros_like(self.lora_kernel_b))

    def call(self, x):
        if self.rf == 1:
            # the original's "faster 1x1 conv": a matmul over all positions
            x_shape = ops.shape_list(x)
            nx = x_shape[-1]
            w, b = ops.to_dtype(self.w, x.dtype), ops.to_dtype(self.b, x.dtype)
            x2 = tf.reshape(x, [-1, nx])
            c = tf.matmul(x2, tf.reshape(w, [-1, self.nf])) + b
            if self.lora_rank is not None:  # x A B: two thin matmuls, no [nx, nf] product
                a, b2 = ops.to_dtype(self.lora_kernel_a, x.dtype), ops.to_dtype(self.lora_kernel_b, x.dtype)
                c = c + tf.matmul(tf.matmul(x2, a), b2) * tf.constant(self.lora_scale, x.dtype)
            return tf.reshape(c, x_shape[:-1] + [self.nf])
        # a real 1-D convolution (the original notes it was used to train the LM)
        return tf.nn.conv1d(x, ops.to_dtype(self.w, x.dtype), stride=1, padding="VALID") + ops.to_dtype(self.b, x.dtype)

    def get_config(self):
        return {**super().get_config(), "nf": self.nf, "rf": self.rf}


@serializable
class Norm(_Layer):
    """The original `norm(x, scope)`: layer norm over the last axis, eps 1e-5, g=1, b=0."""

    def __init__(self, e=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.e = e

    def build(self, input_shape):
        n_state = input_shape[-1]
        self.g = self.add_weight(name="g", shape=(n_state,), initializer="ones")
        self.b = self.add_weight(name="b", shape=(n_state,), initializer="zeros")

    def call(self, x):
        # in float32 under mixed precision too (variance of half-precision values is unreliable)
        return ops.to_dtype(ops.norm_arith(ops.to_dtype(x, tf.float32), self.g, self.b, e=self.e), x.dtype)

    def get_config(self):
        return {**super().get_config(), "e": self.e}


@serializable
class Attention(_Layer):
    """Masked multi-head self-attention: `c_attn`, scaled q@k, causal mask, softmax, `c_proj`."""

    def __init__(self, n_state, *, n_head, attn_pdrop, resid_pdrop, scale=True, n_ctx=None, **kwargs):
        super().__init__(**kwargs)
        assert n_state % n_head == 0, f"n_state {n_state} must be divisible by n_head {n_head}"
        self.n_state, self.n_head, self.scale, self.n_ctx = n_state, n_head, scale, n_ctx
        self.attn_pdrop, self.resid_pdrop = attn_pdrop, resid_pdrop
        self.c_attn = Conv1D(n_state * 3, 1, name="c_attn")
        self.c_proj = Conv1D(n_state, 1, name="c_proj")

    def build(self, input_shape):
        self.c_attn.build(input_shape)
        self.c_proj.build(input_shape[:-1] + (self.n_state,))

    def _attn(self, q, k, v, seed, pool=None):
        w = ops.to_dtype(tf.matmul(q, k), tf.float32)  # [batch, heads, queries, sequence]; float32 softmax
        if self.scale:
            n_state = ops.shape_list(v)[-1]
            w = w * tf.math.rsqrt(tf.cast(n_state, w.dtype))
        w = ops.mask_attn_weights(w, pool)
        w = tf.nn.softmax(w)
        w = _dropout(w, self.attn_pdrop, seed, n_ctx=self.n_ctx, seq_axes=(2, 3))
        return tf.matmul(ops.to_dtype(w, v.dtype), v)  # [batch, heads, queries, features/heads]

    def call(self, x, seed=None, layout=None, pool=None, cache=None, cache_update_index=None):
        """x [batch, sequence, features], or packed [N, features] with its `packing.PackLayout`.

        With `pool` [batch] (no dropout): the output at that one position per sequence, [batch, features].
        With `cache` (decoding, no dropout): see `_call_cached`; returns (output, updated cache).
        """
        if cache is not None:
            return self._call_cached(x, cache, cache_update_index)
        c = self.c_attn(x)
        if layout is not None:
            c = packing.unpack(c, layout)  # [batch, sequence, 3 * features]
        q, k, v = tf.split(c, 3, axis=2)
        if pool is not None:
            q = tf.expand_dims(ops.rows_at(q, pool), 1)  # [batch, 1, features]
        q = ops.split_heads(q, self.n_head)  # [batch, heads, sequence, features/heads]
        k = ops.split_heads(k, self.n_head, k=True)  # [batch, heads, features/heads, sequence]
        v = ops.split_heads(v, self.n_head)
        a = self._attn(q, k, v, site_seed(seed, 0), pool)
        a = ops.merge_heads(a)  # [batch, sequence, features]
        if pool is not None:
            return self.c_proj(a[:, 0])
        if layout is not None:
            a = packing.pack(a, layout)  # [N, features]
        a = self.c_proj(a)
        return _dropout(a, self.resid_pdrop, site_seed(seed, 1), n_ctx=self.n_ctx, seq_axes=(1,), layout=layout)

    def _call_cached(self, x, cache, index):
        """x [B, S, n] at positions index.. against the keys and values of the positions before.

        cache [2, B, heads, n_ctx, d]: keys and values at every position, static shapes (XLA); the
        rows of x are written at index.. and each query sees the positions up to its own. What `call`
        computes at those positions (to rounding): q @ k over all n_ctx columns, the unwritten ones
        masked out. Several rows (S > 1) only at index 0: the prompt. Returns (output [B, S, n], cache).
        """
        n_ctx = ops.shape_list(cache)[3]
        S = tf.shape(x)[1]
        if x.shape[1] != 1 and tf.get_static_value(index) != 0:
            raise ValueError("a cached call writes several positions at cache_update_index 0 only (the prompt)")
        q, k, v = tf.split(self.c_attn(x), 3, axis=2)
        q, k, v = (ops.split_heads(z, self.n_head) for z in (q, k, v))  # [B, H, S, d]
        kv = tf.stack([k, v])  # [2, B, H, S, d]
        if x.shape[1] != 1:  # the prompt, at positions 0..S-1 (S is static under XLA: the input's shape)
            kv = tf.pad(kv, [[0, 0], [0, 0], [0, 0], [0, n_ctx - S], [0, 0]])
        # one new position: broadcast over the cache's positions, kept only at index (XLA: no dynamic slice)
        written = tf.logical_and(tf.range(n_ctx) >= index, tf.range(n_ctx) < index + S)[:, None]
        cache = tf.where(written, kv, cache)
        w = ops.to_dtype(tf.matmul(q, cache[0], transpose_b=True), tf.float32)  # [B, H, S, n_ctx]
        if self.scale:
            w = w * tf.math.rsqrt(tf.cast(ops.shape_list(v)[-1], w.dtype))
        visible = tf.cast(tf.range(n_ctx)[None, :] <= (index + tf.range(S))[:, None], w.dtype)  # [S, n_ctx]
        w = tf.nn.softmax(ops.mask_with(w, visible))
        a = ops.merge_heads(tf.matmul(ops.to_dtype(w, v.dtype), cache[1]))
        return self.c_proj(a), cache

    def get_config(self):
        return {**super().get_config(), "n_state": self.n_state, "n_head": self.n_head,
                "attn_pdrop": self.attn_pdrop, "resid_pdrop": self.resid_pdrop, "scale": self.scale,
                "n_ctx": self.n_ctx}


@serializable
class MLP(_Layer):
    """Position-wise feed-forward: act(`c_fc`(x)) -> `c_proj`, then residual dropout."""

    def __init__(self, n_state, *, afn, resid_pdrop, n_ctx=None, **kwargs):
        super().__init__(**kwargs)
        self.n_state, self.afn, self.resid_pdrop, self.n_ctx = n_state, afn, resid_pdrop, n_ctx
        self.c_fc = None
        self.c_proj = None

    def build(self, input_shape):
        nx = input_shape[-1]
        self.c_fc = Conv1D(self.n_state, 1, name="c_fc")
        self.c_fc.build(input_shape)
        self.c_proj = Conv1D(nx, 1, name="c_proj")
        self.c_proj.build(input_shape[:-1] + (self.n_state,))

    def call(self, x, seed=None, layout=None, recompute=False):
        """`recompute`: the activation's intermediates recomputed in the backward pass where that is
        worth it (`ops.RECOMPUTED_ACT_FNS`: the GELU)."""
        c = self.c_fc(x)
        act = (recompute and ops.RECOMPUTED_ACT_FNS.get(self.afn)) or ops.ACT_FNS[self.afn]
        h = ops.to_dtype(act(ops.to_dtype(c, tf.float32)), c.dtype)  # activation in float32
        h2 = self.c_proj(h)
        return _dropout(h2, self.resid_pdrop, seed, n_ctx=self.n_ctx, seq_axes=(1,), layout=layout)

    def get_config(self):
        return {**super().get_config(), "n_state": self.n_state, "afn": self.afn, "resid_pdrop": self.resid_pdrop,
                "n_ctx": self.n_ctx}


@serializable
class Block(_Layer):
    """Post-norm transformer block (GPT-1, unlike GPT-2): n = ln_1(x + attn(x)); h = ln_2(n + mlp(n))."""

    def __init__(self, cfg, **kwargs):
        super().__init__(**kwargs)
        cfg = self.cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig(**cfg)
        nx = cfg.n_embd
        self.attn = Attention(nx, n_head=cfg.n_head, attn_pdrop=cfg.attn_pdrop,
                              resid_pdrop=cfg.resid_pdrop, scale=True, n_ctx=cfg.n_ctx, name="attn")
        self.ln_1 = Norm(name="ln_1")
        # dropout masks drawn on the n_ctx layout: trimming or packing a batch changes none of them
        self.mlp = MLP(4 * nx, afn=cfg.afn, resid_pdrop=cfg.resid_pdrop, n_ctx=cfg.n_ctx, name="mlp")
        self.ln_2 = Norm(name="ln_2")

    def build(self, input_shape):
        # built in the original variable order: attn, ln_1, mlp, ln_2
        self.attn.build(input_shape)
        self.ln_1.build(input_shape)
        self.mlp.build(input_shape)
        self.ln_2.build(input_shape)

    def call(self, x, seed=None, layout=None, pool=None, cache=None, cache_update_index=None, recompute=False):
        """x [batch, sequence, n_embd], or packed [N, n_embd] with its `packing.PackLayout`.

        With `pool` [batch] (positions; no dropout), only the outputs at those positions are
        computed, [batch, n_embd]: by the causal mask they need the keys and values of the positions
        before them only. The last block of an evaluation, where only the classifier reads h.
        With `cache` [2, batch, heads, n_ctx, d] (decoding, no dropout), x [batch, S, n_embd] is at
        positions cache_update_index.. (`Attention._call_cached`): returns (h, updated cache).
        `recompute`: the MLP's activation recomputed in the backward pass (less memory, the same gradients).
        """
        if cache is not None:
            assert seed is None and layout is None and pool is None, "cache: decoding only"
            a, cache = self.attn(x, cache=cache, cache_update_index=cache_update_index)
            n = self.ln_1(x + a)
            return self.ln_2(n + self.mlp(n)), cache
        if pool is not None:
            assert seed is None, "pool: evaluation only (no dropout)"
            a = self.attn(x, layout=layout, pool=pool)
            x = _rows_at(x, pool, layout)
        else:
            a = self.attn(x, seed=site_seed(seed, 0), layout=layout)
        n = self.ln_1(x + a)
        m = self.mlp(n, seed=site_seed(seed, 1), layout=layout, recompute=recompute)
        return self.ln_2(n + m)

    def get_config(self):
        return {**super().get_config(), "cfg": dataclasses.asdict(self.cfg)}


@serializable
class ClfHead(_Layer):
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
