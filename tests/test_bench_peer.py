"""The bench's peer figure (benchmarks/bench_peer.py, benchmarks/peer_hf_worker.py) without torch or network.

The batch-to-HF mapping is checked on a hand-built batch against values worked out by hand; the
venv and subprocess plumbing against fake interpreters (shell scripts standing in for a venv's
python) that succeed, fail or print garbage.
"""
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np

from helpers import REPO
from gpt1_tf.network.tokens import position_id

# benchmarks/ is a folder of scripts beside the package, not an installed package
BENCHMARKS = os.path.join(REPO, "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import bench_peer  # noqa: E402
from peer_hf_worker import IGNORE, hf_inputs  # noqa: E402

N_VOCAB = 10  # _start_ 10, _delimiter_ 11, _classify_ 12
N_CTX = 6
PEER_ARGS = dict(steps=3, warmup=1, n_layer=2, n_embd=64, n_head=4, n_vocab=500, pdrop=0.1, lm_coef=0.5,
                 threads=2)


def hand_batch():
    """Two stories: padding, a hole in a mask, two `_classify_` in a sequence, a sequence without one."""
    tokens = np.array([[[10, 3, 11, 4, 12, 0],      # _classify_ at 4, then padding
                        [10, 3, 11, 5, 6, 12]],     # _classify_ at 5, no padding
                       [[10, 7, 12, 8, 12, 0],      # _classify_ at 2 and at 4: the first counts
                        [10, 7, 11, 9, 0, 0]]])     # no _classify_
    M = np.array([[[1, 1, 1, 1, 1, 0],
                   [1, 1, 1, 1, 1, 1]],
                  [[1, 1, 0, 1, 1, 0],              # a hole at 2
                   [1, 1, 1, 1, 0, 0]]], np.float32)
    X = np.stack([tokens, np.broadcast_to(position_id(N_VOCAB, np.arange(N_CTX)), tokens.shape)], -1).astype(np.int32)
    return X, M, np.array([1, 0], np.int32)


class HfInputsTest(unittest.TestCase):

    def test_hand_built_batch(self):
        X, M, Y = hand_batch()
        got = hf_inputs(X, M, Y, N_VOCAB)
        self.assertEqual(set(got), {"input_ids", "mc_token_ids", "labels", "mc_labels"})
        for k, v in got.items():
            self.assertEqual(v.dtype, np.int64, k)
        np.testing.assert_array_equal(got["input_ids"], X[..., 0])
        # the first _classify_ of each sequence; none: 0, where our model pools too
        np.testing.assert_array_equal(got["mc_token_ids"], [[4, 5], [2, 0]])
        # the token where M counts, except position 0 (never a target); HF's shift then scores
        # labels[t + 1] at position t, as our LM loss scores token t + 1 weighted by M[t + 1]
        _ = IGNORE  # shorthand for the table below
        np.testing.assert_array_equal(got["labels"], [[[_, 3, 11, 4, 12, _],
                                                       [_, 3, 11, 5, 6, 12]],
                                                      [[_, 7, _, 8, 12, _],
                                                       [_, 7, 11, 9, _, _]]])
        np.testing.assert_array_equal(got["mc_labels"], [1, 0])

    def test_labels_do_not_alias_the_batch(self):
        X, M, Y = hand_batch()
        before = X.copy()
        hf_inputs(X, M, Y, N_VOCAB)
        np.testing.assert_array_equal(X, before)

    def test_non_consecutive_positions_are_refused(self):
        X, M, Y = hand_batch()
        X[1, 0, 3, 1] += 1
        with self.assertRaisesRegex(ValueError, "not consecutive"):
            hf_inputs(X, M, Y, N_VOCAB)


def fake_venv(root, body):
    """A venv folder whose python is a shell script: `body` runs with the arguments in "$@"."""
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    python = os.path.join(bindir, "python")
    with open(python, "w") as f:
        f.write("#!/bin/sh\n" + textwrap.dedent(body))
    os.chmod(python, os.stat(python).st_mode | stat.S_IEXEC)
    return python


@unittest.skipIf(os.name == "nt", "fake interpreters are shell scripts")
class PlumbingTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.venv = os.path.join(self.dir.name, "venv")
        self.calls = os.path.join(self.dir.name, "calls")  # the fake python logs its arguments here

    def logged_calls(self):
        with open(self.calls) as f:
            return [line.split("\x1f")[:-1] for line in f.read().splitlines()]

    def log_args(self):
        return f"printf '%s\\037' \"$@\" >> {self.calls}; echo >> {self.calls}\n"

    def test_run_peer_returns_the_last_json_line(self):
        fake_venv(self.venv, self.log_args() + """\
            echo "some chatter"
            echo '{"peer_train_step_s": 1.5, "torch_version": "x"}'
        """)
        got = bench_peer.run_peer("b.npz", venv=self.venv, **PEER_ARGS)
        self.assertEqual(got, {"peer_train_step_s": 1.5, "torch_version": "x"})
        (argv,) = self.logged_calls()
        self.assertEqual(argv[:4], ["-I", bench_peer.WORKER, "--batches", os.path.abspath("b.npz")])
        options = dict(zip(argv[4::2], argv[5::2]))
        self.assertEqual(options, {f"--{k}": str(v) for k, v in PEER_ARGS.items()})

    def test_run_peer_failure_names_the_problem(self):
        fake_venv(self.venv, """\
            echo "Traceback (most recent call last):" >&2
            echo "ModuleNotFoundError: No module named 'torch'" >&2
            exit 1
        """)
        with self.assertRaises(RuntimeError) as cm:
            bench_peer.run_peer("b.npz", venv=self.venv, **PEER_ARGS)
        message = str(cm.exception)
        self.assertIn("peer_hf_worker.py failed (exit 1)", message)
        self.assertIn("No module named 'torch'", message)

    def test_run_peer_without_json(self):
        fake_venv(self.venv, "echo 'not json'\n")
        with self.assertRaisesRegex(RuntimeError, "no JSON line last: not json"):
            bench_peer.run_peer("b.npz", venv=self.venv, **PEER_ARGS)

    def test_run_peer_without_venv(self):
        with self.assertRaisesRegex(RuntimeError, f"no venv at {self.venv}.*ensure_peer_venv"):
            bench_peer.run_peer("b.npz", venv=self.venv, **PEER_ARGS)

    def test_ready_venv_is_left_alone(self):
        python = fake_venv(self.venv, self.log_args())  # every command succeeds: the packages import
        self.assertEqual(bench_peer.ensure_peer_venv(self.venv), python)
        (argv,) = self.logged_calls()  # the import check only: no pip
        self.assertEqual(argv[:2], ["-I", "-c"])
        self.assertIn(f"torch.__version__.split('+')[0] == '{bench_peer.TORCH_VERSION}'", argv[2])

    def test_pip_failure_names_the_problem(self):
        fake_venv(self.venv, self.log_args() + """\
            echo "Collecting torch==2.13.0" >&2
            echo "ERROR: No matching distribution found for torch==2.13.0" >&2
            exit 1
        """)
        with self.assertRaises(RuntimeError) as cm:
            bench_peer.ensure_peer_venv(self.venv)
        self.assertEqual(str(cm.exception), f"peer venv: pip install torch==2.13.0 transformers numpy into "
                         f"{self.venv} failed (exit 1): ERROR: No matching distribution found for torch==2.13.0")
        _check, pip = self.logged_calls()
        self.assertEqual(pip, ["-m", "pip", "install", "--disable-pip-version-check", "-q",
                               "torch==2.13.0", "transformers", "numpy"])

    def test_venv_creation_failure_names_the_problem(self):
        blocker = os.path.join(self.dir.name, "a_file")
        open(blocker, "w").close()  # `python -m venv` cannot make a venv inside a file
        with self.assertRaisesRegex(RuntimeError, f"peer venv: creating {blocker}/venv .* failed \\(exit 1\\): "):
            bench_peer.ensure_peer_venv(os.path.join(blocker, "venv"))

    def test_no_tensorflow_or_torch_at_import(self):
        code = (f"import sys; sys.path.insert(0, {BENCHMARKS!r}); import bench_peer, peer_hf_worker; "
                "print(sorted(m for m in ('tensorflow', 'torch', 'transformers') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip(), "[]")


if __name__ == "__main__":
    unittest.main()
