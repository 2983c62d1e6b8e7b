"""The SavedModel export (`gpt1_tf.weights.saved_model`): its signatures, run where gpt1_tf is not imported.

One subprocess (TensorFlow and NumPy only) loads every export of the class and runs every signature;
this process compares what came back with
- `score` (and `serving_default`): the model's own logits `model(X, M, compute_lm=False)[0]` and their
  softmax (logits and `scores` for the regression head);
- `next_token_log_probs`: a NumPy log-softmax of the body's hidden states at lengths - 1 times the
  token rows of `we` (it would catch the whole table in the softmax or an off-by-one in `lengths`),
  with ragged lengths and garbage (also out-of-range ids) after each row's length;
and a failed export leaves nothing behind, a non-empty folder is never overwritten.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from helpers import randomised
from test_task_heads import batch, config, make_model
from gpt1_tf.weights import saved_model as serving
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.model import TransformerModel

TOL = 1e-6
# (export name, task format, n_classes, compute dtype)
EXPORTS = (("choice", "multiple_choice", 0, "float32"), ("classes", "classification", 3, "float32"),
           ("regression", "similarity", 0, "float32"), ("choice_bf16", "multiple_choice", 0, "bfloat16"))
LENGTHS = np.array([1, 6, 16, 9, 3], np.int32)  # ragged; 16 = n_ctx, every position

# run in a fresh interpreter: argv = folder of the exports, inputs .npz, outputs .npz, export names (JSON)
LOADER = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
root, inputs, outputs, names = sys.argv[1], np.load(sys.argv[2]), {}, json.loads(sys.argv[4])
specs = {}
for name in names:
    signatures = tf.saved_model.load(os.path.join(root, name)).signatures
    specs[name] = {sig: {k: [s.shape.as_list(), s.dtype.name] for k, s in
                         signatures[sig].structured_input_signature[1].items()} for sig in signatures}
    # run: (signature, {its input: the array's key}); "padded_other": the same rows, other padding
    runs = {"score": ("score", {"X": "X", "M": "M"}), "serving_default": ("serving_default", {"X": "X", "M": "M"}),
            "next_token_log_probs": ("next_token_log_probs", {"ids": "ids", "lengths": "lengths"}),
            "padded_other": ("next_token_log_probs", {"ids": "ids_other", "lengths": "lengths"})}
    for run, (signature, args) in runs.items():
        result = signatures[signature](**{k: tf.constant(inputs[f"{name}/{v}"]) for k, v in args.items()})
        for key, value in result.items():
            assert value.dtype == tf.float32, (name, run, key, value.dtype)
            outputs[f"{name}/{run}/{key}"] = value.numpy()
np.savez(sys.argv[3], **outputs)
with open(sys.argv[3] + ".json", "w") as f:
    json.dump(specs, f)
assert "gpt1_tf" not in sys.modules, "loading the SavedModel imported gpt1_tf"
"""


def next_token_inputs(rng, n_vocab, n_ctx):
    """ids [5, n_ctx] of any token (specials too), cut at LENGTHS; the padding twice: other ids, and junk."""
    ids = rng.randint(0, n_vocab + 3, (len(LENGTHS), n_ctx)).astype(np.int32)
    padding = np.arange(n_ctx)[None, :] >= LENGTHS[:, None]
    other = np.where(padding, rng.randint(-5, 10 ** 6, ids.shape), ids).astype(np.int32)
    ids = np.where(padding, rng.randint(0, n_vocab + 3, ids.shape), ids).astype(np.int32)
    return ids, other


def reference_log_probs(model, ids, lengths):
    """NumPy: log-softmax over the n_vocab token rows of `we` of h at each row's last real token."""
    cfg = model.cfg
    n_ctx = ids.shape[1]
    positions = cfg.n_vocab + cfg.n_special + np.arange(n_ctx)  # the table's position rows (gpt1_tf.network.tokens)
    X = np.stack([ids, np.broadcast_to(positions, ids.shape)], -1).astype(np.int32)  # [B, T, 2]
    h, we = model.transformer.hidden(X)
    h = h.numpy().astype(np.float64)[np.arange(len(lengths)), lengths - 1]  # [B, n_embd]
    z = h @ we.numpy().astype(np.float64)[:cfg.n_vocab].T  # [B, n_vocab]
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def build_model(task_format, n_classes, dtype):
    if dtype == "float32":
        return make_model(task_format, n_classes)
    return randomised(TransformerModel(config(task_format, n_classes, compute_dtype=dtype)))


class SavedModelTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        rng = np.random.RandomState(0)
        cls.models, inputs = {}, {}
        for name, task_format, n_classes, dtype in EXPORTS:
            model = cls.models[name] = build_model(task_format, n_classes, dtype)
            X, M, _ = batch(rng, task_format, n_classes)
            ids, other = next_token_inputs(rng, model.cfg.n_vocab, model.cfg.n_ctx)
            inputs.update({f"{name}/X": X, f"{name}/M": M, f"{name}/ids": ids, f"{name}/ids_other": other,
                           f"{name}/lengths": LENGTHS})
            path = os.path.join(cls.root, name)
            if name == "choice":
                os.mkdir(path)  # an empty folder is replaced
            serving.save_saved_model(model, path)
        cls.inputs = inputs
        cls.outputs, cls.specs = cls.run_loader([e[0] for e in EXPORTS])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def run_loader(cls, names):
        np.savez(os.path.join(cls.root, "inputs.npz"), **cls.inputs)
        out = os.path.join(cls.root, "outputs.npz")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, "-c", LOADER, cls.root, os.path.join(cls.root, "inputs.npz"), out,
                               json.dumps(names)], cwd=cls.root, env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"the loader failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        with np.load(out) as d, open(out + ".json") as f:
            return {k: d[k] for k in d.files}, json.load(f)

    def model_logits(self, name):
        return self.models[name](self.inputs[f"{name}/X"], self.inputs[f"{name}/M"], compute_lm=False)[0].numpy()

    def test_signatures_and_their_inputs(self):
        for name in self.specs:
            self.assertEqual(sorted(self.specs[name]), ["next_token_log_probs", "score", "serving_default"])
            score = {"X": [[None, None, None, 2], "int32"], "M": [[None, None, None], "float32"]}
            self.assertEqual(self.specs[name]["score"], score)
            self.assertEqual(self.specs[name]["serving_default"], score)
            self.assertEqual(self.specs[name]["next_token_log_probs"],
                             {"ids": [[None, None], "int32"], "lengths": [[None], "int32"]})

    def test_score_is_the_models_head(self):
        for name, run in [(e[0], run) for e in EXPORTS[:3] for run in ("score", "serving_default")]:
            with self.subTest(name=name, run=run):
                logits, got = self.model_logits(name), self.outputs
                self.assertAllClose(got[f"{name}/{run}/logits"], logits, atol=TOL, rtol=0)
                if self.models[name].cfg.regression:
                    self.assertEqual(logits.shape, (4, 1))
                    self.assertAllClose(got[f"{name}/{run}/scores"], logits[:, 0], atol=TOL, rtol=0)
                    self.assertNotIn(f"{name}/{run}/probabilities", got)
                else:
                    self.assertEqual(logits.shape, (4, 3))  # 3 choices or 3 classes
                    self.assertAllClose(got[f"{name}/{run}/probabilities"], softmax(logits), atol=TOL, rtol=0)
                    self.assertNotIn(f"{name}/{run}/scores", got)

    def test_next_token_log_probs_over_the_vocabulary(self):
        for name in [e[0] for e in EXPORTS[:3]]:
            with self.subTest(name=name):
                model, got = self.models[name], self.outputs[f"{name}/next_token_log_probs/log_probs"]
                want = reference_log_probs(model, self.inputs[f"{name}/ids"], LENGTHS)
                self.assertEqual(got.shape, (len(LENGTHS), model.cfg.n_vocab))
                self.assertAllClose(got, want, atol=TOL, rtol=0)
                self.assertAllClose(np.exp(got).sum(-1), np.ones(len(LENGTHS)), atol=1e-5, rtol=0)

    def test_padding_changes_nothing(self):
        for name in [e[0] for e in EXPORTS]:
            with self.subTest(name=name):
                self.assertAllClose(self.outputs[f"{name}/padded_other/log_probs"],
                                    self.outputs[f"{name}/next_token_log_probs/log_probs"], atol=TOL, rtol=0)

    def test_the_lengths_are_read(self):
        # the reference itself: one token fewer gives other numbers (so an off-by-one would show)
        model = self.models["choice"]
        ids = self.inputs["choice/ids"]
        self.assertNotAllClose(reference_log_probs(model, ids, np.maximum(LENGTHS - 1, 1))[1:],
                               reference_log_probs(model, ids, LENGTHS)[1:], atol=1e-3)

    def test_bad_next_token_inputs_are_refused(self):
        fn = tf.saved_model.load(os.path.join(self.root, "classes")).signatures["next_token_log_probs"]
        n_vocab, n_ctx = self.models["classes"].cfg.n_vocab, self.models["classes"].cfg.n_ctx
        ids = np.zeros((2, 4), np.int32)
        for ids_, lengths, problem in ((ids, [0, 4], "at least 1"), (ids, [2, 5], "at most the width"),
                                       (ids, [2], "one per row"), (ids + n_vocab + 3, [1, 1], "outside"),
                                       (np.zeros((1, n_ctx + 1), np.int32), [1], "n_ctx")):
            with self.subTest(problem=problem), self.assertRaisesRegex(tf.errors.InvalidArgumentError, problem):
                fn(ids=tf.constant(ids_), lengths=tf.constant(lengths, tf.int32))

    def test_mixed_precision_exports_float32(self):
        # float32 outputs (the loader asserts it); bfloat16 arithmetic is rounding-close to the model's
        name, got = "choice_bf16", self.outputs
        self.assertAllClose(got[f"{name}/score/logits"], self.model_logits(name), atol=0.01, rtol=0)
        want = reference_log_probs(self.models[name], self.inputs[f"{name}/ids"], LENGTHS)
        self.assertAllClose(got[f"{name}/next_token_log_probs/log_probs"], want, atol=0.01, rtol=0)


class WriteTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.parent = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.parent, ignore_errors=True)
        self.model = TransformerModel(config("classification", 2, n_layer=1))

    def test_a_failed_export_leaves_nothing(self):
        save = tf.saved_model.save

        def save_then_fail(obj, path, **kwargs):
            save(obj, path, **kwargs)  # a complete SavedModel in the temporary folder, then a failure
            raise OSError("disk full")

        path = os.path.join(self.parent, "gpt1", "1")
        with mock.patch.object(tf.saved_model, "save", save_then_fail):
            with self.assertRaisesRegex(OSError, "disk full"):
                serving.save_saved_model(self.model, path)
        self.assertEqual(os.listdir(os.path.join(self.parent, "gpt1")), [])  # no output, no temporary folder

    def test_a_non_empty_folder_or_a_file_is_not_overwritten(self):
        folder, file = os.path.join(self.parent, "1"), os.path.join(self.parent, "2")
        os.mkdir(folder)
        for path in (os.path.join(folder, "saved_model.pb"), file):
            with open(path, "w") as f:
                f.write("an earlier export")
        for path in (folder, file, os.path.join(file, "1")):
            with self.subTest(path=path), self.assertRaises(Gpt1Error) as caught:
                serving.save_saved_model(self.model, path)
            self.assertIn(self.parent, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))
        self.assertEqual(os.listdir(folder), ["saved_model.pb"])
        self.assertEqual(sorted(os.listdir(self.parent)), ["1", "2"])
