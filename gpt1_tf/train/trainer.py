"""Tower training of GPT-1 with tf.distribute, as the original `mgpu_train` did.

Each tower takes its n_batch slice of the global batch, computes mean(clf) + lm_coef * mean(lm)
and its gradients; gradients are averaged across towers (summed in tower order, then divided, as
the original's `average_grads`); then, in cross-replica context, clipped by global norm and
applied once (`OpenAIAdam.apply`). Clipping per replica, as Keras does inside `strategy.run`,
would not be the original's arithmetic. Towers are the strategy's replicas (one per GPU) or, with
fewer replicas than towers, run in sequence on each replica's device (`devices.setup_towers`).

`Trainer.train_step` is the one step path: the training loop and the tests both run it.
"""
import collections
import math

import numpy as np
import tensorflow as tf

from gpt1_tf.network.config import StepConfig, check_compatible
from gpt1_tf.errors import ConfigError
from gpt1_tf.network.heads import train_loss
from gpt1_tf.train.core import TrainerCore

# what became of a step's gradients (StepResult.status)
APPLIED, NONFINITE, LOSS_SCALE_OVERFLOW = "applied", "nonfinite", "loss_scale_overflow"

StepResult = collections.namedtuple("StepResult", "status loss norm lr")
StepResult.__doc__ = """One `train_step`: `status` (APPLIED, NONFINITE or LOSS_SCALE_OVERFLOW), the mean clf
loss, the gradients' global norm (before clipping) and, when applied, the update's learning rate as scheduled
(lr * schedule(t / t_total); Adam's step size is this times its bias correction, `OpenAIAdam.scheduled_lr`)."""


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

    Why not `keras.optimizers.LossScaleOptimizer` (Keras 3.15), which has the same halving and
    doubling: it decides inside its `apply`, in a graph `cond`, and reports nothing, so the step
    could not say which updates were skipped (the log's `loss_scale_overflow` records, train.py's
    count of them); it has no minimum, so a run whose loss itself diverged (NaN at any scale)
    would halve its scale forever instead of stopping under --nan_policy stop (`overflow` returns
    False at the minimum, and the step reports NONFINITE); and its scale would live in the
    optimizer's variables, so the checkpoints' `loss_scale` part, and every float16 checkpoint
    written so far, would no longer restore.
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

    def overflowed(self, losses, norm):
        """Whether gradients of finite `losses` with a non-finite global `norm` overflowed; if so, halve (`overflow`).

        False when the losses are not finite, or the scale is at its minimum: a real divergence.
        """
        if np.isfinite(float(norm)) or not np.all(np.isfinite(losses)):
            return False
        return self.overflow()

    def finite(self):
        """Record an applied update."""
        self.good_steps.assign_add(1)
        if int(self.good_steps.numpy()) >= self.growth_interval:
            self.scale.assign(self.value() * 2)
            self.good_steps.assign(0)


def tuned_params(model, tuning):
    """The variables a Trainer trains: `tuning` (a `TuningConfig`, None: as the model is) applied, then
    `model.trained_in_order()`: every parameter in the original order unless some are frozen (`network.lora`)."""
    if tuning is not None:
        from gpt1_tf.network import lora
        lora.adapt(model.transformer, tuning)
    return model.trained_in_order()


class Trainer(TrainerCore):
    """The compiled train/eval steps on a strategy's towers, over the trainer core (model, Adam, the update).

    `step_cfg` (`StepConfig`) says how the steps compute; its default path changes no output,
    only the work done, but float sums run in another order, so parameters agree with the
    original's to ~1e-6, except those whose true gradient is exactly zero (clf/b; with lm_coef 0
    also the last block's ln_2/b), which Adam moves by amplified rounding noise, the original's
    too. `StepConfig(exact=True)` computes as the original's graph did: tf.gradients inside
    tf.function gives the gradient ops TF1's names, and Grappler sums commutative AddN inputs in
    name order, so sums run in the original's order. `model_cfg.compute_dtype` "bfloat16" or
    "float16" is mixed precision; float16 adds dynamic loss scaling (`self.loss_scale`).
    `model`: a `TransformerModel` of `model_cfg` built under `strategy` to train (a task model's,
    `gpt1_tf.models.tasks`); None: the Trainer builds its own, as train.py's. `tuning` (a
    `TuningConfig`): LoRA or partial fine-tuning applied to the model (`network.lora.adapt`); the
    step then differentiates and updates only the variables that train (`self.params`).
    """

    def __init__(self, model_cfg, opt_cfg, step_cfg=None, *, strategy, lm_coef, seed=42, n_towers=None, model=None,
                 tuning=None):
        step_cfg = step_cfg or StepConfig()
        check_compatible(model_cfg, step_cfg)
        replicas = strategy.num_replicas_in_sync
        self.n_towers = n_towers or replicas
        if self.n_towers % replicas:
            raise ConfigError(f"{self.n_towers} towers do not split evenly over {replicas} devices")
        fused_apply = replicas == 1 if step_cfg.fused_apply is None else step_cfg.fused_apply
        if fused_apply and replicas > 1:
            # XLA compiles the update for one device; mirrored variables live on several
            raise ConfigError(f"fused_apply (the XLA-compiled Adam update) runs on one device, not {replicas}")
        super().__init__(model_cfg, opt_cfg, strategy, seed, trained=lambda model: tuned_params(model, tuning),
                         jit_apply=fused_apply or None, model=model)
        self.step_cfg, self.lm_coef = step_cfg, lm_coef
        self.loss_scale = DynamicLossScale() if model_cfg.compute_dtype == "float16" else None
        # untrimmed batches have a static length: Grappler then folds constants as in the original graph
        T = None if step_cfg.trim else model_cfg.n_ctx
        # [examples, K sequences, T, 2]: K is the task's (1, 2, or the number of choices)
        x_spec, m_spec = tf.TensorSpec([None, None, T, 2], tf.int32), tf.TensorSpec([None, None, T], tf.float32)
        self.y_dtype = np.float32 if model_cfg.regression else np.int32
        y_spec = tf.TensorSpec([None], tf.as_dtype(self.y_dtype))
        scalar, seed_spec = tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int64)
        xla = step_cfg.xla or None
        # under XLA each tower's loss and gradients compile on that tower's device (XLA cannot
        # compile a function that reads variables on several devices)
        self._tower_fn = tf.function(self._tower_grads, jit_compile=True) if step_cfg.xla else self._tower_grads
        first_spec = tf.TensorSpec([], tf.int32)
        self._grads_fn = tf.function(self._grads, input_signature=[x_spec, m_spec, y_spec, seed_spec, first_spec, scalar])
        self._add_fn = tf.function(lambda total, grads: [a + g for a, g in zip(total, grads)])
        self._mean_fn = tf.function(self._mean)
        self._eval_fn = tf.function(self._eval, input_signature=[x_spec, m_spec, y_spec], jit_compile=xla)

    # --- training -------------------------------------------------------------------------------
    def _tower_grads(self, X, M, Y, seed, loss_scale):
        """One tower's clf losses and the gradients of its loss (unscaled)."""
        step = self.step_cfg
        _, clf_losses, lm_losses = self.model(X, M, Y, training=True, seed=seed, compute_lm=self.lm_coef > 0,
                                              lm_head=step.lm_head, packed=step.packed,
                                              recompute=step.recompute)
        loss = train_loss(clf_losses, lm_losses, self.lm_coef)
        if self.loss_scale is not None:
            loss = loss * loss_scale
        # tf.gradients, not a GradientTape: it names the gradient ops as TF1 did, and Grappler
        # orders the inputs of commutative sums (AddN) by name, so the sums of the layer-norm
        # and gelu gradients run in the original's order
        grads = [tf.convert_to_tensor(g) for g in tf.gradients(loss, self.params)]  # dense, as the original's
        if self.loss_scale is not None:
            grads = [g / loss_scale for g in grads]  # float32, as the parameters
        return grads, clf_losses

    def _grads(self, X, M, Y, step_seed, first_tower, loss_scale):
        """The towers first_tower.. of one call, one per replica: the sum of their gradients, their clf losses."""
        replicas = self.strategy.num_replicas_in_sync

        def tower(X, M, Y):
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            nb = tf.shape(X)[0] // replicas  # the original tf.split(x, n_gpu, 0)
            X, M, Y = X[r * nb:(r + 1) * nb], M[r * nb:(r + 1) * nb], Y[r * nb:(r + 1) * nb]
            t = first_tower + r  # the tower's place in the global batch: its dropout masks
            seed = tf.random.experimental.stateless_fold_in(step_seed, t) if self.cfg.has_dropout else None
            return self._tower_fn(X, M, Y, seed, loss_scale)

        per_tower_grads, per_tower_clf = self.strategy.run(tower, args=(X, M, Y))
        grads = [self.strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in per_tower_grads]
        return grads, self.strategy.gather(per_tower_clf, axis=0)

    def _mean(self, total):
        """The mean over the towers of their summed gradients (the original average_grads), its global norm."""
        grads = [g / self.n_towers for g in total] if self.n_towers > 1 else total
        return grads, tf.linalg.global_norm(grads)

    def compute_gradients(self, X, M, Y, n_update):
        """Tower-averaged gradients of one global batch; also clf losses [B] and the global norm.

        With fewer replicas than towers, the towers run in sequence, a call each (its activations
        are freed before the next starts), their gradients summed in tower order as the
        original's `average_grads` did: ((g0 + g1) + g2) + ..., then divided by the number of towers.
        """
        if X.shape[0] % self.n_towers:
            raise ValueError(f"batch of {X.shape[0]} does not split into {self.n_towers} towers")
        if self.step_cfg.trim:
            X, M = trim_to_longest(X, M, self.step_cfg.trim_multiple)
        step_seed = np.array([self.seed, n_update], dtype=np.int64)
        scale = np.float32(1 if self.loss_scale is None else self.loss_scale.value())
        replicas = self.strategy.num_replicas_in_sync
        calls = self.n_towers // replicas
        nb = X.shape[0] // calls
        total, clf_losses = None, []
        for c in range(calls):
            at = slice(c * nb, (c + 1) * nb)
            grads, clf = self._grads_fn(X[at], M[at], Y[at], step_seed, np.int32(c * replicas), scale)
            total = grads if total is None else self._add_fn(total, grads)
            del grads  # not alive during the next tower
            clf_losses.append(clf)
        grads, norm = self._mean_fn(total)
        return grads, (clf_losses[0] if calls == 1 else tf.concat(clf_losses, 0)), norm

    def overflowed(self, clf_losses, norm):
        """Under loss scaling: whether these gradients overflowed (finite losses, non-finite norm).

        If so the scale is halved and the caller skips the update. False without loss scaling, and
        when the scale is already at its minimum: a non-finite gradient is then a real divergence.
        """
        return self.loss_scale is not None and self.loss_scale.overflowed(clf_losses, norm)

    def apply_gradients(self, grads, norm):
        """The update from `compute_gradients`' gradients and their global norm (clipping reuses it)."""
        self._apply_fn(grads, norm)
        if self.loss_scale is not None:
            self.loss_scale.finite()

    def train_step(self, X, M, Y, n_update):
        """One update on a global batch (the `n_update`-th, 0-based: it seeds the dropout masks).

        Gradients that overflowed under float16 loss scaling, or whose loss or norm is not finite,
        are not applied: the result's status says so, and the caller decides (skip or stop).
        """
        grads, clf_losses, norm = self.compute_gradients(X, M, Y, n_update)
        loss, norm_value = float(tf.reduce_mean(clf_losses)), float(norm)
        if self.overflowed(clf_losses, norm):
            return StepResult(LOSS_SCALE_OVERFLOW, loss, norm_value, None)
        if not (math.isfinite(loss) and math.isfinite(norm_value)):
            return StepResult(NONFINITE, loss, norm_value, None)
        lr = self.scheduled_rate()  # this update's (read before it counts)
        self.apply_gradients(grads, norm)
        return StepResult(APPLIED, loss, norm_value, lr)

    # --- evaluation -----------------------------------------------------------------------------
    def _eval(self, X, M, Y):
        logits, clf_losses, _ = self.model(X, M, Y, training=False, compute_lm=False, packed=self.step_cfg.packed,
                                           pool_only=self.step_cfg.pool_only_eval)
        return logits, clf_losses

    def eval_batch(self, X, M, Y=None):
        """clf logits [B, K or n_clf_out] and (with Y) clf losses [B] of a batch, no dropout, no LM head.

        Towers in sequence evaluate in sequence too, a tower's share of the batch at a time (the
        original's `mgpu_predict` split the batch over its towers): one tower's activations.
        """
        if self.step_cfg.trim:
            X, M = trim_to_longest(X, M, self.step_cfg.trim_multiple)
        y = np.zeros(len(X), self.y_dtype) if Y is None else Y
        calls = min(self.n_towers // self.strategy.num_replicas_in_sync, len(X))
        parts = [self._eval_fn(*part) for part in zip(*(np.array_split(a, calls) for a in (X, M, y)))]
        logits, losses = (np.concatenate([p[i].numpy() for p in parts]) for i in (0, 1))
        return logits, (None if Y is None else losses)
