"""The GPT-1 network with its two heads: the tied LM head and the Story Cloze classifier.

`TransformerModel(cfg)(X, M, Y)` returns what the original `model(X, M, Y)` returned:
clf_logits [B, 2], clf_losses [B], lm_losses [2B].
"""
import keras
import tensorflow as tf

from gpt1_tf import ops, packing
from gpt1_tf.layers import Block, ClfHead, normal_init, site_seed

# dropout sites (folded into the step seed): embedding table, each block, classifier
_SITE_EMBD, _SITE_CLF, _SITE_BLOCK0 = 0, 1, 2


class TransformerModel(keras.Model):
    """GPT-1: one embedding table `we` [n_vocab + n_special + n_ctx, n_embd], n_layer post-norm blocks.

    Call with X int [B, 2, T, 2] (token ids, position ids), M float [B, 2, T], Y int [B] (or None),
    T <= n_ctx. Positions come from X[..., 1], so a batch trimmed to its longest sequence gives the
    same outputs as the padded one.
    """

    def __init__(self, cfg, **kwargs):
        kwargs.setdefault("name", "model")
        super().__init__(**kwargs)
        self.cfg = cfg
        self.blocks = [Block(cfg, name=f"h{i}") for i in range(cfg.n_layer)]
        for i, block in enumerate(self.blocks):
            # also as attributes: TF checkpoints then key them model/h0/..., not through the optimizer
            setattr(self, f"h{i}", block)
        self.clf = ClfHead(1, name="clf")
        self.build()

    def build(self, input_shape=None):
        cfg = self.cfg
        self.we = self.add_weight(name="we", shape=(cfg.n_table, cfg.n_embd), initializer=normal_init())
        for block in self.blocks:
            block.build((None, None, cfg.n_embd))
        self.clf.build((None, cfg.n_embd))
        self.built = True

    def params_in_order(self):
        """Variables in the original order: we; per layer the 12 block arrays; clf/w, clf/b."""
        params = [self.we]
        for block in self.blocks:
            params += [block.attn.c_attn.w, block.attn.c_attn.b, block.attn.c_proj.w, block.attn.c_proj.b,
                       block.ln_1.g, block.ln_1.b,
                       block.mlp.c_fc.w, block.mlp.c_fc.b, block.mlp.c_proj.w, block.mlp.c_proj.b,
                       block.ln_2.g, block.ln_2.b]
        params += [self.clf.w, self.clf.b]
        assert len(params) == self.cfg.n_params_arrays
        return params

    def transformer(self, X, seed=None, pool=None):
        """Hidden states [B*2, T, n_embd] of X [B*2, T, 2], and the (dropped-out) table `we`.

        With `pool` [B*2] (no dropout), the last block runs at those positions only: h [B*2, n_embd].
        """
        cfg = self.cfg
        # embedding dropout on the table itself, as the original: the tied LM head sees it too
        we = ops.dropout(self.we, cfg.embd_pdrop, site_seed(seed, _SITE_EMBD))
        h = ops.to_dtype(tf.reduce_sum(tf.gather(we, X), 2), cfg.compute_dtype)  # token + position rows
        return self._blocks(h, seed, pool), we

    def transformer_packed(self, X, M, seed=None, pool=None):
        """Same hidden states as `transformer`, computed on packed rows (see `gpt1_tf.packing`).

        Returns h [B*2, T, n_embd] (positions no output reads hold arbitrary values; with `pool`,
        [B*2, n_embd] as `transformer`) and `we`. The two endings share their common prefix when
        nothing is dropped (seed None).
        """
        cfg = self.cfg
        layout = packing.pack_layout(X, M, clf_token=cfg.clf_token, share_prefix=seed is None)
        we = ops.dropout(self.we, cfg.embd_pdrop, site_seed(seed, _SITE_EMBD))
        h = ops.to_dtype(packing.embed(we, X, layout), cfg.compute_dtype)  # [N, n_embd]
        h = self._blocks(h, seed, pool, layout)
        return (h if pool is not None else packing.unpack(h, layout)), we

    def _blocks(self, h, seed, pool, layout=None):
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, seed=site_seed(seed, _SITE_BLOCK0 + i), layout=layout,
                      pool=pool if i == last else None)
        return h

    def call(self, X, M, Y=None, training=False, seed=None, compute_lm=True, lm_head="masked",
             packed=False, pool_only=False):
        """Returns (clf_logits [B, 2], clf_losses [B] or None, lm_losses [2B] or None).

        `seed` ([2] int32) drives every dropout mask when `training`; without it nothing is dropped.
        `lm_head="masked"` computes LM logits only at positions the mask counts (same losses as
        "full", the original's every-position head, which is kept for reference and tests).
        `packed=True` runs the dense layers on the needed positions only (`gpt1_tf.packing`): same
        outputs, gradients and dropout masks, fewer FLOPs; the Trainer's default.
        `pool_only=True` (without the LM head and dropout: evaluation) runs the last block at the
        `_classify_` positions only: same outputs, ~6% fewer FLOPs.
        """
        cfg = self.cfg
        if not training:
            seed = None
        T = ops.shape_list(X)[2]
        X = tf.reshape(X, [-1, T, 2])  # [B*2, T, 2]
        M = tf.reshape(M, [-1, T])  # [B*2, T]
        pool = ops.pool_index(X, cfg.clf_token) if pool_only and not compute_lm and seed is None else None
        if packed:
            h, we = self.transformer_packed(X, M, seed, pool)
        else:
            h, we = self.transformer(X, seed, pool)

        lm_losses = None
        if compute_lm:
            lm_losses = (lm_losses_masked if lm_head == "masked" else lm_losses_full)(h, we, X, M)

        clf_h = h if pool is not None else pooled(h, X, cfg.clf_token)
        clf_logits = self.classify(clf_h, seed)
        clf_losses = None
        if Y is not None:
            clf_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(logits=clf_logits, labels=Y)
        return clf_logits, clf_losses, lm_losses

    def classify(self, clf_h, seed):
        """Logits [B, 2] of the pooled states [B*2, n_embd]; one clf dropout mask for both endings."""
        cfg = self.cfg
        clf_h = tf.reshape(ops.to_dtype(clf_h, tf.float32), [-1, 2, cfg.n_embd])  # [B, 2, n_embd]
        clf_seed = site_seed(seed, _SITE_CLF)
        if clf_seed is not None:
            noise_shape = tf.stack([tf.shape(clf_h)[0], 1, cfg.n_embd])  # same mask for both endings
            clf_h = ops.dropout(clf_h, cfg.clf_pdrop, clf_seed, noise_shape=noise_shape)
        clf_h = tf.reshape(clf_h, [-1, cfg.n_embd])
        return tf.reshape(self.clf(clf_h), [-1, 2])


def pooled(h, X, clf_token):
    """h [S, T, n_embd] at each sequence's first `_classify_` token: [S, n_embd]."""
    return ops.rows_at(h, ops.pool_index(X, clf_token))


def lm_losses_full(h, we, X, M):
    """The original LM head: logits at every position against ALL rows of `we`, masked mean xent."""
    n_embd = ops.shape_list(h)[-1]
    n_seq, T = ops.shape_list(X)[0], ops.shape_list(X)[1]
    lm_h = tf.reshape(h[:, :-1], [-1, n_embd])
    lm_logits = ops.to_dtype(tf.matmul(lm_h, ops.to_dtype(we, lm_h.dtype), transpose_b=True), tf.float32)
    lm_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=lm_logits, labels=tf.reshape(X[:, 1:, 0], [-1]))
    lm_losses = tf.reshape(lm_losses, [n_seq, T - 1])
    return tf.reduce_sum(lm_losses * M[:, 1:], 1) / tf.reduce_sum(M[:, 1:], 1)


def lm_losses_masked(h, we, X, M):
    """Same losses as `lm_losses_full`, but the head is evaluated only where M[:, 1:] != 0.

    Positions the mask zeroes contribute exactly 0 to the original's sum, so skipping them changes
    no number beyond float summation order; it saves most of the 40k-row head on padded batches.
    """
    n_embd = ops.shape_list(h)[-1]
    n_seq = ops.shape_list(X)[0]
    m = M[:, 1:]
    idx = tf.where(tf.not_equal(m, 0))  # [N_real, 2]: (sequence, position)
    lm_h = tf.gather_nd(h[:, :-1], idx)  # [N_real, n_embd]
    labels = tf.gather_nd(X[:, 1:, 0], idx)
    lm_logits = ops.to_dtype(tf.matmul(lm_h, ops.to_dtype(we, lm_h.dtype), transpose_b=True), tf.float32)
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(logits=lm_logits, labels=labels)
    seq = tf.cast(idx[:, 0], tf.int32)
    total = tf.math.unsorted_segment_sum(xent * tf.gather_nd(m, idx), seq, n_seq)
    return total / tf.reduce_sum(m, 1)


def train_loss(clf_losses, lm_losses, lm_coef):
    """mean(clf) + lm_coef * mean(lm); the LM term only when lm_coef > 0, as the original."""
    loss = tf.reduce_mean(clf_losses)
    if lm_coef > 0:
        loss = loss + lm_coef * tf.reduce_mean(lm_losses)
    return loss
