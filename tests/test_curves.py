"""Learning curves as a PNG (gpt1_tf.train.curves; train.py --analysis, python analysis.py LOG)."""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import unittest

from helpers import REPO
from gpt1_tf.cli import analysis as analysis_cli
from gpt1_tf.errors import DataError
from gpt1_tf.train import curves, logs
from gpt1_tf.train.finetune import draw_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fine_tuning_log(folder, name="rocstories.jsonl"):
    """A train.py log through its own writer: three evaluations (one valid cost null), a skipped update."""
    path = os.path.join(folder, name)
    logger = logs.ResultLogger(path, desc="rocstories", dataset="rocstories", n_iter=3)
    logger.evaluation(n_epochs=1, n_updates=12, tr_cost=0.646, va_cost=0.680, tr_acc=80.0, va_acc=55.0,
                      tokens_per_s=700.0, mfu=0.06)
    logger.skipped_update(n_epochs=1, n_updates=13, n_skipped=1)
    logger.evaluation(n_epochs=2, n_updates=24, tr_cost=0.60, va_cost=float("nan"), tr_acc=85.0, va_acc=60.0)
    logger.evaluation(n_epochs=3, n_updates=36, tr_cost=0.55, va_cost=0.65, tr_acc=90.0, va_acc=65.0)
    return path


def pretraining_log(folder, held_out=True):
    """A pretrain.py log, as pretraining.Run.evaluate writes it; held_out=False: --valid_fraction 0 (nulls)."""
    path = os.path.join(folder, "pretrain.jsonl")
    logger = logs.ResultLogger(path, inputs=["corpus/*.txt"], desc="pretrain", eval_every=100)
    for n, tr, va in ((0, None, 6.0), (100, 5.0, 4.5), (200, 4.0, 3.5)):
        va = va if held_out else None
        logger.evaluation(n_epochs=n // 100, n_updates=n, tr_cost=tr, va_cost=va,
                          va_ppl=None if va is None else 2.0 ** va, tokens_per_s=None, mfu=None)
    return path


def write_lines(folder, *lines, name="run.jsonl"):
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def drawn(panels):
    """{panel's ylabel: {series label: (x, y)}} of a Curves' panels."""
    return {p.ylabel: {s.label: (s.x, s.y) for s in p.series} for p in panels}


class CurvesDataTest(unittest.TestCase):
    """What is drawn equals what the log says, null values left out."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def test_fine_tuning_cost_and_accuracy_per_evaluation(self):
        path = fine_tuning_log(self.dir)
        got = curves.curves_of(logs.read_evaluations(path), path)
        self.assertEqual(got.title, "rocstories.jsonl (fine-tuning)")
        self.assertEqual(drawn(got.panels), {
            "cost": {"train": ((12, 24, 36), (0.646, 0.60, 0.55)), "valid": ((12, 36), (0.680, 0.65))},
            "Accuracy (%)": {"train": ((12, 24, 36), (80.0, 85.0, 90.0)), "valid": ((12, 24, 36), (55.0, 60.0, 65.0))},
        })

    def test_similarity_log_draws_each_metric_it_records(self):
        path = os.path.join(self.dir, "stsb.jsonl")
        logger = logs.ResultLogger(path, desc="stsb")
        logger.evaluation(n_epochs=1, n_updates=5, tr_cost=1.5, va_cost=1.7, tr_pearson=10.0, va_pearson=8.0,
                          tr_spearman=11.0, va_spearman=None)
        got = drawn(curves.curves_of(logs.read_evaluations(path), path).panels)
        self.assertEqual(got["Pearson, Spearman (%)"], {"train Pearson": ((5,), (10.0,)), "valid Pearson": ((5,), (8.0,)),
                                                       "train Spearman": ((5,), (11.0,))})

    def test_pretraining_loss_and_perplexity(self):
        path = pretraining_log(self.dir)
        got = curves.curves_of(logs.read_evaluations(path), path)
        self.assertEqual(got.title, "pretrain.jsonl (pretraining)")
        self.assertEqual(drawn(got.panels), {
            "loss": {"train": ((100, 200), (5.0, 4.0)), "held-out": ((0, 100, 200), (6.0, 4.5, 3.5))},
            "held-out perplexity": {"held-out": ((0, 100, 200), (64.0, 2.0 ** 4.5, 2.0 ** 3.5))},
        })
        self.assertEqual([p.log_y for p in got.panels], [False, True])

    def test_pretraining_without_held_out_data_draws_the_train_loss_only(self):
        path = pretraining_log(self.dir, held_out=False)
        got = curves.curves_of(logs.read_evaluations(path), path)
        self.assertEqual(drawn(got.panels), {"loss": {"train": ((100, 200), (5.0, 4.0))}})

    def test_a_value_that_is_not_a_number_is_named(self):
        path = write_lines(self.dir, '{"desc": "x"}', '{"n_updates": 4, "tr_cost": "low", "va_cost": 1.0, '
                                                      '"tr_acc": 1.0, "va_acc": 2.0}')
        with self.assertRaisesRegex(DataError, r"run\.jsonl:2: 'tr_cost' is 'low', not a number"):
            curves.curves_of(logs.read_evaluations(path), path)


class PictureTest(unittest.TestCase):
    """The PNG: written where asked, a PNG of the style's size."""

    def check_png(self, path, style):
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), PNG_SIGNATURE)
        import matplotlib.image
        height, width = matplotlib.image.imread(path).shape[:2]
        self.assertEqual((width, height), (round(style.width * style.dpi), round(style.height * style.dpi)))

    def test_fine_tuning_and_pretraining_pictures(self):
        folder = tempfile.mkdtemp()
        for log in (fine_tuning_log(folder), pretraining_log(folder), pretraining_log(tempfile.mkdtemp(), False)):
            png = curves.write_curves(log)
            self.assertEqual(png, log[:-len(".jsonl")] + ".png")
            self.check_png(png, curves.Style())

    def test_another_size_and_place(self):
        log, png = fine_tuning_log(tempfile.mkdtemp()), os.path.join(tempfile.mkdtemp(), "out", "c.png")
        style = curves.Style(width=4, height=3, dpi=50)
        self.assertEqual(curves.write_curves(log, png, style), png)
        self.check_png(png, style)


class AnalysisProgramTest(unittest.TestCase):
    """python analysis.py LOG: `wrote PATH`, or one line naming the file (and line), exit 1, no picture."""

    def run_main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = analysis_cli.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def test_writes_the_picture_beside_the_log(self):
        log = pretraining_log(tempfile.mkdtemp())
        self.assertEqual(self.run_main(log), (0, f"wrote {log[:-6]}.png\n", ""))

    def test_bad_logs_are_refused_in_one_line_without_a_picture(self):
        folder = tempfile.mkdtemp()
        eval_ft = '{"n_epochs": 1, "n_updates": 4, "tr_cost": 1.0, "va_cost": 1.0, "tr_acc": 50.0, "va_acc": 50.0}'
        eval_pt = '{"n_epochs": 1, "n_updates": 8, "tr_cost": 1.0, "va_cost": 1.0, "va_ppl": 2.7}'
        cases = {
            "missing.jsonl": (None, r"missing\.jsonl: cannot read the training log"),
            "not_json.jsonl": (('{"desc": "x"}', eval_ft, "{not json"), r"not_json\.jsonl:3: not a JSON object"),
            "neither.jsonl": (('{"desc": "x"}', '{"n_updates": 4, "tr_cost": 1.0, "va_cost": 1.0}'),
                              r"neither\.jsonl:2: neither a fine-tuning record .* nor a pretraining one"),
            "mixed.jsonl": (('{"desc": "x"}', eval_ft, eval_pt), r"mixed\.jsonl:3: a pretraining record in a fine-tuning log"),
            "unknown.jsonl": (('{"desc": "x"}', '{"loss": 1}'), r"unknown\.jsonl:2: not a record of a known kind"),
            "empty.jsonl": (("",), r"empty\.jsonl: no evaluation yet"),
            "all_null.jsonl": (('{"desc": "x"}', '{"n_epochs": 0, "n_updates": 0, "tr_cost": null, "va_cost": null, '
                                                 '"va_ppl": null}'), r"all_null\.jsonl: no evaluation value yet"),
            "no_eval.jsonl": (('{"desc": "x"}', '{"n_epochs": 0, "n_updates": 3, "skipped_update": 4, "n_skipped": 1}'),
                              r"no_eval\.jsonl: no evaluation yet: no learning curves to draw"),
        }
        for name, (lines, message) in cases.items():
            with self.subTest(name):
                log = os.path.join(folder, name) if lines is None else write_lines(folder, *lines, name=name)
                code, out, err = self.run_main(log)
                self.assertEqual((code, out), (1, ""))
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertRegex(err, "^error: .*" + message)
                self.assertFalse(os.path.exists(log[:-6] + ".png"))
        self.assertEqual([f for f in os.listdir(folder) if not f.endswith(".jsonl")], [])  # no temporary file either

    def test_the_picture_never_replaces_the_log(self):
        log = fine_tuning_log(tempfile.mkdtemp(), name="run.png")
        code, _, err = self.run_main(log)
        self.assertEqual(code, 1)
        self.assertIn("the picture would replace the log", err)

    def test_the_top_level_program(self):
        log = fine_tuning_log(tempfile.mkdtemp())
        png = os.path.join(os.path.dirname(log), "curves.png")
        proc = subprocess.run([sys.executable, os.path.join(REPO, "analysis.py"), log, "--out", png],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
        self.assertEqual((proc.returncode, proc.stdout, proc.stderr), (0, f"wrote {png}\n", ""))
        self.assertTrue(os.path.isfile(png))


class TrainAnalysisTest(unittest.TestCase):

    def test_a_picture_never_fails_the_run(self):
        log = write_lines(tempfile.mkdtemp(), '{"desc": "x"}', name="x.jsonl")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            draw_curves(log)  # returns: no exception
        self.assertEqual(out.getvalue(), f"learning curves not drawn: {log}: no evaluation yet: no learning curves to draw\n")
        self.assertFalse(os.path.exists(log[:-6] + ".png"))

    def test_the_package_does_not_import_matplotlib(self):
        code = ("import sys, gpt1_tf, gpt1_tf.train.curves, gpt1_tf.train.finetune, gpt1_tf.cli.train, "
                "gpt1_tf.cli.analysis; print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
        self.assertEqual((proc.returncode, proc.stdout), (0, "[]\n"), proc.stderr)

    def test_readme_says_what_analysis_writes(self):
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        for said in ("python analysis.py log/pretrain.jsonl", "`log/rocstories.png`"):
            self.assertTrue(said in readme, said)
        self.assertIn("![", readme.split("docs/learning_curves.png")[0][-200:])  # shown, not only named
        self.assertLess(os.path.getsize(os.path.join(REPO, "docs", "learning_curves.png")), 100_000)


if __name__ == "__main__":
    unittest.main()
