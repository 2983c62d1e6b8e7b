"""The paper's metrics per task, against independent NumPy formulas."""
import unittest

import numpy as np

from gpt1_tf import metrics


class MetricsTest(unittest.TestCase):

    def test_each_task_reports_the_papers_metric_first(self):
        self.assertEqual(metrics.metric_names("cola"), ("mcc",))
        self.assertEqual(metrics.metric_names("mrpc"), ("f1", "acc"))
        self.assertEqual(metrics.metric_names("qqp"), ("f1", "acc"))
        self.assertEqual(metrics.metric_names("stsb", regression=True), ("pearson", "spearman"))
        for task in ("sst2", "mnli", "qnli", "rte", "wnli", "snli", "scitail", "race", "rocstories", "generic"):
            self.assertEqual(metrics.metric_names(task), ("acc",))

    def test_values_in_percent(self):
        rng = np.random.RandomState(0)
        y, p = rng.randint(0, 2, 200), rng.randint(0, 2, 200)
        tp, tn = np.sum((y == 1) & (p == 1)), np.sum((y == 0) & (p == 0))
        fp, fn = np.sum((y == 0) & (p == 1)), np.sum((y == 1) & (p == 0))
        mcc = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        got = metrics.scores(("acc", "f1", "mcc"), y, p)
        self.assertAlmostEqual(got["acc"], 100 * np.mean(y == p))
        self.assertAlmostEqual(got["f1"], 100 * 2 * tp / (2 * tp + fp + fn))
        self.assertAlmostEqual(got["mcc"], 100 * mcc)
        a, b = rng.normal(size=50), rng.normal(size=50)
        ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731 (no ties in continuous draws)
        got = metrics.scores(("pearson", "spearman"), a, a + b)
        self.assertAlmostEqual(got["pearson"], 100 * np.corrcoef(a, a + b)[0, 1])
        self.assertAlmostEqual(got["spearman"], 100 * np.corrcoef(ranks(a), ranks(a + b))[0, 1])

    def test_a_constant_prediction_correlates_with_nothing(self):
        self.assertEqual(metrics.score("pearson", [1.0, 2.0, 3.0], [2.0, 2.0, 2.0]), 0.0)

    def test_predictions(self):
        logits = np.array([[0.1, 0.9], [2.0, -1.0]])
        self.assertEqual(list(metrics.predictions(logits)), [1, 0])
        self.assertEqual(list(metrics.predictions(np.array([[3.5], [1.25]]), regression=True)), [3.5, 1.25])


if __name__ == "__main__":
    unittest.main()
