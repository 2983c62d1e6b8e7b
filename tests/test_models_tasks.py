"""gpt1_tf.models.tasks: GPT1Classifier, GPT1Regressor, GPT1MultipleChoice as keras.Models.

Tiny backbones (2 layers, 32 wide) on the real 40,478-token vocabulary and the bundled samples.
The key test: `fit` gives the parameters train.py's step gives (`Trainer.train_step` driven as
`gpt1_tf/train/finetune.py` drives it) on the same batches, seed and flags, with dropout on.
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from helpers import FIXTURES, REPO
from gpt1_tf.errors import ConfigError, Gpt1Error
from gpt1_tf.models.backbone import GPT1Backbone
from gpt1_tf.models.preprocessor import GPT1Preprocessor
from gpt1_tf.models.tasks import GPT1Classifier, GPT1MultipleChoice, GPT1Regressor, Recipe
from gpt1_tf.network.config import OptConfig, StepConfig
from gpt1_tf.train.trainer import Trainer
from gpt1_tf.weights import pretrained
from gpt1_tf.weights.pretrained import get_params, set_params

N_CTX, BATCH, EPOCHS = 40, 8, 2
OPT = OptConfig(lr=1e-3)  # larger steps than 6.25e-5, so that a different step would show
TOL = 1e-5  # parameters after the updates: fit against train.py's step


def tiny_backbone(seed=1):
    keras.utils.set_random_seed(seed)
    return GPT1Backbone(num_layers=2, num_heads=4, hidden_dim=32, max_sequence_length=N_CTX, dropout=0.1)


def sst2_sample(n, split="train"):
    """The first n sentences and labels of the bundled SST-2 sample."""
    with open(os.path.join(REPO, "datasets", "sst2_sample", f"{split}.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


class FitIsTrainPyStepTest(tf.test.TestCase):
    """fit == the Trainer's train_step on the same batches (finetune.py's loop: n_update = the update count)."""

    def reference(self, classifier, init, texts, labels, *, epochs, lm_coef=0.5, opt=OPT):
        X, M, Y = classifier.preprocessor(texts, labels)
        steps = len(Y) // BATCH
        import dataclasses
        ref = Trainer(classifier.cfg, dataclasses.replace(opt, t_total=epochs * steps), StepConfig(),
                      strategy=tf.distribute.get_strategy(), lm_coef=lm_coef, seed=42)
        set_params(ref.model, init)
        for _ in range(epochs):
            for b in range(steps):
                at = slice(b * BATCH, (b + 1) * BATCH)
                ref.train_step(X[at], M[at], Y[at], ref.n_updates)
        return get_params(ref.model), ref

    def test_parameters_equal_the_trainers_with_dropout(self):
        texts, labels = sst2_sample(40)  # 5 batches of 8, 2 epochs: 10 updates
        classifier = GPT1Classifier(tiny_backbone(), 2)
        init = get_params(classifier.network)
        classifier.compile(OPT)
        history = classifier.fit(texts, labels, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
        want, ref = self.reference(classifier, init, texts, labels, epochs=EPOCHS)
        got = get_params(classifier.network)
        self.assertEqual(classifier.trainer.n_updates, 10)
        self.assertEqual(classifier.trainer.optimizer.t_total, 10)  # epochs x (40 // 8)
        self.assertLessEqual(max_diff(got, want), TOL)
        self.assertGreater(max_diff(got, init), 1e-3)  # it trained
        # the backbone's own variables were trained: shared, not copied
        self.assertAllEqual(classifier.backbone.transformer.we.numpy(), got[0])
        self.assertLen(history.history["loss"], EPOCHS)
        # the same step with another flag (no LM loss) lands elsewhere: the comparison can fail
        other = GPT1Classifier(tiny_backbone(), 2)
        set_params(other.network, init)
        other.compile(OPT, lm_coef=0.0)
        other.fit(texts, labels, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
        self.assertGreater(max_diff(get_params(other.network), want), 100 * TOL)

    def test_compile_without_arguments_is_the_papers_recipe(self):
        texts, labels = sst2_sample(24)
        classifier = GPT1Classifier(tiny_backbone(), 2)
        classifier.compile()
        self.assertEqual(classifier.recipe, Recipe())
        self.assertEqual((classifier.recipe.lm_coef, classifier.recipe.seed), (0.5, 42))
        self.assertEqual(classifier.cfg.resid_pdrop, 0.1)
        classifier.fit(texts, labels, batch_size=BATCH, epochs=3, verbose=0)
        # train.py's defaults, t_total = epochs x (24 // 8)
        self.assertEqual(classifier.trainer.opt_cfg, OptConfig(t_total=9))
        self.assertEqual(OptConfig(t_total=9), OptConfig(lr=6.25e-5, lr_schedule="warmup_linear", lr_warmup=0.002,
                                                         l2=0.01, max_grad_norm=1.0, t_total=9))
        self.assertEqual((classifier.trainer.lm_coef, classifier.trainer.n_towers), (0.5, 1))
        self.assertIs(classifier.optimizer, classifier.trainer.optimizer)

    def test_towers_in_sequence_equal_the_trainers(self):
        # compile(n_towers=2): train.py's --n_gpu 2 on one device (2 towers of 4, their gradients averaged)
        texts, labels = sst2_sample(16)
        classifier = GPT1Classifier(tiny_backbone(), 2)
        init = get_params(classifier.network)
        classifier.compile(OPT, n_towers=2)
        classifier.fit(texts, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        X, M, Y = classifier.preprocessor(texts, labels)
        ref = Trainer(classifier.cfg, OptConfig(lr=1e-3, t_total=2), StepConfig(), strategy=tf.distribute.get_strategy(),
                      lm_coef=0.5, seed=42, n_towers=2)
        set_params(ref.model, init)
        for b in range(2):
            ref.train_step(X[b * 8:(b + 1) * 8], M[b * 8:(b + 1) * 8], Y[b * 8:(b + 1) * 8], ref.n_updates)
        self.assertLessEqual(max_diff(get_params(classifier.network), get_params(ref.model)), TOL)


class MirroredTest(tf.test.TestCase):
    def test_fit_under_a_mirrored_strategy_equals_towers_in_sequence(self):
        # 2 replicas on 2 logical CPUs (a fresh process) against the Trainer's 2 towers in sequence on one
        # device: the gradients reduced across replicas first, then clipped, as the original
        path = os.path.join(tempfile.mkdtemp(), "mirrored.npz")
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "tasks_mirrored.py"), path], check=True,
                       capture_output=True, cwd=here)
        with np.load(path) as d:
            runs = dict(d)
        self.assertEqual((int(runs["replicas"]), int(runs["fit_updates"])), (2, EPOCHS * 4))
        n = sum(k.startswith("fit_") and k[4:].isdigit() for k in runs)
        self.assertEqual(n, 3 + 12 * 2)
        got, want = [runs[f"fit_{i}"] for i in range(n)], [runs[f"ref_{i}"] for i in range(n)]
        self.assertLessEqual(max_diff(got, want), TOL)
        self.assertAllClose(runs["fit_predict"], runs["ref_predict"], atol=1e-5, rtol=0)


class CallbacksTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_tensorboard_checkpoint_and_early_stopping(self):
        texts, labels = sst2_sample(16)
        valid = sst2_sample(8, "dev")
        classifier = GPT1Classifier(tiny_backbone(), 2)
        classifier.compile()
        weights = os.path.join(self.tmp, "best.weights.h5")
        callbacks = [keras.callbacks.TensorBoard(os.path.join(self.tmp, "tb")),
                     keras.callbacks.ModelCheckpoint(weights, save_weights_only=True),
                     # an improvement of 10 never comes: stops after the second epoch
                     keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=0)]
        history = classifier.fit(texts, labels, batch_size=BATCH, epochs=5, validation_data=valid,
                                 callbacks=callbacks, verbose=0)
        self.assertLen(history.history["val_loss"], 2)
        self.assertEqual(sorted(history.history), ["learning_rate", "loss", "val_accuracy", "val_loss"])
        for part in ("train", "validation"):
            events = os.listdir(os.path.join(self.tmp, "tb", part))
            self.assertTrue(any(e.startswith("events.out.tfevents") for e in events), part)
        # the checkpoint holds the final weights: a fresh model with them predicts the same
        again = GPT1Classifier(tiny_backbone(seed=7), 2)
        again.load_weights(weights)
        self.assertAllClose(again.predict(valid[0], verbose=0), classifier.predict(valid[0], verbose=0), atol=1e-6)
        self.assertAllClose(get_params(again.network), get_params(classifier.network), atol=0, rtol=0)

    def test_backup_and_restore_resumes_to_the_uninterrupted_weights(self):
        texts, labels = sst2_sample(24)  # 3 batches an epoch, shuffled by epoch

        class Interrupt(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 1 and batch == 1:
                    raise KeyboardInterrupt

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

        def run(callbacks):
            model = GPT1Classifier(tiny_backbone(), 2)
            model.compile(OPT)
            model.fit(texts, labels, batch_size=BATCH, epochs=3, callbacks=callbacks, verbose=0)
            return model

        class Count(keras.callbacks.Callback):
            batches = 0

            def on_train_batch_end(self, batch, logs=None):
                Count.batches += 1

        whole = run([])
        backup = os.path.join(self.tmp, "backup")
        with self.assertRaises(KeyboardInterrupt):
            run([keras.callbacks.BackupAndRestore(backup), Interrupt()])
        resumed = run([keras.callbacks.BackupAndRestore(backup), Count()])
        self.assertEqual(Count.batches, 6)  # restored at the end of epoch 0: epochs 1 and 2 run again
        self.assertEqual(resumed.trainer.n_updates, 9)  # Adam's update count came back with its moments
        self.assertLessEqual(max_diff(get_params(resumed.network), get_params(whole.network)), 1e-6)
        self.assertGreater(max_diff(get_params(whole.network), get_params(GPT1Classifier(tiny_backbone(), 2).network)),
                           1e-3)


class FormatsTest(tf.test.TestCase):
    def test_each_format_fits_and_predicts(self):
        pairs = [("A man sleeps.", "A person rests."), ("A dog runs.", "A cat sleeps."),
                 ("Kids play.", "Children are playing."), ("It rains.", "The sun is out.")] * 2
        regressor = GPT1Regressor(tiny_backbone())
        regressor.compile(OPT)
        regressor.fit(pairs, [4.5, 0.5, 4.0, 1.0] * 2, batch_size=4, epochs=1, verbose=0)
        scores = regressor.predict(pairs[:3], verbose=0)
        self.assertEqual((scores.shape, scores.dtype), ((3,), np.float32))
        self.assertEqual(sorted(regressor.evaluate(pairs, [4.5, 0.5, 4.0, 1.0] * 2, return_dict=True, verbose=0)),
                         ["loss"])
        entailment = GPT1Classifier(tiny_backbone(), 3, task_format="entailment")
        probabilities = entailment.predict(pairs, verbose=0)
        self.assertEqual(probabilities.shape, (8, 3))
        self.assertAllClose(probabilities.sum(-1), np.ones(8), atol=1e-6)
        stories = [("Tom was hungry.", ["He ate.", "He slept on the roof."]),
                   ("The bus was late.", ["Ann walked.", "Ann flew to the moon."])] * 2
        choice = GPT1MultipleChoice(tiny_backbone())
        choice.compile(OPT)
        choice.fit(stories, [0, 0, 0, 0], batch_size=2, epochs=1, verbose=0)
        probabilities = choice.predict(stories, verbose=0)
        self.assertEqual(probabilities.shape, (4, 2))
        result = choice.evaluate(stories, [0, 0, 0, 0], return_dict=True, verbose=0)
        self.assertEqual(sorted(result), ["accuracy", "loss"])

    def test_predict_is_the_networks_evaluation(self):
        texts, labels = sst2_sample(6)
        classifier = GPT1Classifier(tiny_backbone(), 2)
        X, M = classifier.preprocessor(texts)
        logits = classifier.network(X, M)[0]  # the original's forward: padded, full LM head
        self.assertAllClose(classifier.predict(texts, batch_size=4, verbose=0), tf.nn.softmax(logits), atol=1e-5)
        classifier.compile()
        loss = classifier.evaluate(texts, labels, batch_size=6, verbose=0)
        self.assertAllClose(loss[0], np.mean(classifier.network(X, M, np.array(labels))[1]), atol=1e-5)


class PresetTest(tf.test.TestCase):
    def test_a_params_file_with_this_head_loads_it_and_another_does_not(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        source = GPT1Classifier(tiny_backbone(), 2)
        params = get_params(source.network)
        params[-2], params[-1] = params[-2] + 0.5, params[-1] + 0.25  # a trained head
        path = os.path.join(tmp, "best_params.jl")
        pretrained.save_params(path, params, source.cfg)
        loaded = GPT1Classifier.from_preset(path, num_classes=2, num_heads=4)
        self.assertAllEqual(get_params(loaded.network)[-2], params[-2])
        self.assertAllEqual(get_params(loaded.network)[-1], params[-1])
        self.assertAllEqual(get_params(loaded.network)[0], params[0])
        self.assertEqual(loaded.preprocessor.max_sequence_length, N_CTX)
        other = GPT1Classifier.from_preset(path, num_classes=3, num_heads=4)  # another task's head: fresh
        self.assertEqual(other.network.clf.w.shape, (32, 3))
        self.assertAllEqual(other.network.clf.b.numpy(), np.zeros(3))
        self.assertAllEqual(get_params(other.network)[0], params[0])
        self.assertFalse(other.load_head(path))

    def test_an_hf_folder(self):
        choice = GPT1MultipleChoice.from_preset(os.path.join(FIXTURES, "hf", "bare"))
        self.assertEqual((choice.cfg.n_embd, choice.cfg.n_layer, choice.cfg.task_format), (32, 2, "multiple_choice"))


class BadInputTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.classifier = GPT1Classifier(tiny_backbone(), 2)
        cls.classifier.compile()

    def assert_one_line(self, error, pattern, fn, *args, **kwargs):
        with self.assertRaisesRegex(error, pattern) as caught:
            fn(*args, **kwargs)
        self.assertNotIn("\n", str(caught.exception))

    def test_labels(self):
        texts, labels = sst2_sample(8)
        fit = self.classifier.fit
        self.assert_one_line(Gpt1Error, r"label 3: 2 is not a class id 0\.\.1", fit, texts, labels[:3] + [2] + labels[4:],
                             batch_size=4, verbose=0)
        self.assert_one_line(Gpt1Error, "7 label.* for 8 examples", fit, texts, labels[:7], verbose=0)
        self.assert_one_line(Gpt1Error, "integer classes 0..1, got float", self.classifier.evaluate, texts,
                             [0.5] * 8, verbose=0)
        self.assert_one_line(Gpt1Error, "none given", fit, texts, verbose=0)
        self.assert_one_line(Gpt1Error, "8 training examples make no full batch of batch_size 32", fit, texts, labels,
                             verbose=0)
        choice = GPT1MultipleChoice(tiny_backbone())
        choice.compile()
        self.assert_one_line(Gpt1Error, "2 is not the right choice's position 0..1", choice.fit,
                             [("A story.", ["One.", "Two."])] * 2, [0, 2], batch_size=2, verbose=0)

    def test_models_that_do_not_fit_together(self):
        backbone = tiny_backbone()
        self.assert_one_line(ConfigError, "at least 2 classes", GPT1Classifier, backbone, 1)
        self.assert_one_line(ConfigError, "reads classification or entailment or similarity, not 'multiple_choice'",
                             GPT1Classifier, backbone, 2, task_format="multiple_choice")
        self.assert_one_line(ConfigError, "the preprocessor reads entailment", GPT1Classifier, backbone, 2,
                             GPT1Preprocessor(task_format="entailment", max_sequence_length=N_CTX))
        self.assert_one_line(ConfigError, "up to 512 tokens, the backbone has 40", GPT1Classifier, backbone, 2,
                             GPT1Preprocessor())
        self.assert_one_line(ConfigError, "batch_size 7 does not split into 2 towers", self.towers_of_two().fit,
                             *sst2_sample(8), batch_size=7, verbose=0)
        self.assert_one_line(ConfigError, "compile takes an OptConfig", self.classifier.compile, "adam")

    def towers_of_two(self):
        classifier = GPT1Classifier(tiny_backbone(), 2)
        classifier.compile(n_towers=2)
        return classifier


class TopAndReadmeTest(tf.test.TestCase):
    def test_reachable_from_the_package_top_without_tensorflow_on_import(self):
        code = ("import sys, gpt1_tf; assert 'tensorflow' not in sys.modules; "
                "assert {'GPT1Classifier', 'GPT1Regressor', 'GPT1MultipleChoice'} <= set(dir(gpt1_tf)); "
                "from gpt1_tf.models import tasks; "
                "assert (gpt1_tf.GPT1Classifier, gpt1_tf.GPT1Regressor, gpt1_tf.GPT1MultipleChoice) == "
                "(tasks.GPT1Classifier, tasks.GPT1Regressor, tasks.GPT1MultipleChoice)")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)

    def test_the_fine_tuning_snippet_runs_as_written(self):
        """README's "Keras objects" fine-tuning block, run on the HF fixture (a tiny GPT-1: 2 layers, 32 wide) in `model/`."""
        readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
        section = readme.split("### Keras objects", 1)[1].split("\n## ", 1)[0]
        block = next(b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "GPT1Classifier" in b)
        self.assertLess(len(block.strip().splitlines()), 10)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(FIXTURES, "hf", "bare"), os.path.join(tmp, "model"))
            shutil.copytree(os.path.join(REPO, "datasets", "sst2_sample"), os.path.join(tmp, "datasets", "sst2_sample"))
            cwd, scope = os.getcwd(), {}
            os.chdir(tmp)
            try:
                exec(compile(block.replace("epochs=3", "epochs=1"), "README.md", "exec"), scope)
            finally:
                os.chdir(cwd)
        probabilities, classifier = scope["probabilities"], scope["classifier"]
        self.assertEqual(probabilities.shape, (2, 2))
        self.assertAllClose(probabilities.sum(-1), [1, 1], atol=1e-6)
        self.assertEqual((classifier.cfg.n_layer, classifier.cfg.n_embd), (2, 32))
        self.assertEqual(classifier.trainer.n_updates, 400 // 8)


if __name__ == "__main__":
    tf.test.main()
