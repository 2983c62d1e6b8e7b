"""train.py on the paper's other datasets: outputs per format, bad input, --n_transfer, best params of another task."""
import json
import os
import shutil
import tempfile

import joblib
import numpy as np
import tensorflow as tf

from helpers import REPO, log_without_time, run_main_in
from gpt1_tf.weights import pretrained
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.errors import DataError
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.train import curves, logs

SAMPLES = os.path.join(REPO, "datasets")
TINY = ["--n_transfer", "-1", "--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--n_iter", "1",
        "--lr", "1e-3", "--lr_warmup", "0.1", "--n_gpu", "1", "--n_batch", "16"]


def copy_sample(root, name, keep=None):
    """A copy of a bundled sample under root/data; `keep` lines per .tsv/.jsonl file (header included)."""
    dst = os.path.join(root, "data")
    shutil.copytree(os.path.join(SAMPLES, name), dst)
    for folder, _, files in os.walk(dst):
        for f in files:
            if keep and f.endswith((".tsv", ".jsonl", ".csv")):
                path = os.path.join(folder, f)
                with open(path, encoding="utf-8") as fh:
                    lines = fh.read().splitlines(keepends=True)
                with open(path, "w", encoding="utf-8") as fh:
                    fh.writelines(lines[:keep])
    return dst


def edit_line(path, number, edit):
    """Replace line `number` (1-based) of a file by edit(line)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines[number - 1] = edit(lines[number - 1])
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


class TaskRunTest(tf.test.TestCase):
    """One short run per format on a cut of its bundled sample: log, best params, submission, analysis."""

    def run_task(self, dataset, sample, *extra, keep=81):
        root = tempfile.mkdtemp()
        data = copy_sample(root, sample, keep)
        code, lines = run_main_in(root, ["--dataset", dataset, "--data_dir", data, *TINY, "--submit", "--analysis",
                                         *extra])
        self.assertEqual(code, 0, lines)
        return root

    def check_outputs(self, root, desc, keys, submission, predictions):
        record = log_without_time(root, desc)[-1]
        self.assertEqual(list(record)[:4], ["n_epochs", "n_updates", "tr_cost", "va_cost"])
        self.assertEqual([k for k in record if k.startswith(("tr_", "va_")) and k[3:] != "cost"], keys)
        with open(os.path.join(root, "submission", submission)) as f:
            rows = f.read().splitlines()
        self.assertEqual(rows[0], "index\tprediction")
        for row in rows[1:]:
            self.assertRegex(row, r"^\d+\t" + predictions + "$")
        params = joblib.load(os.path.join(root, "save", desc, "best_params.jl"))
        self.assertLen(params, 15)
        return params, rows

    def test_classification_sst2(self):
        root = self.run_task("sst2", "sst2_sample")
        params, rows = self.check_outputs(root, "sst2", ["tr_acc", "va_acc"], "SST-2.tsv", "[01]")
        self.assertEqual(params[-2].shape, (16, 2))
        self.assertEqual([r.split("\t")[0] for r in rows[1:]], [str(i) for i in range(80)])  # test `index`

    def test_entailment_snli(self):
        root = self.run_task("snli", "snli_sample")
        params, _ = self.check_outputs(root, "snli", ["tr_acc", "va_acc"], "SNLI.tsv",
                                       "(entailment|neutral|contradiction)")
        self.assertEqual(params[-2].shape, (16, 3))

    def test_similarity_stsb_is_a_regression(self):
        root = self.run_task("stsb", "stsb_sample")
        params, _ = self.check_outputs(root, "stsb", ["tr_pearson", "va_pearson", "tr_spearman", "va_spearman"],
                                       "STS-B.tsv", r"-?\d+\.\d{3}")
        self.assertEqual(params[-2].shape, (16, 1))
        log = os.path.join(root, "log", "stsb.jsonl")  # --analysis drew both metrics of the real log
        self.assertEqual([p.ylabel for p in curves.curves_of(logs.read_evaluations(log), log).panels],
                         ["cost", "Pearson, Spearman (%)"])
        self.assertTrue(os.path.isfile(os.path.join(root, "log", "stsb.png")))

    def test_multiple_choice_race_by_group(self):
        root = self.run_task("race", "race_sample")
        params, _ = self.check_outputs(root, "race", ["tr_acc", "va_acc", "va_middle_acc", "va_high_acc"],
                                       "RACE.tsv", "[ABCD]")
        self.assertEqual(params[-2].shape, (16, 1))

    def test_generic_csv(self):
        root = self.run_task("generic", "generic_sample", "--task_format", "classification", "--text_columns", "text")
        self.check_outputs(root, "generic", ["tr_acc", "va_acc"], "generic.tsv", "(food|sports|weather)")


class MnliAndCarveOutTest(tf.test.TestCase):

    def test_mnli_evaluates_both_dev_sets_and_writes_both_submissions(self):
        root = tempfile.mkdtemp()
        data = os.path.join(root, "data", "MNLI")
        os.makedirs(data)
        rows = [("a man sleeps", "a man is asleep", "entailment"), ("a dog runs", "a cat sits", "neutral"),
                ("it rains", "it is dry", "contradiction")]
        head = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2"
        for split, n in (("train", 24), ("dev_matched", 6), ("dev_mismatched", 9), ("test_matched", 4),
                         ("test_mismatched", 5)):
            lines = [head + ("" if split.startswith("test") else "\tlabel1\tgold_label")]
            for i in range(n):
                a, b, label = rows[i % 3]
                lines.append(f"{i}\t{i}\t{i}n\tfiction\t{a}\t{b}" + ("" if split.startswith("test") else
                                                                        f"\t{label}\t{label}"))
            with open(os.path.join(data, f"{split}.tsv"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        code, lines = run_main_in(root, ["--dataset", "mnli", "--data_dir", os.path.dirname(data), *TINY,
                                         "--n_batch", "8", "--submit", "--analysis"])
        self.assertEqual(code, 0, lines)
        record = log_without_time(root, "mnli")[-1]
        self.assertIn("dev_mismatched_acc", record)
        self.assertIn("dev_mismatched_cost", record)
        for name, n in (("MNLI-m.tsv", 4), ("MNLI-mm.tsv", 5)):
            with open(os.path.join(root, "submission", name)) as f:
                self.assertLen(f.read().splitlines(), 1 + n)

    def test_generic_without_a_dev_file_splits_n_valid_off_train(self):
        root = tempfile.mkdtemp()
        data = copy_sample(root, "generic_sample")
        os.remove(os.path.join(data, "dev.csv"))
        code, lines = run_main_in(root, ["--dataset", "generic", "--data_dir", data, *TINY, "--n_valid", "30",
                                         "--task_format", "classification", "--text_columns", "text"])
        self.assertEqual(code, 0, lines)
        header = log_without_time(root, "generic")[0]
        self.assertEqual(header["n_valid"], 30)
        from gpt1_tf.data import inputs as task_inputs
        examples = [object() for _ in range(100)]
        train, valid = task_inputs.carve_out(examples, 30, "train.csv")
        self.assertEqual((len(train), len(valid)), (70, 30))
        self.assertEqual(sorted(map(id, train + valid)), sorted(map(id, examples)))
        with self.assertRaisesRegex(DataError, "needs at least 32"):
            task_inputs.carve_out(examples[:31], 30, "train.csv")


class ResumeTest(tf.test.TestCase):

    def test_a_stopped_and_resumed_task_run_ends_as_the_uninterrupted_one(self):
        root = tempfile.mkdtemp()
        data = copy_sample(root, "stsb_sample", keep=41)
        flags = ["--dataset", "stsb", "--data_dir", data, *TINY, "--n_iter", "2", "--n_batch", "8", "--submit"]
        outputs = {}
        for name, runs in (("a", [[]]), ("b", [["--stop_after_updates", "3"], ["--resume"]])):
            os.makedirs(os.path.join(root, name))
            for extra in runs:
                code, lines = run_main_in(os.path.join(root, name), flags + extra)
                self.assertEqual(code, 0, lines)
            with open(os.path.join(root, name, "submission", "STS-B.tsv")) as f:
                outputs[name] = (log_without_time(os.path.join(root, name), "stsb"), f.read())
        self.assertEqual(outputs["a"], outputs["b"])
        self.assertIn("va_pearson", outputs["a"][0][-1])


class BadTaskInputTest(tf.test.TestCase):
    """One line naming the file and line, exit 1, nothing written."""

    def refused(self, dataset, sample, edit, *words, extra=()):
        root = tempfile.mkdtemp()
        data = copy_sample(root, sample, keep=41)
        edit(data)
        code, lines = run_main_in(root, ["--dataset", dataset, "--data_dir", data, *TINY, "--submit", *extra])
        self.assertEqual(code, 1, lines)
        lines = [l for l in lines if l and not l.startswith("warning:")]
        self.assertLen(lines, 1, lines)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(os.listdir(root), ["data"], "output written")

    def test_tsv_row_with_the_wrong_number_of_columns(self):
        self.refused("sst2", "sst2_sample", lambda d: edit_line(os.path.join(d, "dev.tsv"), 3, lambda l: l + "\textra"),
                     "dev.tsv:3:", "3 tab-separated fields, expected 2")

    def test_unknown_label(self):
        self.refused("sst2", "sst2_sample", lambda d: edit_line(os.path.join(d, "train.tsv"), 5,
                                                                 lambda l: l.rsplit("\t", 1)[0] + "\tpositive"),
                     "train.tsv:5:", "unknown label 'positive'")

    def test_empty_text(self):
        self.refused("stsb", "stsb_sample", lambda d: edit_line(
            os.path.join(d, "dev.tsv"), 4, lambda l: "\t".join(l.split("\t")[:7] + [" "] + l.split("\t")[8:])),
            "dev.tsv:4:", "empty text")

    def test_a_score_that_is_not_a_finite_number(self):
        self.refused("stsb", "stsb_sample", lambda d: edit_line(os.path.join(d, "dev.tsv"), 2,
                                                                 lambda l: l.rsplit("\t", 1)[0] + "\tnan"),
                     "dev.tsv:2:", "score 'nan' is not a finite number")

    def test_truncated_jsonl_line(self):
        self.refused("snli", "snli_sample", lambda d: edit_line(os.path.join(d, "snli_1.0_dev.jsonl"), 6,
                                                                 lambda l: l[:len(l) // 2]),
                     "snli_1.0_dev.jsonl:6:", "not valid JSON")

    def test_race_file_without_answers(self):
        def drop_answers(d):
            folder = os.path.join(d, "RACE", "dev", "high")
            path = os.path.join(folder, sorted(os.listdir(folder))[0])
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
            del obj["answers"]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(obj, f)
        self.refused("race", "race_sample", drop_answers, "RACE/dev/high/", "no 'answers' field")

    def test_test_file_missing(self):
        self.refused("sst2", "sst2_sample", lambda d: os.remove(os.path.join(d, "test.tsv")),
                     "test.tsv", "no such file")
        self.refused("generic", "generic_sample", lambda d: os.remove(os.path.join(d, "test.csv")),
                     "test.csv", "no such file", extra=("--task_format", "classification", "--text_columns", "text"))

    def test_generic_flags_where_they_do_not_belong(self):
        self.refused("sst2", "sst2_sample", lambda d: None, "--task_format", "only for --dataset generic",
                     extra=("--task_format", "classification"))
        self.refused("generic", "generic_sample", lambda d: None, "reads 1 text column(s)",
                     extra=("--task_format", "classification", "--text_columns", "text,label"))


class TransferTest(tf.test.TestCase):

    def test_n_transfer_loads_the_pretrained_body_under_a_task_head(self):
        root = tempfile.mkdtemp()
        data = copy_sample(root, "sst2_sample", keep=41)
        rng = np.random.RandomState(0)
        cfg = ModelConfig(n_ctx=8, n_embd=16, n_head=2, n_layer=1)
        shards = [rng.randn(512, 16).astype(np.float32) * 0.1, rng.randn(40478, 16).astype(np.float32) * 0.1]
        shards += [rng.randn(*s).astype(np.float32) * 0.1 for s in pretrained.expected_shapes(cfg)[1:-2]]
        pretrained.save_shards(shards, os.path.join(root, "model"))
        flags = [a for a in TINY if a not in ("--n_transfer", "-1")] + ["--lr", "1e-9"]
        code, lines = run_main_in(root, ["--dataset", "sst2", "--data_dir", data, *flags, "--n_transfer", "1",
                                         "--model_dir", os.path.join(root, "model"), "--submit"])
        self.assertEqual(code, 0, lines)
        params = joblib.load(os.path.join(root, "save", "sst2", "best_params.jl"))
        self.assertAllClose(params[0][:40478], shards[1], atol=1e-5)  # the token rows
        n_ctx = params[0].shape[0] - 40478 - 3
        self.assertAllClose(params[0][-n_ctx:], shards[0][:n_ctx], atol=1e-5)  # the position rows
        for a, b in zip(params[1:13], shards[2:]):  # layer 0
            self.assertAllClose(a, b, atol=1e-5)
        self.assertEqual(params[-2].shape, (16, 2))  # the task's own head, freshly initialised


class OtherTaskParamsTest(tf.test.TestCase):
    """A best_params.jl of ROCStories is refused by another task's model, whole: nothing half-loaded."""

    def test_refused_when_the_heads_differ(self):
        path = os.path.join(tempfile.mkdtemp(), "best_params.jl")
        roc = ModelConfig(n_vocab=40, n_ctx=8, n_embd=16, n_head=2, n_layer=1)
        pretrained.save_params(path, pretrained.get_params(TransformerModel(roc)), roc)
        self.assertTrue(os.path.exists(pretrained.head_path(path)))
        for task_format, n_classes, words in (("classification", 2, "clf/w has shape (16, 1)"),
                                              ("similarity", 0, "multiple_choice head"),
                                              ("multiple_choice", 0, None)):
            cfg = ModelConfig(n_vocab=40, n_ctx=8, n_embd=16, n_head=2, n_layer=1, task_format=task_format,
                              n_classes=n_classes)
            model = TransformerModel(cfg)
            before = pretrained.get_params(model)
            with self.subTest(task_format=task_format, n_classes=n_classes):
                if words is None:  # the same head: loads
                    pretrained.set_params(model, pretrained.load_params(path, cfg))
                    continue
                with self.assertRaisesRegex(DataError, "the heads differ") as ctx:
                    pretrained.set_params(model, pretrained.load_params(path, cfg))
                self.assertIn(words, str(ctx.exception))
                for a, b in zip(before, pretrained.get_params(model)):
                    self.assertAllEqual(a, b)  # nothing loaded


if __name__ == "__main__":
    tf.test.main()
