"""The original Adam and its schedules: golden parity and hand-computed single updates."""
import math

import numpy as np
import tensorflow as tf

from helpers import ADAM_CASES, load_batches, load_fixture, model_config, np_schedule, params_of, assert_parity_after_steps
from gpt1_tf.network.heads import train_loss
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.network.config import OptConfig
from gpt1_tf.network.opt import OpenAIAdam, lr_schedules
from gpt1_tf.weights.pretrained import get_params, set_params

def run_fixture(name):
    """Replay a golden adam_* case: returns our params after the steps.

    The step runs as the original's did: a graph (tf.function) whose gradients come from
    tf.gradients, so Grappler sums them in the original's order (see gpt1_tf/trainer.py).
    """
    arrays, meta = load_fixture(name)
    batches, o = load_batches(name), meta["opt"]
    model = TransformerModel(model_config(meta["hp"]))
    set_params(model, params_of(arrays, "before"))
    params = model.params_in_order()
    opt = OpenAIAdam(OptConfig(lr=o["lr"], lr_schedule=o["lr_schedule"], lr_warmup=o["lr_warmup"], t_total=o["t_total"],
                               l2=o["l2"], vector_l2=o["vector_l2"], max_grad_norm=o["max_grad_norm"]))
    opt.build(params)

    @tf.function
    def gradients(X, M, Y):
        _, clf_losses, lm_losses = model(X, M, Y, training=True, lm_head="full")
        loss = train_loss(clf_losses, lm_losses, o["lm_coef"])
        return [tf.convert_to_tensor(g) for g in tf.gradients(loss, params)]

    apply = tf.function(lambda grads: opt.apply(grads, params))
    for s in range(o["steps"]):
        apply(gradients(batches[f"X_{s}"], batches[f"M_{s}"], batches[f"Y_{s}"]))
    return get_params(model)


class AdamParityTest(tf.test.TestCase):

    def test_parameters_after_steps_match_the_original(self):
        # 1e-6 on every parameter with a true gradient; the gradient-free ones (clf/b; with lm_coef 0 the
        # last ln_2/b) move by rounding noise that depends on the CPU's kernels: bounded and output-free
        for name in ADAM_CASES:
            with self.subTest(fixture=name):
                assert_parity_after_steps(self, name, run_fixture(name))


class ScheduleTest(tf.test.TestCase):

    def test_schedules_against_the_formulas(self):
        for name in lr_schedules:
            for x in (0.0, 0.001, 0.002, 0.0021, 0.25, 0.5, 0.99, 1.0):
                with self.subTest(schedule=name, x=x):
                    got = float(lr_schedules[name](tf.constant(x, tf.float32), warmup=0.002))
                    self.assertAllClose(got, np_schedule(name, x, 0.002), atol=1e-6)

    def test_warmup_linear_rises_then_decays_to_zero(self):
        xs = np.linspace(0, 1, 501).astype(np.float32)
        ys = lr_schedules["warmup_linear"](tf.constant(xs), warmup=0.1).numpy()
        self.assertEqual(int(np.argmax(ys)), 50)
        self.assertAllClose(ys[-1], 0.0)


class LoggedRateTest(tf.test.TestCase):
    """What the logs call the learning rate is the schedule's, lr * schedule(t / t_total); Adam's step adds
    its bias correction sqrt(1 - b2^t) / (1 - b1^t) (0.316 at the first update with b1 0.9, b2 0.999)."""

    def test_scheduled_rate_and_step_size(self):
        cfg = OptConfig(lr=1e-3, lr_schedule="warmup_linear", lr_warmup=0.1, t_total=50)
        opt = OpenAIAdam(cfg)
        w = tf.Variable(np.ones([2, 2], np.float32))
        opt.build([w])
        for t in (1, 2, 30):
            while int(opt.iterations.numpy()) < t - 1:
                opt.apply([tf.ones([2, 2])], [w])
            with self.subTest(t=t):
                rate = cfg.lr * np_schedule("warmup_linear", t / cfg.t_total, cfg.lr_warmup)
                self.assertAllClose(float(opt.scheduled_rate()), rate, rtol=1e-6)
                correction = np.sqrt(1 - cfg.b2 ** t) / (1 - cfg.b1 ** t)
                self.assertAllClose(float(opt.scheduled_lr()), rate * correction, rtol=1e-5)


class SingleUpdateTest(tf.test.TestCase):
    """One update by hand: bias correction, schedule at t=1, decoupled L2 on matrices only."""

    def _one_step(self, vector_l2, max_grad_norm=-1.0, grads=None):
        w = tf.Variable(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))
        b = tf.Variable(np.array([1.0, -1.0], np.float32))
        opt = OpenAIAdam(OptConfig(lr=0.1, lr_schedule="warmup_constant", lr_warmup=0.002, t_total=10, l2=0.5,
                                   vector_l2=vector_l2, max_grad_norm=max_grad_norm))
        g = grads or [np.array([[0.1, 0.2], [0.3, 0.4]], np.float32), np.array([0.5, -0.5], np.float32)]
        opt.apply([tf.constant(x) for x in g], [w, b])
        return w.numpy(), b.numpy(), opt

    def test_decoupled_l2_on_matrices_only(self):
        w0 = np.array([[1.0, -2.0], [0.5, 3.0]])
        b0 = np.array([1.0, -1.0])
        gw = np.array([[0.1, 0.2], [0.3, 0.4]])
        gb = np.array([0.5, -0.5])
        lrt = 0.1 * math.sqrt(1 - 0.999) / (1 - 0.9) * 1.0  # t = 1, x = 0.1 > warmup
        step = lambda g: (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
        w, b, opt = self._one_step(vector_l2=False)
        self.assertAllClose(w, w0 - lrt * (step(gw) + 0.5 * w0), atol=1e-6)
        self.assertAllClose(b, b0 - lrt * step(gb), atol=1e-6)
        self.assertEqual(int(opt.iterations.numpy()), 1)
        _, b_l2, _ = self._one_step(vector_l2=True)
        self.assertAllClose(b_l2, b0 - lrt * (step(gb) + 0.5 * b0), atol=1e-6)

    def test_clipping_is_by_global_norm_over_all_gradients(self):
        # with clip, m/sqrt(v) is scale-free at t=1, so compare the clipped gradients themselves
        gw = np.full((2, 2), 3.0, np.float32)
        gb = np.full((2,), 4.0, np.float32)
        norm = math.sqrt(4 * 9 + 2 * 16)
        clipped, _ = tf.clip_by_global_norm([tf.constant(gw), tf.constant(gb)], 1.0)
        self.assertAllClose(clipped[0], gw / norm, atol=1e-6)
        # and the optimizer applies exactly that: same result as feeding the clipped gradients
        w1, b1, _ = self._one_step(vector_l2=False, max_grad_norm=1.0, grads=[gw, gb])
        w2, b2, _ = self._one_step(vector_l2=False, grads=[g.numpy() for g in clipped])
        self.assertAllClose(w1, w2, atol=1e-7)
        self.assertAllClose(b1, b2, atol=1e-7)


if __name__ == "__main__":
    tf.test.main()
