"""LoRA on the Keras objects: `GPT1Backbone.enable_lora`, the task models' `save_lora_weights` / `load_lora_weights`.

Tiny backbones (2 layers, 32 wide) on the real 40,478-token vocabulary. keras-hub's convention:
`enable_lora(rank)` freezes the body and adds A and B (B zero: the outputs are the base's until it
trains); `fit` then trains A, B, the special-token rows and the head, nothing else; a saved model
holds the merged weights; the adapters alone go to PEFT's folder and come back onto the same base
and layout only. (PEFT and transformers reading that folder: benchmarks/check_peft_adapter.py.)
"""
import json
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
from gpt1_tf.errors import ConfigError, DataError, Gpt1Error
from gpt1_tf.models.backbone import GPT1Backbone
from gpt1_tf.models.tasks import GPT1Classifier, GPT1MultipleChoice
from gpt1_tf.network import lora, tokens
from gpt1_tf.network.config import OptConfig, TuningConfig
from gpt1_tf.weights import peft
from gpt1_tf.weights.pretrained import get_params

N_CTX, N_VOCAB = 40, 40478
STORIES = [("Tom was hungry.", ["He ate a sandwich.", "He slept on the roof."]),
           ("The bus was late.", ["Ann walked to work.", "Ann flew to the moon."])] * 2
# token ids with the special tokens in them: their rows are the trained ones
IDS = np.array([[tokens.start_id(N_VOCAB), 5, 6, tokens.delimiter_id(N_VOCAB), 7, tokens.clf_id(N_VOCAB)]], np.int32)


def tiny_backbone(seed=1):
    keras.utils.set_random_seed(seed)
    return GPT1Backbone(num_layers=2, num_heads=4, hidden_dim=32, max_sequence_length=N_CTX, dropout=0.1)


def tiny_choice(seed=1):
    return GPT1MultipleChoice(tiny_backbone(seed))


def probabilities(model, examples=STORIES):
    """What `predict` gives (its forward, eagerly: no compiled predict function for a tiny model)."""
    X, M = model.preprocessor(examples)
    return model({"X": X, "M": M}).numpy()


def changed(before, network):
    """Paths of the network's variables whose values differ from `before` ({path: array}) in any bit."""
    return sorted(v.path for v in network.weights if not np.array_equal(before[v.path], v.numpy()))


def lora_trained(path):
    """Whether LoRA trains the variable at `path`: an adapter, the special-token rows or the head."""
    return "lora_kernel_" in path or path == "special" or path.startswith("network/clf/")


def randomize_adapters(backbone, seed=0):
    """Non-zero A, B and special rows: the adapted outputs then differ from the base's."""
    rng, body = np.random.RandomState(seed), backbone.transformer
    for _, _, conv in lora.adapted_layers(body):
        for v in (conv.lora_kernel_a, conv.lora_kernel_b):
            v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    body.special.assign(rng.normal(0, 0.5, body.special.shape).astype(np.float32))


class TempDirTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def assert_one_line(self, error, pattern, fn, *args, **kwargs):
        with self.assertRaisesRegex(error, pattern) as caught:
            fn(*args, **kwargs)
        self.assertNotIn("\n", str(caught.exception))


class EnableLoraTest(TempDirTest):
    def test_the_outputs_right_after_are_the_bases_exactly(self):
        backbone = tiny_backbone()
        base = backbone(IDS).numpy()
        backbone.enable_lora(4)
        self.assertAllEqual(backbone(IDS).numpy(), base)  # B is zero: x A B adds exactly nothing
        tuning = backbone.transformer.tuning
        self.assertEqual((tuning.lora_rank, tuning.alpha, tuning.lora_targets), (4, 4, ("c_attn", "c_proj")))
        adapted = lora.adapted_layers(backbone.transformer)
        self.assertEqual([(i, name) for i, name, _ in adapted], [(0, "c_attn"), (0, "c_proj"), (1, "c_attn"),
                                                                 (1, "c_proj")])
        self.assertEqual({conv.lora_scale for _, _, conv in adapted}, {1.0})  # alpha defaults to the rank
        # keras-hub's: the backbone is frozen but for its adapters (and, ours, the special-token rows)
        self.assertEqual(sorted(v.path for v in backbone.trainable_weights),
                         sorted(["special"] + [f"{backbone.name}/h{i}/attn/{t}/lora_kernel_{ab}"
                                               for i in (0, 1) for t in ("c_attn", "c_proj") for ab in "ab"]))

    def test_bad_arguments_are_refused_on_one_line_and_change_nothing(self):
        backbone = tiny_backbone()
        cases = [((4,), {"target_names": ("c_attn", "c_foo")}, "unknown LoRA target 'c_foo'"),
                 ((0,), {}, "rank must be at least 1, got 0"),
                 ((None,), {}, "needs a rank"),
                 ((2.5,), {}, "lora_rank must be an integer, got 2.5"),
                 ((33,), {}, r"LoRA rank 33 is larger than c_attn's smaller side \(32: n_embd 32\)"),
                 ((4,), {"train_layers": 3}, "train_layers 3 is more than the model's 2 layers"),
                 ((4,), {"lora_alpha": -1.0}, "alpha must be positive"),
                 ((4, 8.0), {"lora_alpha": 8.0}, "not both")]
        for args, kwargs, pattern in cases:
            with self.subTest(pattern=pattern):
                self.assert_one_line(ConfigError, pattern, backbone.enable_lora, *args, **kwargs)
        self.assertEqual(lora.adapted_layers(backbone.transformer), [])
        self.assertIsNone(backbone.transformer.special)
        backbone.enable_lora(32, target_names="c_fc")  # the smaller side of c_fc [32, 128]; one name as a string
        self.assertEqual([name for _, name, _ in lora.adapted_layers(backbone.transformer)], ["c_fc", "c_fc"])
        self.assert_one_line(ConfigError, "adapted already", backbone.enable_lora, 4)

    def test_what_a_saved_backbone_holds_is_the_merged_weights(self):
        backbone = tiny_backbone()
        base = backbone(IDS).numpy()
        backbone.enable_lora(4, lora_alpha=8, train_layers=1)
        randomize_adapters(backbone)
        adapted = backbone(IDS).numpy()
        self.assertGreater(np.abs(adapted - base).max(), 1e-2)  # the comparisons below can fail
        # get_params / to_weights: W + alpha/r A B, the table with its special rows
        conv = backbone.transformer.blocks[1].attn.c_attn
        params = get_params(backbone.transformer)
        merged = conv.w.numpy() + 2.0 * (conv.lora_kernel_a.numpy() @ conv.lora_kernel_b.numpy())[None]
        self.assertAllClose(params[1 + 12], merged, atol=1e-6, rtol=0)  # h1's c_attn/w
        self.assertAllEqual(backbone.to_weights().special_rows, backbone.transformer.special.numpy())
        self.assertAllEqual(params[1], backbone.transformer.blocks[0].attn.c_attn.w.numpy())  # h0: not adapted
        # .keras: a plain backbone (no LoRA) computing the adapted outputs
        backbone.save(self.path("b.keras"))
        again = keras.saving.load_model(self.path("b.keras"))
        self.assertEqual((lora.adapted_layers(again.transformer), again.transformer.special), ([], None))
        self.assertAllClose(again(IDS).numpy(), adapted, atol=1e-5, rtol=0)
        # a preset (HF folder): the same
        backbone.save_to_preset(self.path("preset"))
        self.assertAllClose(GPT1Backbone.from_preset(self.path("preset"))(IDS).numpy(), adapted, atol=1e-5, rtol=0)
        self.assertAllEqual(backbone(IDS).numpy(), adapted)  # saving merged nothing into the backbone itself
        # Keras's weights file (ModelCheckpoint, BackupAndRestore): into a LoRA backbone, base and adapters as they were
        backbone.save_weights(self.path("b.weights.h5"))
        same = tiny_backbone()
        same.enable_lora(4, alpha=8, train_layers=1)  # the name for Keras's lora_alpha
        self.assertEqual(same.transformer.tuning, backbone.transformer.tuning)
        same.load_weights(self.path("b.weights.h5"))
        for a, b in zip(backbone.weights, same.weights):
            self.assertAllEqual(a.numpy(), b.numpy(), msg=a.path)
        plain = tiny_backbone()  # and into a plain one: the merged weights
        plain.load_weights(self.path("b.weights.h5"))
        self.assertAllClose(plain(IDS).numpy(), adapted, atol=1e-5, rtol=0)


class TaskLoraTest(TempDirTest):
    def test_fit_trains_adapters_special_rows_and_head_only_and_they_load_back(self):
        model = tiny_choice()
        model.backbone.enable_lora(4)  # after the task model is built: it shares the body
        before = {v.path: v.numpy() for v in model.network.weights}
        model.compile(OptConfig(lr=1e-2))
        model.fit(STORIES, [0, 1, 0, 1], batch_size=2, epochs=1, shuffle=False, verbose=0)
        self.assertEqual(model.trainer.n_updates, 2)
        trained = [v.path for v in model.trainer.params]
        self.assertEqual(trained, [v.path for v in model.network.trained_in_order()])
        self.assertEqual(sorted(trained), sorted(p for p in before if lora_trained(p)))
        got = changed(before, model.network)
        self.assertEqual([p for p in got if not lora_trained(p)], [])  # every other variable bit-identical
        # each trained variable moved (clf/b aside: a multiple-choice softmax gives it no gradient but rounding)
        self.assertEqual(sorted(p for p in before if lora_trained(p) and p != "network/clf/b"),
                         [p for p in got if p != "network/clf/b"])
        predicted = probabilities(model)

        model.save_lora_weights(self.path("adapter"))
        self.assertCountEqual(os.listdir(self.path("adapter")), peft.FILES)
        config = json.load(open(self.path("adapter", peft.CONFIG)))
        self.assertEqual((config["r"], config["lora_alpha"], config["fan_in_fan_out"], config["modules_to_save"]),
                         (4, 4, True, ["multiple_choice_head"]))
        # PEFT refuses a layers_pattern without layers_to_transform (a bug of the first adapter files)
        self.assertEqual((config["layers_to_transform"], config["layers_pattern"]), (None, None))
        top = peft.config_of(TuningConfig(lora_rank=4, train_layers=1), model.cfg)
        self.assertEqual((top["layers_to_transform"], top["layers_pattern"]), ([1], "h"))
        fresh = tiny_choice()  # the same base (seed), a fresh head and adapters
        fresh.backbone.enable_lora(4)
        self.assertGreater(np.abs(probabilities(fresh) - predicted).max(), 1e-4)
        fresh.load_lora_weights(self.path("adapter"))
        self.assertAllClose(probabilities(fresh), predicted, atol=1e-5, rtol=0)
        model.save_lora_weights(self.path("adapter"))  # an earlier adapter folder is replaced
        open(self.path("adapter", "notes.txt"), "w").close()
        self.assert_one_line(Gpt1Error, "not an empty folder", model.save_lora_weights, self.path("adapter"))
        self.assertCountEqual(os.listdir(self.path("adapter")), peft.FILES + ("notes.txt",))

    def test_another_layout_base_or_head_is_refused_before_anything_is_assigned(self):
        source = tiny_choice()
        source.backbone.enable_lora(4)
        randomize_adapters(source.backbone)
        folder = self.path("adapter")
        source.save_lora_weights(folder)

        plain = tiny_choice()
        self.assert_one_line(ConfigError, r"no LoRA adapters: call backbone.enable_lora\(rank\) first",
                             plain.load_lora_weights, folder)
        self.assert_one_line(ConfigError, "no LoRA adapters", plain.save_lora_weights, self.path("other"))
        self.assertFalse(os.path.exists(self.path("other")))
        layouts = [((2,), {}, "rank 2 .alpha 2. on c_attn, c_proj of every layer"),
                   ((4,), {"lora_alpha": 8}, r"rank 4 \(alpha 8\)"),
                   ((4,), {"target_names": ("c_attn",)}, r"rank 4 \(alpha 4\) on c_attn of every layer"),
                   ((4,), {"train_layers": 1}, r"rank 4 \(alpha 4\) on c_attn, c_proj of the top 1 layers")]
        for args, kwargs, theirs in layouts:
            with self.subTest(theirs=theirs):
                model = tiny_choice()
                model.backbone.enable_lora(*args, **kwargs)
                self.assert_one_line(ConfigError, "its adapters are rank 4 .alpha 4. on c_attn, c_proj of every "
                                     f"layer, this model's {theirs}", model.load_lora_weights, folder)
        other_base = tiny_choice(seed=2)
        other_base.backbone.enable_lora(4)
        predicted = probabilities(other_base)
        self.assert_one_line(DataError, "trained on other base weights", other_base.load_lora_weights, folder)
        self.assertAllEqual(probabilities(other_base), predicted)  # nothing assigned
        backbone = tiny_backbone()
        backbone.enable_lora(4)  # before the task model is built: the same
        classifier = GPT1Classifier(backbone, 2, task_format="entailment")
        self.assert_one_line(DataError, "its head is .*multiple_choice.*, this model's .*entailment",
                             classifier.load_lora_weights, folder)
        self.assert_one_line(DataError, "not a folder", classifier.load_lora_weights, self.path("nowhere"))

    def test_enable_lora_under_a_mirrored_strategy(self):
        # the backbone built under 2 replicas (logical CPUs, a fresh process): the adapters are mirrored too
        out = self.path("mirrored.json")
        here = os.path.dirname(os.path.abspath(__file__))
        proc = subprocess.run([sys.executable, os.path.join(here, "lora_mirrored.py"), out], capture_output=True,
                              text=True, cwd=here)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        result = json.load(open(out))
        self.assertEqual((result["replicas"], result["updates"]), (2, 2))
        self.assertEqual(result["kinds"], ["MirroredVariable"])
        self.assertTrue(result["changed"])
        self.assertEqual([p for p in result["changed"] if not lora_trained(p)], [])


class ReadmeTest(TempDirTest):
    def test_the_lora_snippet_runs_as_written(self):
        """README's LoRA block ("Keras objects"), run on the HF fixture (a tiny GPT-1, 2 layers, 32 wide) in model/."""
        readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
        section = readme.split("### Keras objects", 1)[1].split("\n## ", 1)[0]
        block = next(b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "enable_lora" in b)
        self.assertLess(len(block.strip().splitlines()), 12)
        shutil.copytree(os.path.join(FIXTURES, "hf", "bare"), self.path("model"))
        cwd, scope = os.getcwd(), {}
        os.chdir(self.tmp)
        try:
            exec(compile(block, "README.md", "exec"), scope)
            again = GPT1MultipleChoice.from_preset("model/")
            again.backbone.enable_lora(8, lora_alpha=16)
            again.load_lora_weights("story-lora/")
            merged = keras.saving.load_model("story.keras")
        finally:
            os.chdir(cwd)
        choice, stories = scope["choice"], scope["stories"]
        self.assertEqual(choice.trainer.n_updates, 3)
        self.assertTrue(all(lora_trained(v.path) for v in choice.trainer.params))
        self.assertAllClose(probabilities(again, stories), probabilities(choice, stories), atol=1e-5, rtol=0)
        self.assertAllClose(merged(IDS).numpy(), choice.backbone(IDS).numpy(), atol=1e-5, rtol=0)


if __name__ == "__main__":
    tf.test.main()
