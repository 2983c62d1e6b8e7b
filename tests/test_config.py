"""Configuration: step options refuse contradictions; choices and defaults have one owner; Keras saving round-trips."""
import dataclasses
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from helpers import N_CTX, N_VOCAB, story_batch
from gpt1_tf.cli import train as cli
from gpt1_tf.network import config, ops, opt
from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig
from gpt1_tf.errors import ConfigError
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.network.opt import OpenAIAdam


class StepConfigTest(tf.test.TestCase):

    def test_modes_resolve_their_options(self):
        self.assertEqual((StepConfig().trim, StepConfig().packed, StepConfig().lm_head), (True, True, "masked"))
        exact = StepConfig(exact=True)
        self.assertEqual((exact.trim, exact.packed, exact.lm_head, exact.pool_only_eval, exact.fused_apply),
                         (False, False, "full", False, False))
        xla = StepConfig(xla=True)
        self.assertEqual((xla.packed, xla.lm_head, xla.trim_multiple), (False, "full", 8))
        self.assertEqual(StepConfig(exact=True, packed=False), exact)  # agreeing with the mode is fine

    def test_contradictions_are_refused_not_overridden(self):
        for kwargs in (dict(exact=True, packed=True), dict(exact=True, lm_head="masked"), dict(exact=True, trim=True),
                       dict(exact=True, fused_apply=True), dict(xla=True, packed=True), dict(exact=True, xla=True),
                       dict(lm_head="sideways")):
            with self.subTest(**kwargs):
                with self.assertRaises(ConfigError):
                    StepConfig(**kwargs)

    def test_exact_with_mixed_precision_is_refused(self):
        with self.assertRaisesRegex(ConfigError, "mixed precision"):
            config.check_compatible(ModelConfig(compute_dtype="bfloat16"), StepConfig(exact=True))


class OneOwnerTest(tf.test.TestCase):
    """The choices and defaults of config are what the network, the optimizer and the CLI use."""

    def test_choices(self):
        self.assertEqual(set(ops.ACT_FNS), set(config.ACTIVATIONS))
        self.assertEqual(set(opt.lr_schedules), set(config.LR_SCHEDULES))
        actions = {a.dest: a for a in cli.build_parser()._actions}
        self.assertEqual(tuple(actions["afn"].choices), config.ACTIVATIONS)
        self.assertEqual(tuple(actions["lr_schedule"].choices), config.LR_SCHEDULES)

    def test_defaults(self):
        args = cli.build_parser().parse_args(["--dataset", "rocstories"])
        self.assertEqual(cli.opt_config(args), OptConfig())
        self.assertEqual(cli.model_config(args), ModelConfig())
        self.assertEqual(OpenAIAdam().cfg, OptConfig())  # l2 0.01 and max_grad_norm 1, the original's

    def test_n_ctx_limit_is_the_configs(self):
        with self.assertRaisesRegex(ConfigError, str(config.MAX_N_CTX)):
            ModelConfig(n_ctx=config.MAX_N_CTX + 1)


class FiniteValuesTest(tf.test.TestCase):
    """NaN passes every range check written as a comparison; each config refuses it (and infinity) by name."""

    def test_non_finite_fields_are_refused(self):
        from gpt1_tf.network.config import Sampling
        for make, name in ((lambda v: OptConfig(lr=v), "lr"), (lambda v: OptConfig(lr_warmup=v), "lr_warmup"),
                           (lambda v: OptConfig(b2=v), "b2"), (lambda v: OptConfig(e=v), "e"),
                           (lambda v: OptConfig(l2=v), "l2"), (lambda v: OptConfig(max_grad_norm=v), "max_grad_norm"),
                           (lambda v: Sampling(temperature=v), "temperature"), (lambda v: Sampling(top_p=v), "top_p"),
                           (lambda v: ModelConfig(embd_pdrop=v), "embd_pdrop")):
            for value in (float("nan"), float("inf")):
                with self.subTest(name=name, value=value):
                    with self.assertRaisesRegex(ConfigError, f"^{name} must be"):
                        make(value)
        OptConfig(max_grad_norm=-1.0)  # no clipping, as the original's max_grad_norm <= 0


class KerasSavingTest(tf.test.TestCase):

    def test_keras_file_round_trip(self):
        cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=16, n_head=2, n_layer=2, afn="swish")
        model = TransformerModel(cfg)
        rng = np.random.RandomState(0)
        for p in model.params_in_order():
            p.assign(rng.normal(0, 0.2, p.shape).astype(np.float32))
        X, M, Y = story_batch(np.random.RandomState(1), 3)
        path = os.path.join(tempfile.mkdtemp(), "gpt1.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        self.assertIsInstance(loaded, TransformerModel)
        self.assertEqual(loaded.cfg, cfg)
        self.assertEqual([p.path for p in loaded.params_in_order()], [p.path for p in model.params_in_order()])
        for a, b in zip(loaded(X, M, Y), model(X, M, Y)):
            self.assertAllClose(a, b, atol=1e-6, rtol=0)

    def test_get_config_round_trip(self):
        cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=16, n_head=2, n_layer=1)
        clone = TransformerModel.from_config(TransformerModel(cfg).get_config())
        self.assertEqual(clone.cfg, cfg)
        self.assertEqual(dataclasses.asdict(clone.blocks[0].cfg), dataclasses.asdict(cfg))


if __name__ == "__main__":
    tf.test.main()
