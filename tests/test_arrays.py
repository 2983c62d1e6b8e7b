"""The one table of GPT-1's arrays (`gpt1_tf.network.arrays`) against the original, the model and HuggingFace."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file

from helpers import FIXTURES, REPO
from gpt1_tf.network import arrays
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.train.memory import n_params
from gpt1_tf.weights import pretrained

# GPT-1 as published: 12 layers of 768, 512 positions, 40,478 tokens
GPT1 = dict(n_positions=512, n_vocab=40478, n_embd=768, n_layer=12)
TINY_CONFIGS = (ModelConfig(n_vocab=40, n_ctx=10, n_embd=8, n_head=2, n_layer=2),
                ModelConfig(n_vocab=40, n_ctx=10, n_embd=8, n_head=2, n_layer=1,
                            task_format="classification", n_classes=3))


def shard_shapes(n_positions, n_vocab, n_embd, n_layer):
    """The table's shapes of the original's shards (its params_shapes.json)."""
    sizes = {"n_positions": n_positions, "n_vocab": n_vocab, "n_embd": n_embd}
    return [a.shape(sizes) for a in arrays.SHARD_FIRST] + arrays.layer_shapes(n_embd) * n_layer


def model_paths(n_layer):
    """The table's variable paths of a model (under its scope), in the original order."""
    return ([a.path for a in arrays.MODEL_FIRST] + [f"{arrays.layer_scope(i)}/{a.path}" for i in range(n_layer)
                                                   for a in arrays.LAYER] + [a.path for a in arrays.MODEL_LAST])


def hf_layer_shapes(n_embd):
    """The table's HuggingFace shapes of one layer's tensors."""
    return [a.hf_shape({"n_embd": n_embd}) for a in arrays.LAYER]


class TableTest(tf.test.TestCase):

    def test_shard_shapes_are_the_originals_params_shapes_json(self):
        with open(os.path.join(FIXTURES, "original_params_shapes.json")) as f:
            original = [tuple(s) for s in json.load(f)]
        self.assertEqual(shard_shapes(**GPT1), original)
        self.assertEqual(arrays.shard_layers(len(original)), 12)

    def test_gpt1_model_shapes_and_count(self):
        cfg = ModelConfig()
        shapes = arrays.model_shapes(cfg)
        shards = shard_shapes(**GPT1)
        self.assertEqual(shapes[arrays.MODEL_LAYERS], shards[arrays.SHARD_LAYERS])
        self.assertEqual(shapes[0], (40478 + 3 + 512, 768))  # tokens | specials | positions
        self.assertEqual(shapes[-2:], [(768, 1), (1,)])
        self.assertEqual(len(shapes), cfg.n_params_arrays)
        self.assertEqual(cfg.n_params_arrays, 3 + 12 * 12)
        self.assertEqual(pretrained.expected_shapes(cfg), shapes)
        self.assertEqual(n_params(cfg), sum(math.prod(s) for s in shapes))
        self.assertEqual(n_params(cfg), 116_537_857)

    def test_params_in_order_follow_the_table(self):
        for cfg in TINY_CONFIGS:
            with self.subTest(n_layer=cfg.n_layer, task_format=cfg.task_format):
                model = TransformerModel(cfg)
                params = model.params_in_order()
                self.assertEqual([p.path for p in params], [f"model/{p}" for p in model_paths(cfg.n_layer)])
                self.assertEqual([tuple(p.shape) for p in params], arrays.model_shapes(cfg))
                self.assertEqual(n_params(cfg), sum(math.prod(p.shape) for p in params))
                self.assertEqual(n_params(cfg), sum(math.prod(v.shape) for v in model.trainable_variables))
                body = model.transformer.params_in_order()
                self.assertEqual(len(body), len(params) - len(arrays.MODEL_LAST))

    def test_hf_names_and_shapes_are_transformers(self):
        tensors = load_file(os.path.join(FIXTURES, "hf", "bare", "model.safetensors"))
        nx, n_layer = 32, 2  # fixtures/hf/provenance.json
        for i in range(n_layer):
            for a, shape in zip(arrays.LAYER, hf_layer_shapes(nx)):
                self.assertEqual(tuple(tensors[f"h.{i}.{a.hf}"].shape), shape, a.hf)
        self.assertEqual(tensors[arrays.POSITIONS.hf].shape[1], nx)
        self.assertEqual(tensors[arrays.TOKENS.hf].shape, (40478, nx))
        for a, shape, hf_shape in zip(arrays.LAYER, arrays.layer_shapes(nx), hf_layer_shapes(nx)):
            self.assertEqual(hf_shape, shape[1:] if a.conv else shape)
            x = np.zeros(shape, np.float32)
            self.assertEqual(a.to_hf(x).shape, hf_shape)
            self.assertEqual(a.from_hf(a.to_hf(x), {"n_embd": nx}).shape, shape)

    def test_model_layers_of_a_list_length(self):
        self.assertEqual(arrays.model_layers(3 + 12 * 5), 5)
        self.assertEqual(arrays.model_layers(3), 0)
        self.assertIsNone(arrays.model_layers(3 + 12 + 1))
        self.assertIsNone(arrays.model_layers(2))

    def test_the_table_imports_neither_numpy_nor_tensorflow(self):
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        for module, absent in (("gpt1_tf.network.arrays", ("numpy", "tensorflow")),
                               ("gpt1_tf.train.memory", ("tensorflow",)),  # the estimate runs before TF starts
                               ("gpt1_tf.train.throughput", ("tensorflow",))):  # nothing measured on import
            code = f"import sys, {module}; assert not {{*{absent!r}}} & set(sys.modules), {module!r}"
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


if __name__ == "__main__":
    tf.test.main()
