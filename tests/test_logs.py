"""The run log's record kinds have one owner (gpt1_tf.train.logs): its writer and every reader agree."""
import json
import os
import tempfile
import unittest

from helpers import SAMPLE_DIR, run_train
from gpt1_tf.train import logs
from gpt1_tf.errors import DataError


class RecordKindsTest(unittest.TestCase):

    def test_every_kind_the_logger_writes_is_read(self):
        path = os.path.join(tempfile.mkdtemp(), "run.jsonl")
        logger = logs.ResultLogger(path, desc="run", n_iter=1)
        logger.loss_scale_overflow(n_epochs=0, n_updates=0, loss_scale=16384.0)
        logger.skipped_update(n_epochs=0, n_updates=3, n_skipped=1)
        logger.evaluation(n_epochs=1, n_updates=4, tr_cost=0.5, va_cost=0.6, tr_acc=75.0, va_acc=70.0)
        with open(path) as f:
            kinds = [logs.record_kind(json.loads(line)) for line in f][1:]
        self.assertEqual(kinds, [logs.LOSS_SCALE_OVERFLOW, logs.SKIPPED_UPDATE, logs.EVALUATION])
        self.assertEqual([r["va_acc"] for r in logs.read_log(path)], [70.0])

    def test_an_unknown_record_is_named(self):
        path = os.path.join(tempfile.mkdtemp(), "run.jsonl")
        with open(path, "w") as f:
            f.write('{"desc": "run"}\n{"n_updates": 3, "something_else": 1}\n')
        with self.assertRaisesRegex(DataError, r"run\.jsonl:2: not a record of a known kind"):
            logs.read_log(path)


class Float16AnalysisTest(unittest.TestCase):
    """The issue's run: float16 loss-scale overflows in the log, then --analysis reads the log."""

    def test_float16_overflow_then_analysis(self):
        root = tempfile.mkdtemp()
        proc = run_train(root, "--dataset", "rocstories", "--data_dir", SAMPLE_DIR, "--n_valid", "20", "--n_transfer",
                         "-1", "--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--n_gpu", "1", "--n_batch", "4",
                         "--n_iter", "1", "--lr", "1e-4", "--lm_coef", "1000", "--mixed_precision", "float16",
                         "--submit", "--analysis")
        self.assertIn("ROCStories Test Accuracy", proc.stdout)
        with open(os.path.join(root, "log", "rocstories.jsonl")) as f:
            kinds = [logs.record_kind(json.loads(line)) for line in f][1:]
        self.assertIn(logs.LOSS_SCALE_OVERFLOW, kinds)  # the case the analysis used to choke on


if __name__ == "__main__":
    unittest.main()
