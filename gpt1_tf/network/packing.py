"""Packing: run the dense layers on real tokens only, attention on the padded layout.

A batch X [S, T, 2] pads every sequence to T. The conv1d/MLP/norm arithmetic is per position, so
it can run on one [N, n_embd] matrix of the N positions that matter (1.47x fewer FLOPs
than the padded step). Attention needs each sequence's keys, so its inputs are gathered back to
[S, T, ...] (padded positions read an arbitrary real row: a real query never attends to them, the
causal mask puts them after it, and their outputs are dropped), and its output is packed again.

Which positions matter: sequence s needs positions t < L_s, L_s = max(last index with M != 0,
first `_classify_`) + 1: the LM loss at t+1 reads h[t] and the classifier reads h[pool]. By the
causal mask, h at those positions does not depend on later ones, so every output is unchanged.

With `share_prefix` (only without dropout), the K sequences of an example (consecutive in X) share
the hidden states of their common prefix (Story Cloze: start + story + delimiter; identical tokens
and positions, hence identical states under the causal mask): the prefix rows of sequences 1..K-1
map to sequence 0's. With K = 1 nothing is shared.

Dropout masks are drawn on the padded layout [S, n_ctx, n_embd], exactly as the padded path draws
them (`layers._dropout`), then sliced to T and gathered: the packed path drops the same units.
"""
import collections

import tensorflow as tf

from gpt1_tf.network import ops

# rows [N]: flat index s*T+t of each packed row; row_map [S*T]: packed row of every position (padded
# positions read row 0, see above); valid [S*T]: whether a position is computed at all
PackLayout = collections.namedtuple("PackLayout", "rows row_map valid S T")


def pack_layout(X, M, *, clf_token, share_prefix=False, K=2):
    """Layout of X [S, T, 2], M [S, T] (S = examples * K): which positions are computed and where each one lives."""
    S, T = ops.shape_list(X)[0], ops.shape_list(X)[1]
    t = tf.range(T, dtype=tf.int32)[None, :]  # [1, T]
    last = tf.reduce_max(tf.where(tf.not_equal(M, 0), t, -1), axis=1)  # [S], -1 if none
    pool = ops.pool_index(X, clf_token)
    n_len = tf.maximum(last, pool) + 1  # [S]
    valid = t < n_len[:, None]  # [S, T]
    own = valid
    if share_prefix:
        dup = _shared_with_first(X, valid, K, t)
        own = valid & ~dup
    own = tf.reshape(own, [-1])  # [S*T]
    rows = tf.cast(tf.where(own)[:, 0], tf.int32)  # [N]
    row_of = tf.cumsum(tf.cast(own, tf.int32)) - 1  # packed row of each owned position
    row_map = tf.where(own, row_of, 0)
    if share_prefix:
        # a duplicated position (sequence k of its example, t) reads sequence 0's row at t: flat index - k*T
        k = tf.reshape(tf.tile(tf.range(K)[:, None], [S // K, T]), [-1])  # [S*T]
        earlier = tf.gather(row_map, tf.maximum(tf.range(S * T) - k * T, 0))
        row_map = tf.where(tf.reshape(dup, [-1]), earlier, row_map)
    # S, T as tensors: Keras passes a layer argument through only if it is all tensors
    return PackLayout(rows, row_map, tf.reshape(valid, [-1]), tf.convert_to_tensor(S, tf.int32),
                      tf.convert_to_tensor(T, tf.int32))


def _shared_with_first(X, valid, K, t):
    """[S, T]: the positions of sequences 1..K-1 whose whole prefix up to them equals sequence 0's."""
    S, T = ops.shape_list(X)[0], ops.shape_list(X)[1]
    Xp = tf.reshape(X, [-1, K, T, 2])  # [examples, K, T, 2]
    Vp = tf.reshape(valid, [-1, K, T])
    same = tf.reduce_all(tf.equal(Xp, Xp[:, :1]), axis=-1)  # [examples, K, T]
    n_shared = tf.reduce_sum(tf.math.cumprod(tf.cast(same, tf.int32), axis=2), axis=2)  # [examples, K]
    first = tf.range(K)[None, :, None] == 0
    dup = (t[None] < n_shared[..., None]) & Vp & Vp[:, :1] & ~first  # computed by sequence 0 instead
    return tf.reshape(dup, [S, T])


def pack(x, layout):
    """Padded [S, T, n] -> packed [N, n]."""
    n = ops.shape_list(x)[-1]
    return tf.gather(tf.reshape(x, [-1, n]), layout.rows)


def unpack(x, layout):
    """Packed [N, n] -> padded [S, T, n] (padded positions hold an arbitrary real row)."""
    n = ops.shape_list(x)[-1]
    return tf.reshape(tf.gather(x, layout.row_map), [layout.S, layout.T, n])


def embed(we, X, layout):
    """Token row + position row of each packed position: [N, n_embd]."""
    x = tf.gather(tf.reshape(X, [-1, 2]), layout.rows)  # [N, 2]
    return tf.reduce_sum(tf.gather(we, x), 1)


def apply_keep(x, keep, rate):
    """x * (1 / (1 - rate)) where keep, else 0: the arithmetic of tf.nn.experimental.stateless_dropout."""
    scale = tf.convert_to_tensor(1 / (1 - rate), dtype=x.dtype)
    return tf.where(keep, x * scale, tf.constant(0, x.dtype))


def dropout(x, rate, seed, layout, *, n_ctx=None):
    """Dropout of packed rows x [N, n] with the mask the padded tensor [S, T, n] would get.

    The uniforms are drawn on the padded layout [S, n_ctx, n] (or [S, T, n] without n_ctx), sliced
    to T, then gathered at the packed rows.
    """
    if seed is None or rate <= 0:
        return x
    n = ops.shape_list(x)[-1]
    full_t = layout.T if n_ctx is None else n_ctx
    u = tf.random.stateless_uniform([layout.S, full_t, n], seed=seed, dtype=tf.float32)  # padded layout
    u = tf.reshape(u[:, :layout.T], [-1, n])  # [S*T, n]
    return apply_keep(x, tf.gather(u, layout.rows) >= rate, rate)
