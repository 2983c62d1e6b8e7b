"""The original Adam with the decoupled weight-decay fix, and its three learning-rate schedules.

Keras' Adam/AdamW do different arithmetic (AdamW decays by the raw lr, before the step; Adam has
no schedule on the bias-corrected rate), so this is the original's update written as a
`keras.optimizers.Optimizer`:

    t   = updates so far + 1
    lrt = lr * sqrt(1 - b2^t) / (1 - b1^t) * schedule(t / t_total)
    m   = b1*m + (1-b1)*g;   v = b2*v + (1-b2)*g*g
    p  -= lrt * (m / (sqrt(v) + e) + l2*p)      (l2 > 0 and (rank(p) > 1 or vector_l2))
    p  -= lrt * m / (sqrt(v) + e)               (otherwise)

Gradients are clipped together by global norm (tf.clip_by_global_norm) when max_grad_norm > 0.
`apply` must run in cross-replica context on gradients already averaged across towers: the
original clipped the tower average, not each tower (Keras 3 optimizers would clip inside each
replica, before the cross-replica sum).
"""
import dataclasses
import math

import keras
import tensorflow as tf

from gpt1_tf.network.config import LR_SCHEDULES, OptConfig


def warmup_cosine(x, warmup=0.002):
    s = tf.cast(x <= warmup, tf.float32)
    return s * (x / warmup) + (1 - s) * (0.5 * (1 + tf.cos(math.pi * x)))


def warmup_constant(x, warmup=0.002):
    s = tf.cast(x <= warmup, tf.float32)
    return s * (x / warmup) + (1 - s) * 1


def warmup_linear(x, warmup=0.002):
    s = tf.cast(x <= warmup, tf.float32)
    return (s * (x / warmup) + (1 - s)) * (1 - x)


lr_schedules = {name: globals()[name] for name in LR_SCHEDULES}  # the choices are config's


class OpenAIAdam(keras.optimizers.Optimizer):
    """The original `adam(params, grads, lr, schedule, t_total, ...)` as a Keras 3 optimizer.

    Takes its settings from one `OptConfig` (the original's defaults); `cfg.lr_schedule` names
    one of `lr_schedules`.
    """

    def __init__(self, cfg=None, *, name="adam", **kwargs):
        cfg = cfg or OptConfig()
        super().__init__(learning_rate=cfg.lr, name=name, **kwargs)
        self.cfg = cfg
        self.lr, self.schedule, self.warmup, self.t_total = cfg.lr, cfg.lr_schedule, cfg.lr_warmup, cfg.t_total
        self.b1, self.b2, self.e, self.l2, self.vector_l2 = cfg.b1, cfg.b2, cfg.e, cfg.l2, cfg.vector_l2
        self.max_grad_norm = cfg.max_grad_norm

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])

    def scheduled_lr(self):
        """lrt of the coming update (t = iterations + 1), in the original's float32 arithmetic."""
        tt = tf.cast(self.iterations, tf.float32) + 1
        lrt = self.lr * tf.sqrt(1 - tf.pow(tf.constant(self.b2, tf.float32), tt)) / (
            1 - tf.pow(tf.constant(self.b1, tf.float32), tt))
        # the original evaluated the schedule at the incremented t (its golden outputs agree)
        return lrt * lr_schedules[self.schedule](tt / self.t_total, warmup=self.warmup)

    def scheduled_rate(self):
        """The schedule's learning rate of the coming update, lr * schedule(t / t_total): what a log calls the
        learning rate. `scheduled_lr` is the step size Adam takes, this times its bias correction."""
        tt = tf.cast(self.iterations, tf.float32) + 1
        return self.lr * lr_schedules[self.schedule](tt / self.t_total, warmup=self.warmup)

    def apply(self, grads, trainable_variables=None, global_norm=None):
        """Clip `grads` by their global norm (`global_norm` when the caller has it: one pass fewer), then update."""
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.max_grad_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.max_grad_norm, use_norm=global_norm)
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        del learning_rate  # the schedule depends on t, computed here as the original did
        i = self._get_variable_index(variable)
        m, v = self._m[i], self._v[i]
        g = tf.cast(gradient, variable.dtype)
        lrt = self.scheduled_lr()
        mt = self.b1 * m + (1 - self.b1) * g
        vt = self.b2 * v + (1 - self.b2) * g * g
        if (len(variable.shape) > 1 or self.vector_l2) and self.l2 > 0:
            pt = variable - lrt * (mt / (tf.sqrt(vt) + self.e) + self.l2 * variable)
        else:
            pt = variable - lrt * (mt / (tf.sqrt(vt) + self.e))
        self.assign(m, mt)
        self.assign(v, vt)
        self.assign(variable, pt)

    def get_config(self):
        config = super().get_config()
        config.pop("learning_rate", None)
        return {**config, **dataclasses.asdict(self.cfg)}

    @classmethod
    def from_config(cls, config):
        fields = {f.name for f in dataclasses.fields(OptConfig)}
        cfg = OptConfig(**{k: v for k, v in config.items() if k in fields})
        return cls(cfg, name=config.get("name", "adam"))
