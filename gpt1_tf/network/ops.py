"""Pure tensor helpers (no weights): activations, norm arithmetic, head split/merge, causal mask."""
import math
from typing import NamedTuple

import tensorflow as tf

from gpt1_tf.network.config import RECOMPUTED_ACTIVATIONS


def shape_list(x):
    """Static dimensions where known, dynamic ones otherwise."""
    static = x.shape.as_list()
    dynamic = tf.shape(x)
    return [dynamic[i] if s is None else s for i, s in enumerate(static)]


def to_dtype(x, dtype):
    """x as `dtype`: x itself (no op, no name scope) when it has that dtype already.

    The float32 path must build exactly the graph it built before mixed precision existed:
    its gradient op names decide the order of Grappler's sums (`gpt1_tf.train.trainer`).
    """
    dtype = tf.as_dtype(dtype)
    if tf.as_dtype(x.dtype) == dtype:
        return x
    return tf.cast(x, dtype)


def gelu(x):
    """GELU, tanh approximation as in the original (not the erf form)."""
    return 0.5 * x * (1 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def swish(x):
    """x * sigmoid(x)."""
    return x * tf.nn.sigmoid(x)


ACT_FNS = {"relu": tf.nn.relu, "swish": swish, "gelu": gelu}


def recomputed(fn):
    """`fn` (of tensors) whose backward pass recomputes its intermediates from its inputs instead of keeping them.

    The tanh-GELU keeps six [tokens, 4 n_embd] tensors per block for its gradient: most of a
    fine-tuning tower's activations (`RECOMPUTED_ACT_FNS`). Recomputed, the backward pass runs the
    same forward ops on the same inputs, then the same gradient ops (tf.gradients in a graph, as
    the trainers' own): the forward pass is unchanged, the gradients equal up to rounding
    (TensorFlow may choose other matmul kernels for the changed graph: ~1e-9 apart). The
    recomputation waits for the incoming gradient, so Grappler cannot merge it with the forward pass.
    """
    @tf.custom_gradient
    def f(*xs):
        def grad(dy):
            with tf.control_dependencies([dy]):
                xr = [tf.identity(x) for x in xs]
            if tf.executing_eagerly():
                with tf.GradientTape() as tape:
                    tape.watch(xr)
                    y = fn(*xr)
                return tape.gradient(y, xr, output_gradients=dy)
            return tf.gradients(fn(*xr), xr, grad_ys=dy)
        return fn(*xs), grad
    return f


# the activations whose backward pass recomputes them (the tanh-GELU's six kept tensors are worth it;
# swish keeps two)
RECOMPUTED_ACT_FNS = {name: recomputed(ACT_FNS[name]) for name in RECOMPUTED_ACTIVATIONS}


def norm_arith(x, g, b, *, e=1e-5, axis=-1):
    """(x - mean) * rsqrt(var + e) * g + b over `axis`, in the original's order of operations."""
    u = tf.reduce_mean(x, axis=axis, keepdims=True)
    s = tf.reduce_mean(tf.square(x - u), axis=axis, keepdims=True)
    x = (x - u) * tf.math.rsqrt(s + e)
    return x * g + b


def split_states(x, n):
    """[..., nx] -> [..., n, nx/n]."""
    x_shape = shape_list(x)
    m = x_shape[-1]
    return tf.reshape(x, x_shape[:-1] + [n, m // n])


def merge_states(x):
    """[..., n, d] -> [..., n*d]."""
    x_shape = shape_list(x)
    return tf.reshape(x, x_shape[:-2] + [x_shape[-2] * x_shape[-1]])


def split_heads(x, n, *, k=False):
    """[batch, sequence, features] -> [batch, heads, sequence, features/heads] (k: [batch, heads, f/h, sequence])."""
    if k:
        return tf.transpose(split_states(x, n), [0, 2, 3, 1])
    return tf.transpose(split_states(x, n), [0, 2, 1, 3])


def merge_heads(x):
    """[batch, heads, sequence, features/heads] -> [batch, sequence, features]."""
    return merge_states(tf.transpose(x, [0, 2, 1, 3]))


def mask_attn_weights(w, pool=None):
    """Multiplicative causal mask of the original: w*b + -1e9*(1-b), b the lower triangle.

    With `pool` [S] (one query per sequence, w [S, heads, 1, T]): b is row `pool[s]` of the triangle.
    """
    n = shape_list(w)[-1]
    if pool is None:
        b = tf.reshape(tf.linalg.band_part(tf.ones([n, n], dtype=w.dtype), -1, 0), [1, 1, n, n])
    else:
        b = tf.reshape(tf.cast(tf.range(n)[None, :] <= pool[:, None], w.dtype), [-1, 1, 1, n])
    return mask_with(w, b)


def mask_with(w, b):
    """The original's multiplicative mask: w where b is 1, -1e9 where it is 0 (b 0/1, broadcast to w)."""
    return w * b + tf.cast(-1e9, w.dtype) * (1 - b)


def pool_index(X, clf_token):
    """Position of the first `_classify_` token of each sequence X [S, T, 2] (0 if none), [S]."""
    return tf.cast(tf.argmax(tf.cast(tf.equal(X[:, :, 0], clf_token), tf.float32), 1), tf.int32)


def rows_at(x, pool):
    """Row `pool[s]` of each sequence s of x [S, T, n]: [S, n]."""
    S, T, n = shape_list(x)
    return tf.gather(tf.reshape(x, [-1, n]), tf.range(S, dtype=tf.int32) * T + pool)


class WindowSeed(NamedTuple):
    """A dropout seed whose masks do not depend on how a global batch is split (pretraining).

    `seed` ([2] int): the update's; `first` (scalar int): the place in the global batch of the
    first window (row 0) of the tensors it drops. Row b's mask is a function of (seed, first + b)
    alone (`window_uniform`), so replicas, workers and micro-batches draw the masks one process
    would. A tensor that all windows share (the embedding table) is dropped by `seed` alone.
    """
    seed: tf.Tensor
    first: tf.Tensor


def window_uniform(shape, seed):
    """Uniforms [B, ...] (`shape`, static but for B) whose row b is window seed.first + b's.

    One Philox stream per update seed, cut into a block per window (its elements rounded up to a
    multiple of Philox's 4 outputs a counter): row b starts at counter (first + b) x block, so any
    slice of the global batch draws exactly its rows of the whole batch's uniforms, in one op.
    """
    per_window = math.prod(shape[1:])
    block = -(-per_window // 4)  # counters a window
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed.seed)
    start = tf.cast(tf.cast(seed.first, tf.int64) * block, tf.uint64)
    u = tf.raw_ops.StatelessRandomUniformV2(shape=tf.stack([shape[0], block * 4]), key=key,
                                             counter=tf.stack([start, counter[1]]), alg=1, dtype=tf.float32)
    return tf.reshape(u[:, :per_window], tf.stack(shape))


def dropout(x, rate, seed, *, noise_shape=None):
    """Inverted dropout as tf.nn.dropout, but stateless: `seed` ([2] int) pins the mask exactly.

    A stateless mask makes a run a function of (seed, update): resumable and identical across
    runs. `seed=None` or rate 0 means no dropout (evaluation). A `WindowSeed` drops x as a tensor
    all windows share: by its update seed alone.
    """
    if seed is None or rate <= 0:
        return x
    if isinstance(seed, WindowSeed):
        seed = seed.seed
    return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed, noise_shape=noise_shape)
