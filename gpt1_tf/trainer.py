"""Tower training of GPT-1 with tf.distribute, as the original `mgpu_train` did.

Each tower (replica) takes its n_batch slice of the global batch, computes
mean(clf) + lm_coef * mean(lm) and its gradients; gradients are averaged across towers; then, in
cross-replica context, clipped by global norm and applied once (`OpenAIAdam.apply`). Clipping
per replica, as Keras does inside `strategy.run`, would not be the original's arithmetic.
"""
import ctypes
import ctypes.util

import numpy as np
import tensorflow as tf

from gpt1_tf.model import TransformerModel, train_loss
from gpt1_tf.opt import OpenAIAdam


def trim_to_longest(X, M, multiple=1):
    """Drop the columns past the longest real sequence of the batch (rounded up to `multiple`).

    Positions come from X[..., 1] and padded positions never influence a real one (causal mask,
    masked LM loss, classifier at `_classify_`), so every output is unchanged. A `multiple` > 1
    bounds the number of distinct shapes (one XLA compilation each).
    """
    T = max(int(np.max(np.sum(M, axis=-1))), 2)
    T = min(-(-T // multiple) * multiple, X.shape[2])
    return X[:, :, :T], M[:, :, :T]


class DynamicLossScale(tf.Module):
    """Loss scaling for float16 training, the usual dynamic scheme.

    The loss is multiplied by `scale` before differentiation and the gradients divided by it
    (in float32), so that small float16 gradients do not flush to zero. A non-finite gradient is
    an overflow: the update is skipped and the scale halved (not below `minimum`); after
    `growth_interval` finite updates in a row the scale doubles. A tf.Module: checkpointed with
    the run, so a resumed run goes on with its scale.
    """

    def __init__(self, initial=2.0 ** 15, growth_interval=2000, minimum=1.0):
        super().__init__(name="loss_scale")
        self.scale = tf.Variable(initial, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.growth_interval, self.minimum = growth_interval, minimum

    def value(self):
        return float(self.scale.numpy())

    def overflow(self):
        """Record a skipped update; returns False when the scale is already at its minimum."""
        self.good_steps.assign(0)
        if self.value() <= self.minimum:
            return False
        self.scale.assign(max(self.value() / 2, self.minimum))
        return True

    def finite(self):
        """Record an applied update."""
        self.good_steps.assign_add(1)
        if int(self.good_steps.numpy()) >= self.growth_interval:
            self.scale.assign(self.value() * 2)
            self.good_steps.assign(0)


def tune_malloc(mmap_threshold=1 << 20, arena_max=2):
    """Keep glibc's heap from growing step after step (Linux only; a no-op elsewhere).

    TensorFlow's CPU tensors come from malloc. glibc raises its mmap threshold after each large
    free, so the step's 2-10 MB activation and gradient buffers end up in per-thread heaps that
    fragment: full-size training grew ~0.6 GB per update here (BENCHMARKS.md). A fixed threshold
    returns every buffer over 1 MB to the OS when freed; two arenas bound the per-thread heaps.
    Process-wide; returns whether it took effect.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold, m_arena_max = -3, -8  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)) and bool(libc.mallopt(m_arena_max, arena_max))
    except (OSError, AttributeError):
        return False


class Trainer:
    """The model, the optimizer and the compiled train/eval steps on a strategy's towers."""

    def __init__(self, model_cfg, opt_cfg, *, strategy, lm_coef, seed=42, trim=True, jit_compile=False,
                 packed=True, lm_head="masked", jit_apply=None, malloc_tuning=True, exact=False,
                 pool_only_eval=True):
        """`trim`, `packed` and `lm_head="masked"` change no output, only the work done (BENCHMARKS.md);
        they change float summation orders, so parameters agree with the original's to ~1e-6, except
        those whose gradient is exactly zero in exact arithmetic (clf/b; with lm_coef 0 also the last
        block's ln_2/b), which move by rounding noise.
        `exact=True` (= trim=False, packed=False, lm_head="full", no XLA) is the original's
        computation bit for bit: tf.gradients inside tf.function gives the gradient ops TF1's names,
        and Grappler sums commutative AddN inputs in name order, so every sum runs in the original's
        order (tests/test_train.py replays the golden fixtures with zero difference). `jit_compile`
        compiles the gradient and eval steps with XLA (one compilation per batch shape);
        `jit_apply` compiles the optimizer update with XLA: one fused kernel per variable, ~3x faster
        and ~1.2 GB less transient memory at full size (None: on with one tower, where it is tested).
        `malloc_tuning` calls `tune_malloc` (bounded RSS on glibc). `pool_only_eval` runs the last
        block of an evaluation at the `_classify_` positions only (same logits, fewer FLOPs).
        With `jit_compile`, shapes must be static: batches are trimmed to a multiple of 8 and the
        dense layers and LM head run on the padded layout (packing's gathers have data-dependent
        shapes, which XLA would pad to their bounds anyway); that is the GPU path.
        `model_cfg.compute_dtype` "bfloat16" or "float16" is mixed precision (`ModelConfig`); float16
        adds dynamic loss scaling (`DynamicLossScale`, `self.loss_scale`; None otherwise).
        """
        if exact:
            trim, packed, lm_head, jit_apply, jit_compile = False, False, "full", False, False
            pool_only_eval = False
            if model_cfg.compute_dtype != "float32":
                raise ValueError("exact=True is the original's float32 arithmetic: no mixed precision")
        if jit_compile:
            packed, lm_head = False, "full"
        self.trim_multiple = 8 if jit_compile else 1
        self.pool_only_eval = pool_only_eval
        if malloc_tuning:
            tune_malloc()
        if jit_apply is None:
            jit_apply = strategy.num_replicas_in_sync == 1
        if lm_head not in ("masked", "full"):
            raise ValueError(f"lm_head must be 'masked' or 'full', got {lm_head!r}")
        self.cfg, self.opt_cfg = model_cfg, opt_cfg
        self.strategy, self.lm_coef, self.seed, self.trim = strategy, lm_coef, seed, trim
        self.packed, self.lm_head = packed, lm_head
        self.n_towers = strategy.num_replicas_in_sync
        self.loss_scale = DynamicLossScale() if model_cfg.compute_dtype == "float16" else None
        with strategy.scope():
            self.model = TransformerModel(model_cfg)
            self.params = self.model.params_in_order()
            self.optimizer = OpenAIAdam.from_config_objects(opt_cfg)
            self.optimizer.build(self.params)
        # untrimmed batches have a static length: Grappler then folds constants as in the original graph
        T = None if trim else model_cfg.n_ctx
        x_spec = tf.TensorSpec([None, 2, T, 2], tf.int32)
        m_spec = tf.TensorSpec([None, 2, T], tf.float32)
        y_spec = tf.TensorSpec([None], tf.int32)
        seed_spec = tf.TensorSpec([2], tf.int64)
        scale_spec = tf.TensorSpec([], tf.float32)
        self._grads_fn = tf.function(self._grads, input_signature=[x_spec, m_spec, y_spec, seed_spec, scale_spec],
                                     jit_compile=jit_compile or None)
        self._apply_fn = tf.function(self._apply, jit_compile=jit_apply or None)
        self._eval_fn = tf.function(self._eval, input_signature=[x_spec, m_spec, y_spec],
                                    jit_compile=jit_compile or None)

    # --- training -------------------------------------------------------------------------------
    def _grads(self, X, M, Y, step_seed, loss_scale):
        n = self.n_towers
        use_dropout = any(p > 0 for p in (self.cfg.embd_pdrop, self.cfg.attn_pdrop,
                                          self.cfg.resid_pdrop, self.cfg.clf_pdrop))

        def tower(X, M, Y):
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            nb = tf.shape(X)[0] // n  # the original tf.split(x, n_gpu, 0)
            X, M, Y = X[r * nb:(r + 1) * nb], M[r * nb:(r + 1) * nb], Y[r * nb:(r + 1) * nb]
            seed = tf.random.experimental.stateless_fold_in(step_seed, r) if use_dropout else None
            _, clf_losses, lm_losses = self.model(X, M, Y, training=True, seed=seed,
                                                  compute_lm=self.lm_coef > 0, lm_head=self.lm_head,
                                                  packed=self.packed)
            loss = train_loss(clf_losses, lm_losses, self.lm_coef)
            if self.loss_scale is not None:
                loss = loss * loss_scale
            # tf.gradients, not a GradientTape: it names the gradient ops as TF1 did, and Grappler
            # orders the inputs of commutative sums (AddN) by name, so the sums of the layer-norm
            # and gelu gradients run in the original's order, bit for bit
            grads = tf.gradients(loss, self.params)
            grads = [tf.convert_to_tensor(g) for g in grads]  # dense, as the original's `we` gradient
            if self.loss_scale is not None:
                grads = [g / loss_scale for g in grads]  # float32, as the parameters
            return grads, clf_losses

        per_tower_grads, per_tower_clf = self.strategy.run(tower, args=(X, M, Y))
        # average the towers' gradients (the original average_grads), into cross-replica context
        grads = [self.strategy.reduce(tf.distribute.ReduceOp.MEAN, g, axis=None) for g in per_tower_grads]
        clf_losses = self.strategy.gather(per_tower_clf, axis=0)
        return grads, clf_losses, tf.linalg.global_norm(grads)

    def _apply(self, grads):
        self.optimizer.apply(grads, self.params)  # clips by global norm, then the original Adam

    def compute_gradients(self, X, M, Y, n_update):
        """Tower-averaged gradients of one global batch; also clf losses [B] and the global norm."""
        if X.shape[0] % self.n_towers:
            raise ValueError(f"batch of {X.shape[0]} does not split into {self.n_towers} towers")
        if self.trim:
            X, M = trim_to_longest(X, M, self.trim_multiple)
        step_seed = np.array([self.seed, n_update], dtype=np.int64)
        scale = np.float32(1 if self.loss_scale is None else self.loss_scale.value())
        return self._grads_fn(X, M, Y, step_seed, scale)

    def overflowed(self, clf_losses, norm):
        """Under loss scaling: whether these gradients overflowed (finite losses, non-finite norm).

        If so the scale is halved and the caller skips the update. False without loss scaling, and
        when the scale is already at its minimum: a non-finite gradient is then a real divergence.
        """
        if self.loss_scale is None or np.isfinite(float(norm)) or not np.all(np.isfinite(clf_losses)):
            return False
        return self.loss_scale.overflow()

    def apply_gradients(self, grads):
        self._apply_fn(grads)
        if self.loss_scale is not None:
            self.loss_scale.finite()

    def train_step(self, X, M, Y, n_update):
        """One update on a global batch; returns (mean clf loss, gradient global norm).

        Gradients that overflowed under float16 loss scaling are not applied (see `overflowed`).
        """
        grads, clf_losses, norm = self.compute_gradients(X, M, Y, n_update)
        if not self.overflowed(clf_losses, norm):
            self.apply_gradients(grads)
        return float(tf.reduce_mean(clf_losses)), float(norm)

    # --- evaluation -----------------------------------------------------------------------------
    def _eval(self, X, M, Y):
        logits, clf_losses, _ = self.model(X, M, Y, training=False, compute_lm=False, packed=self.packed,
                                           pool_only=self.pool_only_eval)
        return logits, clf_losses

    def eval_batch(self, X, M, Y=None):
        """clf logits [B, 2] and (with Y) clf losses [B] of a batch, no dropout, no LM head."""
        if self.trim:
            X, M = trim_to_longest(X, M, self.trim_multiple)
        y = np.zeros(len(X), np.int32) if Y is None else Y
        logits, losses = self._eval_fn(X, M, y)
        return logits.numpy(), (None if Y is None else losses.numpy())

    @property
    def n_updates(self):
        return int(self.optimizer.iterations.numpy())
