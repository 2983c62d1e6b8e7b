"""gpt1_tf.models: GPT1Backbone (config, forward, from_preset of every source, save_to_preset) and GPT1Tokenizer.

Tiny random models on the real 40,478-token vocabulary (the HF and shard formats hold that table);
every expected output is the network's own `Transformer.hidden` on the same weights.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from helpers import FIXTURES, REPO, randomised
from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH, TextEncoder
from gpt1_tf.errors import ConfigError, DataError, Gpt1Error
from gpt1_tf.models import presets
from gpt1_tf.models.backbone import GPT1Backbone, arguments_of
from gpt1_tf.models.tokenizer import GPT1Tokenizer
from gpt1_tf.network import tokens
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.weights import formats, hf, pretrained
from gpt1_tf.weights.convert import from_params

N_VOCAB, N_CTX, T = ModelConfig.n_vocab, 12, 9
TINY = dict(n_embd=32, n_head=4, n_layer=2, embd_pdrop=0, attn_pdrop=0, resid_pdrop=0, clf_pdrop=0)
HF_BARE = os.path.join(FIXTURES, "hf", "bare")


def random_model(seed=0, **head):
    """A tiny TransformerModel with every parameter random (layer norms and special rows too)."""
    return randomised(TransformerModel(ModelConfig(n_ctx=N_CTX, **TINY, **head)), seed)


def random_ids(seed=0, shape=(3, T)):
    return np.random.RandomState(seed).randint(0, N_VOCAB, shape).astype(np.int32)


def hidden_of(model, ids):
    """The network's own last hidden states of ids [B, T] (positions from 0): what the backbone must give."""
    X = np.stack([ids, np.broadcast_to(tokens.position_id(N_VOCAB, np.arange(ids.shape[1])), ids.shape)], -1)
    return model.transformer.hidden(X.astype(np.int32))[0].numpy()


def run(backbone, ids):
    return backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}).numpy()


class TempDirTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *names):
        return os.path.join(self.tmp, *names)


class ConfigTest(tf.test.TestCase):
    def test_get_config_round_trip(self):
        backbone = GPT1Backbone(num_layers=2, num_heads=4, hidden_dim=32, dropout=0.05, max_sequence_length=N_CTX,
                                activation="relu")
        config = backbone.get_config()
        again = GPT1Backbone.from_config(config)
        self.assertEqual(again.cfg, backbone.cfg)
        self.assertEqual(again.get_config(), config)
        self.assertEqual((backbone.cfg.n_layer, backbone.cfg.n_head, backbone.cfg.n_embd, backbone.cfg.n_ctx,
                          backbone.cfg.afn, backbone.cfg.resid_pdrop), (2, 4, 32, N_CTX, "relu", 0.05))
        self.assertEqual(config["intermediate_dim"], 4 * 32)

    def test_model_config_round_trip_and_what_a_backbone_cannot_hold(self):
        cfg = ModelConfig(n_ctx=N_CTX, n_embd=32, n_head=4, n_layer=2, afn="swish", embd_pdrop=0.2,
                          attn_pdrop=0.2, resid_pdrop=0.2, clf_pdrop=0.2)
        self.assertEqual(GPT1Backbone.from_model_config(cfg).cfg, cfg)
        with self.assertRaisesRegex(ConfigError, "one dropout"):
            arguments_of(ModelConfig(n_ctx=N_CTX, embd_pdrop=0.1, attn_pdrop=0.0))
        with self.assertRaisesRegex(ConfigError, "intermediate_dim 100: .* 4 x hidden_dim = 128"):
            GPT1Backbone(num_layers=1, num_heads=4, hidden_dim=32, intermediate_dim=100, max_sequence_length=N_CTX)

    def test_registered_for_keras_serialization(self):
        import keras
        self.assertIs(keras.saving.get_registered_object("gpt1_tf>GPT1Backbone"), GPT1Backbone)
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "backbone.keras")
        whole = GPT1Backbone(num_layers=2, num_heads=4, hidden_dim=32, max_sequence_length=N_CTX, dropout=0.0)
        randomised(whole.transformer, 5)
        whole.save(path)
        loaded = keras.saving.load_model(path)
        self.assertIsInstance(loaded, GPT1Backbone)
        ids = random_ids(6)
        self.assertAllEqual(run(loaded, ids), run(whole, ids))
        # a backbone's .keras file is Keras's, not one of the weight formats from_preset reads (a TransformerModel's)
        with self.assertRaisesRegex(DataError, "holds a GPT1Backbone, not a gpt1_tf TransformerModel"):
            GPT1Backbone.from_preset(path)


class ForwardTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.model = random_model()
        self.backbone = GPT1Backbone.from_model_config(ModelConfig(n_ctx=N_CTX, **{**TINY, "embd_pdrop": 0.1,
                                                                               "attn_pdrop": 0.1, "resid_pdrop": 0.1}))
        self.backbone.assign_weights(from_params(pretrained.get_params(self.model), self.model.cfg))

    def test_equals_the_networks_hidden_states_exactly(self):
        ids = random_ids()
        want = hidden_of(self.model, ids)
        self.assertAllEqual(run(self.backbone, ids), want)
        self.assertAllEqual(self.backbone(ids).numpy(), want)  # the ids alone
        self.assertAllEqual(self.backbone({"token_ids": ids.astype(np.int64)}).numpy(), want)
        self.assertEqual(run(self.backbone, ids).shape, (3, T, 32))

    def test_right_padding_changes_no_real_token(self):
        ids = random_ids(1, (1, 5))
        padded = np.concatenate([ids, np.zeros((1, 4), np.int32)], 1)
        mask = np.arange(9)[None] < 5
        # other lengths, other matmul shapes: equal up to the kernels' rounding
        self.assertAllClose(self.backbone({"token_ids": padded, "padding_mask": mask}).numpy()[:, :5],
                            run(self.backbone, ids), atol=1e-6, rtol=0)

    def test_dropout_only_when_training_with_a_seed(self):
        ids, seed = random_ids(2), tf.constant([3, 4], tf.int32)
        plain = run(self.backbone, ids)
        self.assertAllEqual(self.backbone({"token_ids": ids}, seed=seed).numpy(), plain)  # not training
        dropped = self.backbone({"token_ids": ids}, training=True, seed=seed).numpy()
        self.assertNotAllClose(dropped, plain)
        X = np.stack([ids, np.broadcast_to(tokens.position_id(N_VOCAB, np.arange(T)), ids.shape)], -1)
        self.assertAllEqual(dropped, self.backbone.transformer.hidden(X, seed=seed)[0].numpy())

    def test_weights_are_the_body_only(self):
        self.assertLen(self.backbone.weights, len(self.backbone.transformer.params_in_order()))
        self.assertLen(self.backbone.weights, 1 + 12 * 2)


class FromPresetTest(TempDirTest):
    """Each source kind, written by the project's own writers; the backbone gives the source model's states."""

    def setUp(self):
        super().setUp()
        self.model = random_model(1, task_format="classification", n_classes=3)  # a fine-tune: specials, a head
        self.weights = from_params(pretrained.get_params(self.model), self.model.cfg)
        self.ids = random_ids(3)
        self.want = hidden_of(self.model, self.ids)

    def assert_source(self, path, **kwargs):
        backbone = GPT1Backbone.from_preset(path, **kwargs)
        self.assertAllEqual(run(backbone, self.ids), self.want)
        self.assertEqual((backbone.cfg.n_ctx, backbone.cfg.n_head, backbone.cfg.n_layer), (N_CTX, 4, 2))
        return backbone

    def test_original_shards(self):
        formats.write_shards(self.weights, self.path("shards"))
        self.assert_source(self.path("shards"), num_heads=4)
        with self.assertRaisesRegex(Gpt1Error, "n_head 12 does not divide n_embd 32"):  # unsaid: GPT-1's 12 heads
            GPT1Backbone.from_preset(self.path("shards"))

    def test_huggingface_folder(self):
        formats.write_hf(self.weights, self.path("hf"), encoder_path=DEFAULT_ENCODER_PATH, bpe_path=DEFAULT_BPE_PATH)
        self.assert_source(self.path("hf"))

    def test_keras_file(self):
        formats.write_keras(self.weights, self.path("model.keras"))
        self.assert_source(self.path("model.keras"))

    def test_best_params_with_its_head_file(self):
        pretrained.save_params(self.path("best_params.jl"), pretrained.get_params(self.model), self.model.cfg)
        self.assertTrue(os.path.exists(self.path("best_params.head.json")))
        self.assert_source(self.path("best_params.jl"), num_heads=4)

    def test_the_hf_fixture_saved_by_transformers(self):
        """expected.npz holds transformers' own last hidden states of the fixture."""
        expected = dict(np.load(os.path.join(FIXTURES, "hf", "expected.npz")))
        backbone = GPT1Backbone.from_preset(HF_BARE)
        self.assertEqual(backbone.cfg.n_ctx, 512)
        for k in range(4):
            ids = expected[f"ids_{k}"][None].astype(np.int32)
            self.assertAllClose(run(backbone, ids)[0], expected[f"hidden_{k}"], atol=1e-5, rtol=0)

    def test_options_fewer_positions_dropout_and_sizes_that_disagree(self):
        formats.write_hf(self.weights, self.path("hf"), encoder_path=DEFAULT_ENCODER_PATH, bpe_path=DEFAULT_BPE_PATH)
        short = GPT1Backbone.from_preset(self.path("hf"), max_sequence_length=T, dropout=0.0)
        self.assertEqual((short.cfg.n_ctx, short.cfg.resid_pdrop), (T, 0.0))
        self.assertAllEqual(run(short, self.ids), self.want)
        with self.assertRaisesRegex(Gpt1Error, f"max_sequence_length {N_CTX + 1}: .* has {N_CTX} positions"):
            GPT1Backbone.from_preset(self.path("hf"), max_sequence_length=N_CTX + 1)
        with self.assertRaisesRegex(DataError, "n_layer is 2"):
            GPT1Backbone.from_preset(self.path("hf"), num_layers=3)
        with self.assertRaisesRegex(DataError, "array 0 has shape"):
            GPT1Backbone.from_preset(self.path("hf"), vocabulary_size=N_VOCAB - 1)


class SaveToPresetTest(TempDirTest):
    def setUp(self):
        super().setUp()
        formats.write_shards(from_params(pretrained.get_params(random_model(2)), random_model(2).cfg),
                             self.path("shards"))
        self.backbone = GPT1Backbone.from_preset(self.path("shards"), num_heads=4, activation="gelu", dropout=0.0,
                                                 max_sequence_length=10)
        self.ids = random_ids(4)

    def test_round_trip(self):
        self.backbone.save_to_preset(self.path("preset"))
        self.assertCountEqual(os.listdir(self.path("preset")), presets.FILES)
        again = GPT1Backbone.from_preset(self.path("preset"))
        self.assertEqual(again.cfg, self.backbone.cfg)  # the positions and the dropout too
        self.assertAllEqual(run(again, self.ids), run(self.backbone, self.ids))
        # what transformers reads: the HF layout, the table's position rows being the backbone's
        self.assertEqual(hf.read_config(self.path("preset", hf.CONFIG))["n_positions"], 10)

    def test_an_earlier_preset_is_replaced(self):
        self.backbone.save_to_preset(self.path("preset"))
        other = GPT1Backbone.from_preset(self.path("shards"), num_heads=4, max_sequence_length=N_CTX)
        other.save_to_preset(self.path("preset"))
        self.assertEqual(GPT1Backbone.from_preset(self.path("preset")).cfg.n_ctx, N_CTX)
        self.assertCountEqual(os.listdir(self.tmp), ["shards", "preset"])  # no temporary folder left

    def test_a_foreign_folder_is_refused_and_left_alone(self):
        for name, files in (("mine", {"notes.txt": b"keep me"}), ("export", None)):
            folder = self.path(name)
            if files is None:  # an HF export of the project is no preset either
                formats.write_hf(self.backbone.to_weights(), folder, encoder_path=DEFAULT_ENCODER_PATH,
                                 bpe_path=DEFAULT_BPE_PATH)
                files = {f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)}
            else:
                os.makedirs(folder)
                for f, data in files.items():
                    open(os.path.join(folder, f), "wb").write(data)
            with self.assertRaises(Gpt1Error) as caught:
                self.backbone.save_to_preset(folder)
            self.assertIn(folder, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))
            self.assertEqual({f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)}, files)
        self.assertCountEqual(os.listdir(self.tmp), ["shards", "mine", "export"])

    def test_a_preset_holds_the_tokenizers_files(self):
        self.backbone.save_to_preset(self.path("preset"))
        tokenizer = GPT1Tokenizer.from_preset(self.path("preset"))
        self.assertEqual(tokenizer.vocabulary_path, self.path("preset", hf.VOCAB))
        self.assertEqual(tokenizer.merges_path, self.path("preset", hf.MERGES))
        text = "Karen was assigned a roommate her first year of college."
        self.assertEqual(tokenizer.tokenize(text), GPT1Tokenizer().tokenize(text))


class BadSourceTest(TempDirTest):
    def assert_one_line(self, call, path, *words, named=None):
        """call(path) raises a one-line Gpt1Error starting with the file it names (`named`, else `path`)."""
        with self.assertRaises(Gpt1Error) as caught:
            call(path)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(named or path), message)
        for word in words:
            self.assertIn(word, message)

    def test_unknown_path_and_format(self):
        open(self.path("weights.txt"), "w").write("hello")
        os.makedirs(self.path("folder"))
        open(self.path("folder", "notes.txt"), "w").write("hello")
        for call in (GPT1Backbone.from_preset, GPT1Tokenizer.from_preset):
            self.assert_one_line(call, self.path("missing"), "no such file or folder")
            self.assert_one_line(call, self.path("weights.txt"), "not a .jl or .keras file")
            self.assert_one_line(call, self.path("folder"), "folder without")

    def test_a_broken_preset_description(self):
        shutil.copytree(HF_BARE, self.path("preset"))
        open(self.path("preset", presets.PRESET_FILE), "w").write('{"model_config": {"n_embd": 33, "n_head": 4}}')
        self.assert_one_line(GPT1Backbone.from_preset, self.path("preset"), "n_embd (33)",
                             named=self.path("preset", presets.PRESET_FILE))
        open(self.path("preset", presets.PRESET_FILE), "w").write("{")
        with self.assertRaisesRegex(DataError, "not a gpt1_tf preset description"):
            GPT1Backbone.from_preset(self.path("preset"))


class TokenizerTest(TempDirTest):
    TEXT = "Karen was assigned a roommate her first year of college ."

    def test_round_trip_and_the_originals_ids(self):
        tokenizer = GPT1Tokenizer()
        ids = tokenizer.tokenize(self.TEXT)
        self.assertEqual(ids, TextEncoder().encode([self.TEXT])[0])
        self.assertEqual(tokenizer.detokenize(ids), self.TEXT.lower())
        batch = tokenizer(["Tom was hungry .", self.TEXT])
        self.assertEqual(batch[1], ids)
        self.assertEqual(tokenizer.detokenize(batch), ["tom was hungry .", self.TEXT.lower()])
        self.assertEqual(tokenizer.detokenize(np.array([ids, ids])), [self.TEXT.lower()] * 2)
        self.assertEqual(tokenizer.vocabulary_size, N_VOCAB)

    def test_from_preset_takes_a_folders_files_else_the_packaged_ones(self):
        os.makedirs(self.path("model"))
        for path in (DEFAULT_ENCODER_PATH, DEFAULT_BPE_PATH):  # OpenAI's model/ folder holds them too
            shutil.copy(path, self.path("model"))
        open(self.path("model", pretrained.SHAPES_FILE), "w").write("[]")
        tokenizer = GPT1Tokenizer.from_preset(self.path("model"))
        self.assertEqual(tokenizer.vocabulary_path, self.path("model", os.path.basename(DEFAULT_ENCODER_PATH)))
        self.assertEqual(tokenizer.merges_path, self.path("model", os.path.basename(DEFAULT_BPE_PATH)))
        packaged = GPT1Tokenizer.from_preset(HF_BARE)  # transformers saved no tokenizer there
        self.assertEqual((packaged.vocabulary_path, packaged.merges_path), (DEFAULT_ENCODER_PATH, DEFAULT_BPE_PATH))
        self.assertEqual(tokenizer.tokenize(self.TEXT), packaged.tokenize(self.TEXT))


class PackageTopTest(tf.test.TestCase):
    def test_import_gpt1_tf_imports_no_tensorflow(self):
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        code = ("import sys, gpt1_tf; assert 'tensorflow' not in sys.modules; "
                "t = gpt1_tf.GPT1Tokenizer; assert 'tensorflow' not in sys.modules, 'the tokenizer imported it'; "
                "assert gpt1_tf.__file__.startswith(sys.argv[1]), gpt1_tf.__file__")
        subprocess.run([sys.executable, "-c", code, REPO], check=True, env=env, cwd=REPO)

    def test_the_keras_objects_at_the_top(self):
        import gpt1_tf
        self.assertIs(gpt1_tf.GPT1Backbone, GPT1Backbone)
        self.assertIs(gpt1_tf.GPT1Tokenizer, GPT1Tokenizer)
        self.assertIn("GPT1Backbone", dir(gpt1_tf))
        with self.assertRaises(AttributeError):
            gpt1_tf.GPT1Nothing


class ReadmeTest(TempDirTest):
    def test_the_keras_objects_snippet(self):
        """README's "Keras objects" block, run as written on the HF fixture (a tiny GPT-1) in `model/`."""
        readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
        block = re.search(r"### Keras objects\n.*?```python\n(.*?)```", readme, re.S).group(1)
        shutil.copytree(HF_BARE, self.path("model"))
        cwd, scope = os.getcwd(), {}
        os.chdir(self.tmp)
        try:
            exec(compile(block, "README.md", "exec"), scope)
        finally:
            os.chdir(cwd)
        h, ids, mask = scope["h"].numpy(), scope["ids"], scope["padding_mask"]
        self.assertEqual(h.shape, (2, max(map(len, ids)), 32))
        self.assertFalse(mask.all())  # the texts' lengths differ: the padding is there
        self.assertCountEqual(os.listdir(self.path("gpt1-preset")), presets.FILES)
        again = GPT1Backbone.from_preset(self.path("gpt1-preset"))
        for row, text_ids in zip(h, ids):  # each text alone gives its states (up to the kernels' rounding)
            self.assertAllClose(row[:len(text_ids)], run(again, np.array([text_ids], np.int32))[0], atol=1e-6, rtol=0)


if __name__ == "__main__":
    tf.test.main()
