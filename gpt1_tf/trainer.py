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


def trim_to_longest(X, M):
    """Drop the columns past the longest real sequence of the batch.

    Positions come from X[..., 1] and padded positions never influence a real one (causal mask,
    masked LM loss, classifier at `_classify_`), so every output is unchanged.
    """
    T = max(int(np.max(np.sum(M, axis=-1))), 2)
    return X[:, :, :T], M[:, :, :T]


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
                 packed=True, lm_head="masked", jit_apply=None, malloc_tuning=True, exact=False):
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
        `malloc_tuning` calls `tune_malloc` (bounded RSS on glibc).
        """
        if exact:
            trim, packed, lm_head, jit_apply, jit_compile = False, False, "full", False, False
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
        self._grads_fn = tf.function(self._grads, input_signature=[x_spec, m_spec, y_spec, seed_spec],
                                     jit_compile=jit_compile or None)
        self._apply_fn = tf.function(self._apply, jit_compile=jit_apply or None)
        self._eval_fn = tf.function(self._eval, input_signature=[x_spec, m_spec, y_spec],
                                    jit_compile=jit_compile or None)

    # --- training -------------------------------------------------------------------------------
    def _grads(self, X, M, Y, step_seed):
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
            # tf.gradients, not a GradientTape: it names the gradient ops as TF1 did, and Grappler
            # orders the inputs of commutative sums (AddN) by name, so the sums of the layer-norm
            # and gelu gradients run in the original's order, bit for bit
            grads = tf.gradients(loss, self.params)
            grads = [tf.convert_to_tensor(g) for g in grads]  # dense, as the original's `we` gradient
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
            X, M = trim_to_longest(X, M)
        step_seed = np.array([self.seed, n_update], dtype=np.int64)
        return self._grads_fn(X, M, Y, step_seed)

    def apply_gradients(self, grads):
        self._apply_fn(grads)

    def train_step(self, X, M, Y, n_update):
        """One update on a global batch; returns (mean clf loss, gradient global norm)."""
        grads, clf_losses, norm = self.compute_gradients(X, M, Y, n_update)
        self.apply_gradients(grads)
        return float(tf.reduce_mean(clf_losses)), float(norm)

    # --- evaluation -----------------------------------------------------------------------------
    def _eval(self, X, M, Y):
        logits, clf_losses, _ = self.model(X, M, Y, training=False, compute_lm=False, packed=self.packed)
        return logits, clf_losses

    def eval_batch(self, X, M, Y=None):
        """clf logits [B, 2] and (with Y) clf losses [B] of a batch, no dropout, no LM head."""
        if self.trim:
            X, M = trim_to_longest(X, M)
        y = np.zeros(len(X), np.int32) if Y is None else Y
        logits, losses = self._eval_fn(X, M, y)
        return logits.numpy(), (None if Y is None else losses.numpy())

    @property
    def n_updates(self):
        return int(self.optimizer.iterations.numpy())
