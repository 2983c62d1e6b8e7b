"""train.py's command line: flags refused up front, output locations, interrupts, the run lock, start-up noise.

Each test here fails on the version before its fix (a traceback, a late failure, or a false message).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
from unittest import mock

import tensorflow as tf

from helpers import REPO, SAMPLE_DIR, TINY, ctrl_c_after_first_update, log_without_time, run_main_in, run_train, write_tiny_cloze
from gpt1_tf.train import finetune
from gpt1_tf.files import FolderLock

# the bundled sample with a tiny model (the issue's $P)
SAMPLE = ["--dataset", "rocstories", "--data_dir", SAMPLE_DIR, "--n_valid", "20", "--n_transfer", "-1",
          "--n_layer", "1", "--n_embd", "16", "--n_head", "2"]
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|oneDNN|cpu_feature_guard", re.M)


class RefusedUpFrontTest(tf.test.TestCase):
    """Impossible flags and unusable output locations: one line, exit 1, nothing written, no training."""

    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.data = write_tiny_cloze(os.path.join(self.root, "data"))
        self.flags = TINY + ["--data_dir", self.data, "--n_gpu", "1", "--n_batch", "4", "--submit"]

    def assert_refused(self, args, *words, written=()):
        code, lines = run_main_in(self.root, args)
        self.assertEqual(code, 1, lines)
        self.assertLen(lines, 1, lines)
        self.assertTrue(lines[0].startswith("error: "), lines)
        for w in words:
            self.assertIn(w, lines[0])
        present = sorted(set(os.listdir(self.root)) - {"data", *written})
        self.assertEqual(present, [], "output written")
        return lines[0]

    def test_seed_out_of_range(self):
        for seed in ("-1", "5000000000"):
            with self.subTest(seed=seed):
                self.assert_refused(self.flags + ["--seed", seed], "--seed", seed)

    def test_non_finite_floats(self):
        # every float flag of train.py's parser (argparse's float() takes 'nan' and 'inf')
        from gpt1_tf.cli import train as cli
        floats = [a.option_strings[0] for a in cli.build_parser()._actions if a.type is float]
        self.assertContainsSubset(["--lr", "--l2", "--lm_coef", "--b1", "--e", "--max_grad_norm", "--clf_pdrop"], floats)
        for flag in floats:
            for value in ("nan", "inf", "-inf"):
                with self.subTest(flag=flag, value=value):
                    self.assert_refused(self.flags + [f"{flag}={value}"], f"error: {flag} must be a finite number")

    def test_n_transfer_below_minus_one(self):
        self.assert_refused(self.flags + ["--n_transfer", "-2"], "--n_transfer must be -1", "got -2")

    def test_stop_after_updates_below_one(self):
        for n in ("0", "-3"):
            with self.subTest(n=n):
                self.assert_refused(self.flags + ["--stop_after_updates", n], "--stop_after_updates")

    def test_batch_larger_than_the_training_set(self):
        # "no full batch", not a memory estimate of thousands of GiB
        line = self.assert_refused(TINY + ["--data_dir", self.data, "--n_gpu", "1", "--n_batch", "10000000"],
                                   "no full batch")
        self.assertNotIn("GiB", line)

    def test_output_locations_that_are_files(self):
        for flag, name in (("--submission_dir", "sub"), ("--log_dir", "logs"), ("--save_dir", "saves")):
            with self.subTest(flag=flag):
                path = os.path.join(self.root, name)
                with open(path, "w") as f:
                    f.write("a file")
                self.assert_refused(self.flags + [flag, path], path, flag, written=(name,))
                os.remove(path)

    def test_output_folder_under_a_file(self):
        path = os.path.join(self.root, "sub")
        with open(path, "w") as f:
            f.write("a file")
        self.assert_refused(self.flags + ["--submission_dir", os.path.join(path, "deeper")], path, written=("sub",))


class InterruptTest(tf.test.TestCase):
    """Ctrl-C: a checkpoint at once and a true message; --resume then goes on."""

    def test_interrupt_checkpoints_and_resume_continues(self):
        root = tempfile.mkdtemp()
        flags = SAMPLE + ["--n_gpu", "1", "--n_batch", "4", "--n_iter", "2", "--save_every", "1000"]
        update = ctrl_c_after_first_update(self, "train.py", flags, root, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
        resumed = run_train(root, *flags, "--resume")
        self.assertIn(f"resumed at update {update}", resumed.stdout)
        evaluations = [r for r in log_without_time(root)[1:] if "va_acc" in r]
        self.assertEqual([r["n_epochs"] for r in evaluations], [1, 2])

    def test_interrupt_before_any_checkpoint_says_so(self):
        root = tempfile.mkdtemp()
        with mock.patch.object(finetune, "train", side_effect=KeyboardInterrupt):
            code, lines = run_main_in(root, SAMPLE)
        self.assertEqual(code, 130)
        self.assertEqual(lines, ["interrupted before the first checkpoint: nothing to resume; "
                                 "run again without --resume"])


class RunLockTest(tf.test.TestCase):
    """Two runs into one --save_dir/--desc: the second is refused while the first holds the folder."""

    def test_second_run_is_refused(self):
        root = tempfile.mkdtemp()
        data = write_tiny_cloze(os.path.join(root, "data"))
        flags = TINY + ["--data_dir", data, "--n_gpu", "1", "--n_batch", "4"]
        with FolderLock(os.path.join(root, "save", "rocstories")):  # as a running train.py holds it
            code, lines = run_main_in(root, flags)
        self.assertEqual(code, 1, lines)
        self.assertLen(lines, 1, lines)
        self.assertRegex(lines[0], rf"^error: .*save/rocstories: another run \(pid {os.getpid()}\) is using this folder")
        self.assertFalse(os.path.exists(os.path.join(root, "log")))

    def test_a_killed_holder_leaves_no_stale_lock(self):
        folder = tempfile.mkdtemp()
        code = ("import os, signal, sys; sys.path.insert(0, sys.argv[2]); from gpt1_tf.files import FolderLock; "
                "FolderLock(sys.argv[1]).acquire(); print('held', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
        proc = subprocess.run([sys.executable, "-c", code, folder, REPO], capture_output=True, text=True, timeout=60)
        self.assertEqual((proc.returncode, proc.stdout), (-signal.SIGKILL, "held\n"))
        with FolderLock(folder):  # acquired: the kernel dropped the dead process's lock
            pass


class ResumeFlagsTest(tf.test.TestCase):
    """--resume with other flags names the flag; a path spelt differently is the same path."""

    def test_flags(self):
        root = tempfile.mkdtemp()
        data = write_tiny_cloze(os.path.join(root, "data"))
        flags = TINY + ["--data_dir", data, "--n_gpu", "1", "--n_batch", "4", "--n_iter", "1"]
        run_train(root, *flags, "--stop_after_updates", "1")
        code, lines = run_main_in(root, [a if a != data else data + "/" for a in flags] + ["--resume", "--lr", "0.002"])
        self.assertEqual(code, 1, lines)
        self.assertLen(lines, 1, lines)
        self.assertIn("--lr 0.002 (checkpoint: 0.001)", lines[0])
        self.assertNotIn("data_dir", lines[0])  # data/ and data are the same folder
        code, lines = run_main_in(root, [a if a != data else data + "/" for a in flags] + ["--resume"])
        self.assertEqual(code, 0, lines)


class XlaTowersTest(tf.test.TestCase):
    """--xla with several towers trains (each tower compiles on its own device)."""

    def test_xla_two_towers(self):
        root = tempfile.mkdtemp()
        proc = run_train(root, *SAMPLE, "--n_gpu", "2", "--n_batch", "4", "--n_iter", "1", "--xla")
        self.assertIn("towers: 2", proc.stdout)
        self.assertRegex(proc.stdout, r"(?m)^1 12 ")


class StartupNoiseTest(tf.test.TestCase):
    """TensorFlow's C++ start-up lines are hidden by default; TF_CPP_MIN_LOG_LEVEL brings them back."""

    def run_bad_run(self, env):
        # the memory check imports TensorFlow and probes for GPUs, then refuses: TF's start-up, no training
        env = dict({k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, PYTHONPATH=REPO, **env)
        args = SAMPLE + ["--n_gpu", "1", "--n_batch", "4", "--n_embd", "65536", "--n_head", "1", "--n_layer", "12"]
        return subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *args], cwd=tempfile.mkdtemp(),
                              env=env, capture_output=True, text=True, timeout=300)

    def test_quiet_by_default_and_back_on_request(self):
        quiet = self.run_bad_run({})
        self.assertEqual(quiet.returncode, 1, quiet.stderr)
        lines = [l.strip() for l in quiet.stderr.replace("\r", "\n").splitlines() if l.strip() and "it/s" not in l]
        self.assertLen(lines, 1, quiet.stderr)  # the error line alone (besides the encoder's progress bar)
        self.assertRegex(lines[0], r"^error: this run needs about")
        self.assertNotRegex(quiet.stderr, TF_LOG_LINE)
        plain = subprocess.run([sys.executable, "-c", "import tensorflow as tf; tf.config.list_physical_devices('GPU')"],
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0"), capture_output=True, text=True, timeout=300)
        if TF_LOG_LINE.search(plain.stderr):  # this machine's TensorFlow prints start-up lines: they come back
            loud = self.run_bad_run({"TF_CPP_MIN_LOG_LEVEL": "0"})
            self.assertRegex(loud.stderr, TF_LOG_LINE)


if __name__ == "__main__":
    tf.test.main()
