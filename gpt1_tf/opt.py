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
original clipped the tower average, not each tower (see STYLE.md, the Keras 3 trap).
"""
import math

import keras
import tensorflow as tf


def warmup_cosine(x, warmup=0.002):
    s = tf.cast(x <= warmup, tf.float32)
    return s * (x / warmup) + (1 - s) * (0.5 * (1 + tf.cos(math.pi * x)))


def warmup_constant(x, warmup=0.002):
    s = tf.cast(x <= warmup, tf.float32)
    return s * (x / warmup) + (1 - s) * 1


def warmup_linear(x, warmup=0.002):
    s = tf.cast(x <= warmup, tf.float32)
    return (s * (x / warmup) + (1 - s)) * (1 - x)


lr_schedules = {
    "warmup_cosine": warmup_cosine,
    "warmup_linear": warmup_linear,
    "warmup_constant": warmup_constant,
}


class OpenAIAdam(keras.optimizers.Optimizer):
    """The original `adam(params, grads, lr, schedule, t_total, ...)` as a Keras 3 optimizer."""

    def __init__(self, *, lr=6.25e-5, schedule="warmup_linear", warmup=0.002, t_total=1,
                 b1=0.9, b2=0.999, e=1e-8, l2=0.0, vector_l2=False, max_grad_norm=-1.0,
                 name="adam", **kwargs):
        if schedule not in lr_schedules:
            raise ValueError(f"unknown lr_schedule {schedule!r}; expected one of {sorted(lr_schedules)}")
        super().__init__(learning_rate=lr, name=name, **kwargs)
        self.lr, self.schedule, self.warmup, self.t_total = lr, schedule, warmup, t_total
        self.b1, self.b2, self.e, self.l2, self.vector_l2 = b1, b2, e, l2, vector_l2
        self.max_grad_norm = max_grad_norm

    @classmethod
    def from_config_objects(cls, opt_cfg):
        """Build from a `gpt1_tf.config.OptConfig`."""
        return cls(lr=opt_cfg.lr, schedule=opt_cfg.lr_schedule, warmup=opt_cfg.lr_warmup,
                   t_total=opt_cfg.t_total, b1=opt_cfg.b1, b2=opt_cfg.b2, e=opt_cfg.e, l2=opt_cfg.l2,
                   vector_l2=opt_cfg.vector_l2, max_grad_norm=opt_cfg.max_grad_norm)

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
        # the golden fixtures evaluate the schedule at the incremented t (SPEC, Optimizer)
        return lrt * lr_schedules[self.schedule](tt / self.t_total, warmup=self.warmup)

    def apply(self, grads, trainable_variables=None):
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.max_grad_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.max_grad_norm)
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
        config.update(lr=self.lr, schedule=self.schedule, warmup=self.warmup, t_total=self.t_total,
                      b1=self.b1, b2=self.b2, e=self.e, l2=self.l2, vector_l2=self.vector_l2,
                      max_grad_norm=self.max_grad_norm)
        config.pop("learning_rate", None)
        return config
