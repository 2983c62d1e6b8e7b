"""The GPT-1 network: the shared body (`Transformer`) and the model with its two heads.

`TransformerModel(cfg)(X, M, Y)` returns what the original `model(X, M, Y)` returned:
clf_logits [B, 2], clf_losses [B], lm_losses [2B] for Story Cloze; for any task format, X holds
K sequences per example ([B, K, T, 2]) and the logits are those of the task's head. The body knows
nothing of heads; the heads (`gpt1_tf.network.heads`) read its hidden states and its embedding table.
"""
import dataclasses

import keras
import tensorflow as tf

from gpt1_tf.network import arrays, lora, ops, packing, tokens
from gpt1_tf.errors import ConfigError
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.network.heads import LM_HEADS, make_head, pooled
from gpt1_tf.network.layers import Block, normal_init, site_seed

# dropout sites (folded into the step seed): embedding table, classifier (heads.SITE_CLF), each block
_SITE_EMBD, _SITE_BLOCK0 = 0, 2


def with_positions(ids, cfg):
    """ids int [B, T] -> X [B, T, 2]: (token id, table row of position t) pairs, as `gpt1_tf.network.tokens` lays them."""
    B, T = tf.shape(ids)[0], tf.shape(ids)[1]
    positions = tokens.position_id(cfg.n_vocab, tf.range(T, dtype=ids.dtype), cfg.n_special)  # [T]
    return tf.stack([ids, tf.broadcast_to(positions[None, :], [B, T])], axis=-1)  # [B, T, 2]


def _config_dict(cfg):
    return {"cfg": dataclasses.asdict(cfg)}


@keras.saving.register_keras_serializable("gpt1_tf")
class Transformer(keras.layers.Layer):
    """The body: one embedding table `we` [n_vocab + n_special + n_ctx, n_embd], n_layer post-norm blocks.

    `hidden(X, ...)` maps X int [S, T, 2] (token ids, position ids), T <= n_ctx, to hidden states
    [S, T, n_embd]. Positions come from X[..., 1], so a batch trimmed to its longest sequence gives
    the same states as the padded one. `hidden_with_cache` is the same forward for decoding, one
    new position at a time against a key/value cache.
    """

    def __init__(self, cfg, **kwargs):
        kwargs.setdefault("name", "transformer")
        super().__init__(**kwargs)
        self.cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig(**cfg)
        self.blocks = [Block(self.cfg, name=arrays.layer_scope(i)) for i in range(self.cfg.n_layer)]
        self.special = None  # a frozen table's trained special-token rows (`gpt1_tf.network.lora`)
        self.tuning = None  # the `TuningConfig` that `lora.adapt` applied (None: nothing frozen)
        for i, block in enumerate(self.blocks):
            # also as attributes: TF checkpoints then key them .../h0/..., as the original's scopes
            setattr(self, arrays.layer_scope(i), block)

    def build(self, input_shape=None):
        self.create_weights()
        self.built = True

    def create_weights(self):
        """`we`, then each block's weights, under the caller's name scope.

        Keras wraps `build` in the layer's own scope; `TransformerModel.build` calls this instead,
        so the variables read `model/we`, `model/h0/attn/c_attn/w`, ... as the original's.
        """
        cfg = self.cfg
        # a Variable assigned to the layer is tracked as its weight (add_weight would open the scope)
        self.we = keras.Variable(normal_init()((cfg.n_table, cfg.n_embd)), name="we", dtype="float32")
        for block in self.blocks:
            block.build((None, None, cfg.n_embd))

    def params_in_order(self):
        """we; per layer its block's arrays, in the original order (`gpt1_tf.network.arrays`)."""
        return [arrays.walk(self, a.path) for a in arrays.MODEL_FIRST] + [
            p for block in self.blocks for p in arrays.layer_params(block)]

    def merged_in_order(self):
        """`params_in_order` as the body computes with them: LoRA and the special rows merged (`lora.merged_in_order`)."""
        return lora.merged_in_order(self)

    def add_special_rows(self):
        """The special-token rows as a trained variable of their own, `special` (the table `we` frozen: `lora.adapt`)."""
        cfg = self.cfg
        self._tracker.unlock()  # a built layer's state is locked (Keras's Dense.enable_lora unlocks it too)
        self.special = keras.Variable(self.we[cfg.n_vocab:cfg.n_vocab + cfg.n_special], name="special",
                                      dtype="float32")
        self._tracker.lock()

    def save_own_variables(self, store):
        """A saved model stores the table with its special rows in place: it loads into a body without them apart.

        With `special`, also the table and the rows apart: a body with them loads both back exactly.
        """
        store["0"] = tf.convert_to_tensor(self.table())
        if self.special is not None:
            store["1"], store["2"] = self.we, self.special

    def load_own_variables(self, store):
        if self.special is not None and len(store.keys()) == 3:
            self.we.assign(store["1"])
            self.special.assign(store["2"])
            return
        self.we.assign(store["0"])
        self.special_rows_from_table()

    def set_special_rows(self, rows):
        """The special-token rows [n_special, n_embd] into the table (and `special`)."""
        at = tf.range(self.cfg.n_vocab, self.cfg.n_vocab + self.cfg.n_special)[:, None]
        self.we.assign(tf.tensor_scatter_nd_update(self.we, at, tf.convert_to_tensor(rows, tf.float32)))
        self.special_rows_from_table()

    def special_rows_from_table(self):
        """`special` = the table's special rows (after the table was assigned whole); nothing without `special`."""
        if self.special is not None:
            self.special.assign(self.we[self.cfg.n_vocab:self.cfg.n_vocab + self.cfg.n_special])

    def table(self):
        """The embedding table the body computes with: `we`, with the `special` rows in place when they train apart."""
        if self.special is None:
            return self.we
        v, s = self.cfg.n_vocab, self.cfg.n_special
        return tf.concat([self.we[:v], self.special, self.we[v + s:]], 0)

    def hidden(self, X, M=None, seed=None, pool=None, packed=False, K=1, recompute=False):
        """Hidden states [S, T, n_embd] of X [S, T, 2], and the (dropped-out) table `we`.

        `seed` ([2] int) drives every dropout mask (None: no dropout). With `pool` [S] (no
        dropout), the last block runs at those positions only: h [S, n_embd]. `packed=True` (needs
        M [S, T]) runs the dense layers on the needed positions only (`gpt1_tf.network.packing`): same
        states, gradients and dropout masks, fewer FLOPs; the S sequences are examples of K each
        (consecutive), whose common prefix is computed once. `recompute`: each block's MLP
        activation recomputed in the backward pass instead of kept (`ops.recomputed`): the same
        gradients, less memory.
        """
        cfg = self.cfg
        # embedding dropout on the table itself, as the original: the tied LM head sees it too
        we = ops.dropout(self.table(), cfg.embd_pdrop, site_seed(seed, _SITE_EMBD))
        if not packed:
            h = ops.to_dtype(tf.reduce_sum(tf.gather(we, X), 2), cfg.compute_dtype)  # token + position rows
            return self._blocks(h, seed, pool, recompute=recompute), we
        # an example's K sequences share their common prefix when nothing is dropped (seed None)
        layout = packing.pack_layout(X, M, clf_token=cfg.clf_token, share_prefix=seed is None, K=K)
        h = ops.to_dtype(packing.embed(we, X, layout), cfg.compute_dtype)  # [N, n_embd]
        h = self._blocks(h, seed, pool, layout, recompute)
        return (h if pool is not None else packing.unpack(h, layout)), we

    def empty_cache(self, batch, length=None):
        """The key/value cache of `hidden_with_cache`, zeros [n_layer, 2, batch, n_head, length, d], compute dtype.

        `length`: the positions it holds (None: n_ctx). Each decoding step rewrites and reads the whole
        cache, so a cache as long as the text to make (not the model's 512) is that much less traffic.
        """
        cfg = self.cfg
        length = cfg.n_ctx if length is None else length
        return tf.zeros([cfg.n_layer, 2, batch, cfg.n_head, length, cfg.n_embd // cfg.n_head], cfg.compute_dtype)

    def hidden_with_cache(self, ids, cache, cache_update_index):
        """Hidden states [B, S, n_embd] of token ids [B, S] at positions cache_update_index.., and the updated cache.

        Decoding (no dropout): each block attends over the cached keys and values of the positions
        before (`Block` with a cache), so one new token costs one position's pass. The states equal
        `hidden`'s at those positions. S > 1 at index 0 only: the prompt, then one token a call.
        """
        cfg, we = self.cfg, self.table()
        rows = tokens.position_id(cfg.n_vocab, cache_update_index + tf.range(tf.shape(ids)[1]), cfg.n_special)
        h = ops.to_dtype(tf.gather(we, ids) + tf.gather(we, rows)[None], cfg.compute_dtype)  # token + position rows
        new = []
        for i, block in enumerate(self.blocks):
            h, kv = block(h, cache=cache[i], cache_update_index=cache_update_index)
            new.append(kv)
        return h, tf.stack(new)

    def _blocks(self, h, seed, pool, layout=None, recompute=False):
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, seed=site_seed(seed, _SITE_BLOCK0 + i), layout=layout,
                      pool=pool if i == last else None, recompute=recompute)
        return h

    def get_config(self):
        return {**super().get_config(), **_config_dict(self.cfg)}


@keras.saving.register_keras_serializable("gpt1_tf")
class TransformerModel(keras.Model):
    """GPT-1 with two heads: the tied LM head and the classifier of `cfg.task_format` (`gpt1_tf.network.heads`).

    Call with X int [B, K, T, 2] (token ids, position ids of the K sequences of each example), M
    float [B, K, T], Y [B] (int classes or choices; float scores for a regression head) or None.
    The default config is the original's: the Story Cloze classifier, K = 2 endings.
    """

    def __init__(self, cfg, transformer=None, **kwargs):
        kwargs.setdefault("name", "model")
        super().__init__(**kwargs)
        self.cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig(**cfg)
        # `transformer`: a built body to share (a task model's backbone's), its head fields aside the same config
        self._shared_body = transformer is not None
        if self._shared_body and dataclasses.replace(transformer.cfg, task_format=self.cfg.task_format,
                                                     n_classes=self.cfg.n_classes) != self.cfg:
            raise ConfigError(f"the shared body's config {transformer.cfg} is not this model's {self.cfg}")
        self.transformer = transformer if self._shared_body else Transformer(self.cfg)
        self.clf = make_head(self.cfg)
        self.build()

    def build(self, input_shape=None):
        if not self._shared_body:
            self.transformer.create_weights()
            self.transformer.built = True
        self.clf.build((None, self.cfg.n_embd))
        self.built = True

    @property
    def we(self):
        return self.transformer.we

    @property
    def blocks(self):
        return self.transformer.blocks

    def params_in_order(self):
        """Variables in the original order (`gpt1_tf.network.arrays`): we; each block's arrays; clf/w, clf/b."""
        params = self.transformer.params_in_order() + self.head_params()
        assert len(params) == self.cfg.n_params_arrays
        return params

    def head_params(self):
        return [arrays.walk(self, a.path) for a in arrays.MODEL_LAST]

    def merged_in_order(self):
        """`params_in_order` as the model computes with them (LoRA merged: `lora.merged_in_order`): best_params.jl's."""
        return self.transformer.merged_in_order() + self.head_params()

    def trained_in_order(self):
        """The variables fine-tuning trains: all of `params_in_order` unless `lora.adapt` froze some; the head always."""
        return lora.trained_in_order(self.transformer) + self.head_params()

    def call(self, X, M, Y=None, training=False, seed=None, compute_lm=True, lm_head="masked",
             packed=False, pool_only=False, recompute=False):
        """Returns (clf_logits [B, K] or [B, n_clf_out], clf_losses [B] or None, lm_losses [B*K] or None).

        `seed` ([2] int32) drives every dropout mask when `training`; without it nothing is dropped.
        `lm_head="masked"` computes LM logits only at positions the mask counts (same losses as
        "full", the original's every-position head, which is kept for reference and tests).
        `packed=True` runs the dense layers on the needed positions only (`gpt1_tf.network.packing`): same
        outputs, gradients and dropout masks, fewer FLOPs; the Trainer's default.
        `pool_only=True` (without the LM head and dropout: evaluation) runs the last block at the
        `_classify_` positions only: same outputs, ~6% fewer FLOPs. `recompute=True` recomputes
        the MLP activations in the backward pass: the same gradients, less memory.
        """
        cfg = self.cfg
        if not training:
            seed = None
        K, T = ops.shape_list(X)[1:3]
        X = tf.reshape(X, [-1, T, 2])  # [B*K, T, 2]
        M = tf.reshape(M, [-1, T])  # [B*K, T]
        pool = ops.pool_index(X, cfg.clf_token) if pool_only and not compute_lm and seed is None else None
        # the body's method, not its __call__: no extra name scope, so the gradient ops keep the
        # names that order Grappler's sums as in the original (see gpt1_tf.train.trainer)
        h, we = self.transformer.hidden(X, M, seed, pool, packed, K, recompute)

        lm_losses = LM_HEADS[lm_head](h, we, X, M) if compute_lm else None
        clf_h = h if pool is not None else pooled(h, X, cfg.clf_token)
        clf_logits = self.clf.logits(clf_h, K, seed)
        clf_losses = None if Y is None else self.clf.losses(clf_logits, Y)
        return clf_logits, clf_losses, lm_losses

    def get_config(self):
        return {**super().get_config(), **_config_dict(self.cfg)}
