"""Weight files: the original shard format, the original init, best_params.jl, shape errors."""
import json
import os
import tempfile

import joblib
import numpy as np
import tensorflow as tf

from unittest import mock

from gpt1_tf.weights import pretrained
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.network.model import TransformerModel

CFG = ModelConfig(n_vocab=40, n_ctx=10, n_embd=8, n_head=2, n_layer=2)


def make_shards(n_layer=2, n_embd=8, n_vocab=40, n_pos=16, seed=0):
    """A small OpenAI-format shard list: positions, tokens, then 12 arrays per layer."""
    rng = np.random.RandomState(seed)
    shapes = [(n_pos, n_embd), (n_vocab, n_embd)]
    layer_cfg = ModelConfig(n_vocab=n_vocab, n_ctx=4, n_embd=n_embd, n_head=2, n_layer=n_layer)
    shapes += pretrained.expected_shapes(layer_cfg)[1:-2]
    return [rng.randn(*s).astype(np.float32) for s in shapes]


class ShardTest(tf.test.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def test_round_trip_and_file_format(self):
        shards = make_shards()
        pretrained.save_shards(shards, self.dir)
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted([f"params_{i}.npy" for i in range(10)] + ["params_shapes.json"]))
        with open(os.path.join(self.dir, "params_shapes.json")) as f:
            self.assertEqual(json.load(f), [list(a.shape) for a in shards])
        # the original reader: concatenate the 10 flat files, split at cumulative sizes
        flat = np.concatenate([np.load(os.path.join(self.dir, f"params_{i}.npy")) for i in range(10)])
        self.assertEqual(flat.ndim, 1)
        self.assertEqual(flat.size, sum(a.size for a in shards))
        loaded = pretrained.load_shards(self.dir)
        for a, b in zip(shards, loaded):
            self.assertAllEqual(a, b)

    def test_original_init_layout(self):
        shards = make_shards()
        special = np.full((3, 8), 7.0, np.float32)
        init = pretrained.init_from_pretrained(shards, CFG, special, n_transfer=12)
        self.assertLen(init, 1 + 12 * 2)  # we + the model's 2 layers (n_transfer 12 > n_layer)
        we = init[0]
        self.assertEqual(we.shape, (CFG.n_table, 8))
        self.assertAllEqual(we[:40], shards[1])  # tokens
        self.assertAllEqual(we[40:43], special)  # _start_, _delimiter_, _classify_
        self.assertAllEqual(we[43:], shards[0][:10])  # positions truncated to n_ctx
        self.assertAllEqual(init[1], shards[2])
        self.assertLen(pretrained.init_from_pretrained(shards, CFG, special, n_transfer=1), 13)
        self.assertLen(pretrained.init_from_pretrained(shards, CFG, special, n_transfer=0), 1)
        self.assertEqual(pretrained.init_from_pretrained(shards, CFG, special, n_transfer=-1), [])

    def test_init_loads_into_the_model_in_order(self):
        shards = make_shards()
        model = TransformerModel(CFG)
        clf_before = model.clf.w.numpy().copy()
        init = pretrained.init_from_pretrained(shards, CFG, np.zeros((3, 8), np.float32), n_transfer=1)
        for p, a in zip(model.params_in_order(), init):
            p.assign(a)
        self.assertAllEqual(model.blocks[0].attn.c_attn.w.numpy(), shards[2])
        self.assertAllEqual(model.blocks[0].ln_2.b.numpy(), shards[13])
        self.assertNotAllClose(model.blocks[1].attn.c_attn.w.numpy(), shards[14])  # layer 1 not loaded
        self.assertAllEqual(model.clf.w.numpy(), clf_before)  # the classifier is always fresh

    def test_more_layers_asked_than_the_files_hold(self):
        shards = make_shards(n_layer=1)
        with self.assertRaisesRegex(Gpt1Error, "holds 1"):
            pretrained.init_from_pretrained(shards, CFG, np.zeros((3, 8), np.float32), n_transfer=2)

    def test_model_size_mismatch_names_both_shapes(self):
        shards = make_shards(n_embd=16)
        with self.assertRaisesRegex(DataError, r"\(40, 16\).*\(40, 8\)"):
            pretrained.init_from_pretrained(shards, CFG, np.zeros((3, 8), np.float32), n_transfer=12)
        short_positions = make_shards(n_pos=5)
        with self.assertRaisesRegex(DataError, "position"):
            pretrained.init_from_pretrained(short_positions, CFG, np.zeros((3, 8), np.float32), n_transfer=0)

    def test_bad_files_are_one_line_errors_naming_the_file(self):
        pretrained.save_shards(make_shards(), self.dir)
        shapes = os.path.join(self.dir, "params_shapes.json")
        os.unlink(os.path.join(self.dir, "params_3.npy"))
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_3.npy", "missing")
        pretrained.save_shards(make_shards(), self.dir)
        # truncated shard
        np.save(os.path.join(self.dir, "params_9.npy"), np.load(os.path.join(self.dir, "params_9.npy"))[:-5])
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_*.npy", "truncated")
        pretrained.save_shards(make_shards(), self.dir)
        # corrupt npy
        with open(os.path.join(self.dir, "params_0.npy"), "wb") as f:
            f.write(b"not a numpy file")
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_0.npy", "npy")
        pretrained.save_shards(make_shards(), self.dir)
        # corrupt shapes json
        with open(shapes, "w") as f:
            f.write("[[512, 768], [40478")
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_shapes.json", "JSON")
        with open(shapes, "w") as f:
            f.write('{"a": 1}')
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_shapes.json", "list of shapes")
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(os.path.join(self.dir, "nowhere"))
        self._check(ctx.exception, "nowhere", "no such model directory")

    def test_export_shards_round_trip(self):
        cfg = ModelConfig(n_vocab=40, n_ctx=16, n_embd=8, n_head=2, n_layer=2)
        model = TransformerModel(cfg)
        rng = np.random.RandomState(1)
        for p in model.params_in_order():
            p.assign(rng.normal(size=p.shape).astype(np.float32))
        pretrained.export_shards(model, self.dir)
        shards = pretrained.load_shards(self.dir)
        params = pretrained.get_params(model)
        we = params[0]
        self.assertAllEqual(shards[1], we[:40])  # tokens
        self.assertAllEqual(shards[0], we[43:])  # positions, after the 3 special rows
        special = we[40:43]
        init = pretrained.init_from_pretrained(shards, cfg, special, n_transfer=2)
        for a, b in zip(init, params[:-2]):  # everything but the classifier comes back
            self.assertAllEqual(a, b)

    def test_non_finite_values_in_a_shard(self):
        for bad in (np.nan, np.inf, -np.inf):
            with self.subTest(value=bad):
                shards = make_shards()
                pretrained.save_shards(shards, self.dir)
                piece = np.load(os.path.join(self.dir, "params_3.npy"))
                piece[5] = bad
                np.save(os.path.join(self.dir, "params_3.npy"), piece)
                with self.assertRaises(DataError) as ctx:
                    pretrained.load_shards(self.dir)
                self._check(ctx.exception, "params_3.npy", "non-finite")

    def test_shapes_file_with_a_boolean_or_a_folder(self):
        pretrained.save_shards(make_shards(), self.dir)
        shapes = os.path.join(self.dir, "params_shapes.json")
        with open(shapes) as f:
            good = json.load(f)
        with open(shapes, "w") as f:
            json.dump([[True, good[0][1]]] + good[1:], f)
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_shapes.json", "list of shapes")
        os.remove(shapes)
        os.mkdir(shapes)
        with self.assertRaises(DataError) as ctx:
            pretrained.load_shards(self.dir)
        self._check(ctx.exception, "params_shapes.json", "folder")

    def _check(self, err, name, words):
        msg = str(err)
        self.assertIn(name, msg)
        self.assertIn(words, msg)
        self.assertNotIn("\n", msg)


class ParamsFileTest(tf.test.TestCase):

    def test_best_params_round_trip_in_original_order(self):
        import joblib
        model = TransformerModel(CFG)
        path = os.path.join(tempfile.mkdtemp(), "sub", "best_params.jl")
        pretrained.save_params(path, pretrained.get_params(model))
        raw = joblib.load(path)  # what the original's `joblib.load` sees: a list of arrays
        self.assertIsInstance(raw, list)
        self.assertEqual([a.shape for a in raw], [tuple(s) for s in pretrained.expected_shapes(CFG)])
        self.assertAllEqual(raw[0], model.we.numpy())
        self.assertAllEqual(raw[-2], model.clf.w.numpy())
        other = TransformerModel(CFG)
        pretrained.set_params(other, pretrained.load_params(path, CFG))
        for a, b in zip(pretrained.get_params(model), pretrained.get_params(other)):
            self.assertAllEqual(a, b)
        self.assertEqual([f for f in os.listdir(os.path.dirname(path))], ["best_params.jl"])  # no temp left

    def test_wrong_params_file(self):
        path = os.path.join(tempfile.mkdtemp(), "best_params.jl")
        model = TransformerModel(CFG)
        arrays = pretrained.get_params(model)
        pretrained.save_params(path, arrays[:-1])
        with self.assertRaisesRegex(DataError, "expected 27 arrays"):
            pretrained.load_params(path, CFG)
        arrays[3] = np.zeros((5,), np.float32)
        pretrained.save_params(path, arrays)
        with self.assertRaisesRegex(DataError, r"array 3 has shape \(5,\)"):
            pretrained.load_params(path, CFG)
        with open(path, "wb") as f:
            f.write(b"\x80\x04garbage")
        with self.assertRaisesRegex(DataError, "joblib"):
            pretrained.load_params(path, CFG)

    def test_another_head_without_its_head_file_names_the_file(self):
        # the original's files have no head file: a multiple-choice classifier loads as one; another
        # head's without its file is not "another task's params" but a file gone missing
        classes = ModelConfig(n_vocab=40, n_ctx=10, n_embd=8, n_head=2, n_layer=2, task_format="classification",
                              n_classes=3)
        path = os.path.join(tempfile.mkdtemp(), "best_params.jl")
        for cfg in (CFG, classes):
            pretrained.save_params(path, pretrained.get_params(TransformerModel(cfg)), cfg)
            os.unlink(pretrained.head_path(path))
            if cfg is CFG:
                self.assertLen(pretrained.load_params(path, CFG), CFG.n_params_arrays)
        with self.assertRaises(DataError) as caught:
            pretrained.load_params(path, CFG)
        msg = str(caught.exception)
        for words in (path, "(8, 3)", "(8, 1)", "best_params.head.json is missing", "task format and classes"):
            self.assertIn(words, msg)
        self.assertNotIn("heads differ", msg)
        self.assertNotIn("\n", msg)
        pretrained.save_params(path, pretrained.get_params(TransformerModel(classes)), classes)  # with its file
        self.assertRaisesRegex(DataError, "the heads differ", pretrained.load_params, path, CFG)

    def test_restore_params_restores_exactly_and_a_bad_file_loads_nothing(self):
        # the file read and assigned block by block, in place: whole arrays, and blocks of a few rows
        for block_bytes in (pretrained.BLOCK_BYTES, 40):
            with self.subTest(block_bytes=block_bytes), mock.patch.object(pretrained, "BLOCK_BYTES", block_bytes):
                model, other = TransformerModel(CFG), TransformerModel(CFG)
                path = os.path.join(tempfile.mkdtemp(), "best_params.jl")
                pretrained.save_params(path, pretrained.get_params(model), CFG)
                pretrained.restore_params(other, path)
                for a, b in zip(pretrained.get_params(model), pretrained.get_params(other)):
                    self.assertAllEqual(a, b)
                for i in (0, 5):  # the table; a later array, once the arrays before it were checked (and let go)
                    bad = pretrained.get_params(model)
                    bad[i][-1] = np.nan  # in the last block
                    pretrained.save_params(path, bad, CFG)
                    fresh = TransformerModel(CFG)
                    before = pretrained.get_params(fresh)
                    with self.assertRaisesRegex(DataError, f"^{path}: array {i} has non-finite values$"):
                        pretrained.restore_params(fresh, path)
                    for a, b in zip(before, pretrained.get_params(fresh)):
                        self.assertAllEqual(a, b)  # nothing assigned

    def test_row_blocks_read_a_mapped_file_without_mapping_it(self):
        path = os.path.join(tempfile.mkdtemp(), "a.jl")
        a = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
        joblib.dump([a, np.asfortranarray(a), np.float32(2)], path)
        mapped = joblib.load(path, mmap_mode="r")
        self.assertIsInstance(mapped[0], np.memmap)
        for x in mapped:
            blocks = list(pretrained.row_blocks(x, block_bytes=24))  # two rows each
            self.assertEqual([(b[0], b[1]) for b in blocks], [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)] if x.ndim else [(0, 1)])
            self.assertAllEqual(np.concatenate([b[2] for b in blocks]) if x.ndim else blocks[0][2], x)
        self.assertNotIsInstance(list(pretrained.row_blocks(mapped[0], 24))[0][2], np.memmap)  # read, not mapped

    def test_check_params_release_lets_go_of_each_array_once_checked(self):
        import gc
        import weakref
        arrays = pretrained.get_params(TransformerModel(CFG))
        refs = [weakref.ref(a) for a in arrays]
        pretrained.check_params(arrays, CFG, "params", release=True)
        gc.collect()
        self.assertEqual(arrays, [None] * CFG.n_params_arrays)
        self.assertEqual([r() for r in refs], [None] * CFG.n_params_arrays)  # check_params kept none
        arrays = pretrained.get_params(TransformerModel(CFG))
        arrays[3] = np.zeros((5,), np.float32)
        with self.assertRaisesRegex(DataError, r"array 3 has shape \(5,\)"):
            pretrained.check_params(arrays, CFG, "params", release=True)
        self.assertEqual(arrays[:3], [None] * 3)  # the checked ones went, the rest are the caller's
        self.assertIsNotNone(arrays[4])
        kept = tuple(pretrained.get_params(TransformerModel(CFG)))
        pretrained.check_params(kept, CFG, "params", release=True)  # a tuple: checked, nothing to let go

    def test_each_program_gives_its_own_advice_for_missing_weights(self):
        missing = os.path.join(tempfile.mkdtemp(), "model")
        self.assertRaisesRegex(DataError, r"openai-gpt\)$", pretrained.load_shards, missing)
        self.assertRaisesRegex(DataError, r"\); or this$", pretrained.load_shards, missing, "or this")
        from gpt1_tf.weights.formats import read_pretrained  # train.py's --model_dir
        for folder in (missing, os.path.dirname(missing)):  # no folder; a folder without params_shapes.json
            self.assertRaisesRegex(DataError, r"\); or --n_transfer -1 to train from scratch$", read_pretrained, folder)


if __name__ == "__main__":
    tf.test.main()
