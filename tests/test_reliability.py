"""Reliability of train.py: SIGKILLed runs resume to the same result, corrupt checkpoints fall back,
numeric blow-ups stop or skip cleanly, and a run that cannot fit in memory is refused up front.

Subprocess runs (towers need a fresh TensorFlow) go in two lanes, two at a time on 2 cores: the kill
chain in one; the uninterrupted reference and its corrupted-checkpoint continuations in the other.
Kill points are drawn from a seeded RNG and injected from outside the library by the test-only
launcher tests/launch_train.py (GPT1_TF_TEST_KILL_AT). NaN runs go in this process, on one tower,
with the step patched.
"""
import concurrent.futures
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import joblib
import numpy as np
import tensorflow as tf

from unittest import mock

from helpers import (LAUNCHER, REPO, TINY, final_checkpoint_arrays, log_without_time, run_main_in, terminal_lines,
                     write_tiny_cloze)
from gpt1_tf.train.trainer import Trainer
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.train import memory
from gpt1_tf.train.memory import estimate_pretrain_bytes, estimate_train_bytes, n_params
from gpt1_tf.errors import Gpt1Error

SEED = 1234  # kill points
# dropout on (TINY keeps the 0.1 defaults), a checkpoint after every update
FLAGS = TINY + ["--n_gpu", "2", "--n_batch", "2", "--submit", "--analysis", "--save_every", "1"]
N_UPDATES = 8  # 16 train stories / 4 per update x 2 epochs
TIMEOUT = 300


class Proc:
    """What a finished (or killed) train.py process left: return code, stdout, stderr."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def lines(self, prefix):
        """stderr lines starting with `prefix` (progress bars use \\r, so split on both)."""
        return [l.strip() for l in self.stderr.replace("\r", "\n").splitlines() if l.strip().startswith(prefix)]


def start_train(workdir, *args, env=None, kill_after=None, delay=0.0):
    """train.py ... (the test launcher) in `workdir`; with kill_after, SIGKILL it `delay` s after that text shows on stderr."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, **(env or {}))
    if "GPT1_TF_TEST_KILL_AT" not in (env or {}):
        full_env.pop("GPT1_TF_TEST_KILL_AT", None)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, LAUNCHER, *args], cwd=workdir,
                                env=full_env, stdout=out, stderr=subprocess.PIPE)
        err = b""
        if kill_after is not None:
            while kill_after.encode() not in err:
                chunk = proc.stderr.read1(65536)
                if not chunk:
                    break
                err += chunk
            else:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
        err += proc.communicate(timeout=TIMEOUT)[1]
        out.seek(0)
        return Proc(proc.returncode, out.read().decode(), err.decode(errors="replace"))


def ckpt_dir(workdir):
    return os.path.join(workdir, "save", "rocstories", "checkpoints")


def readable_state(workdir):
    """Every file a resume would read parses: sidecars, their TF checkpoints, the log, best params.

    Returns the problems found (an empty list when all is well) and the newest sidecar's n_updates.
    """
    problems, newest = [], None
    d = ckpt_dir(workdir)
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not (name.startswith("state-") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(d, name)) as f:
                state = json.load(f)
            prefix = os.path.join(d, state["tf_prefix"])
            reader = tf.train.load_checkpoint(prefix)
            for key, _ in tf.train.list_variables(prefix):
                reader.get_tensor(key)
            newest = state["n_updates"]
        except Exception as err:
            problems.append(f"{name}: {type(err).__name__}: {err}")
    log = os.path.join(workdir, "log", "rocstories.jsonl")
    if os.path.exists(log):
        with open(log) as f:
            for i, line in enumerate(f):
                try:
                    json.loads(line)
                except ValueError:
                    problems.append(f"log line {i + 1} is not JSON")
    params = os.path.join(workdir, "save", "rocstories", "best_params.jl")
    if os.path.exists(params):
        try:
            joblib.load(params)
        except Exception as err:
            problems.append(f"best_params.jl: {type(err).__name__}")
    return problems, newest


def file_hashes(workdir, *subdirs):
    out = {}
    for sub in subdirs:
        for root, _, files in os.walk(os.path.join(workdir, sub)):
            for name in files:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
    return out


def leftovers(workdir):
    """Temporary files anywhere, and checkpoint files no sidecar names."""
    found = []
    for root, dirs, files in os.walk(workdir):
        found += [os.path.join(root, f) for f in files if f.endswith(".tmp")]
        found += [os.path.join(root, d) for d in dirs if "_temp" in d]
    d = ckpt_dir(workdir)
    prefixes = []
    for name in os.listdir(d):
        if name.startswith("state-"):
            with open(os.path.join(d, name)) as f:
                prefixes.append(json.load(f)["tf_prefix"])
    found += [n for n in os.listdir(d) if n.startswith("ckpt-") and n.split(".")[0] not in prefixes]
    return found


class ReliabilityTest(tf.test.TestCase):
    """Kill-and-resume and corrupt checkpoints, all against one uninterrupted run."""

    @classmethod
    def setUpClass(cls):
        cls.t0 = time.time()
        cls.root = tempfile.mkdtemp()
        cls.data = write_tiny_cloze(os.path.join(cls.root, "data"))
        cls.flags = FLAGS + ["--data_dir", cls.data]
        cls.rng = random.Random(SEED)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            lanes = [pool.submit(cls.kill_lane), pool.submit(cls.reference_lane)]
            for lane in lanes:
                lane.result()
        print(f"\nreliability runs: {time.time() - cls.t0:.0f} s", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def dir(cls, name):
        path = os.path.join(cls.root, name)
        os.makedirs(path, exist_ok=True)
        return path

    # --- lane 1: the kill chain --------------------------------------------------------------------
    @classmethod
    def kill_lane(cls):
        rng, d = cls.rng, cls.dir("killed")
        # 1) between the TF checkpoint files and their JSON sidecar, at update 1..3 of epoch 1
        # 2) at the epoch-1 evaluation: mid-evaluation, after best_params.jl / before the checkpoint,
        #    or mid-prune (old sidecar deleted, its TF files not yet)
        # 3) from outside, a random moment after the first update of the resumed process (mid-epoch)
        plan = [dict(env={"GPT1_TF_TEST_KILL_AT": f"tf_written:{rng.randint(1, 3)}"}),
                dict(env={"GPT1_TF_TEST_KILL_AT": rng.choice(["eval:1", "best_params:1", "pruning:2"])}),
                dict(kill_after="loss=", delay=rng.uniform(0.0, 0.4))]
        cls.kills = []
        for i, how in enumerate(plan):
            proc = start_train(d, *cls.flags, *(["--resume"] if i else []), **how)
            problems, newest = readable_state(d)
            cls.kills.append((how, proc, problems, newest))
        cls.resumed = start_train(d, *cls.flags, "--resume")

    # --- lane 2: the reference, then its newest checkpoint corrupted and resumed ------------------
    @classmethod
    def reference_lane(cls):
        ref = cls.dir("reference")
        cls.reference = start_train(ref, *cls.flags)
        # the finished run keeps state-7 (update 7) and state-8 (after the last evaluation): spoil the
        # newest, resume: it must fall back to update 7 and end as the reference did
        for name in ("corrupt_data", "corrupt_state"):
            shutil.copytree(ref, os.path.join(cls.root, name))
        d = ckpt_dir(os.path.join(cls.root, "corrupt_data"))
        with open(os.path.join(d, "state-00000008.json")) as f:
            cls.corrupt_prefix = json.load(f)["tf_prefix"]
        path = os.path.join(d, f"{cls.corrupt_prefix}.data-00000-of-00001")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        cls.corrupt_data = start_train(os.path.join(cls.root, "corrupt_data"), *cls.flags, "--resume")
        with open(os.path.join(ckpt_dir(os.path.join(cls.root, "corrupt_state")), "state-00000008.json"), "r+b") as f:
            f.seek(40)
            f.write(b"\x00garbled\xff")
        cls.corrupt_state = start_train(os.path.join(cls.root, "corrupt_state"), *cls.flags, "--resume")

    # --- checks ----------------------------------------------------------------------------------
    def assertOk(self, proc):
        self.assertEqual(proc.returncode, 0, f"{proc.stdout}\n{proc.stderr[-3000:]}")

    def assertSameRun(self, name):
        """Log (minus time and the resume flag), every float tensor of the newest checkpoint,
        best_params.jl and the submission equal those of the uninterrupted run."""
        a, b = os.path.join(self.root, "reference"), os.path.join(self.root, name)
        self.assertEqual(log_without_time(a), log_without_time(b))
        fa, fb = final_checkpoint_arrays(a), final_checkpoint_arrays(b)
        self.assertEqual(sorted(fa), sorted(fb))
        self.assertGreater(len(fa), 10)
        for k in fa:
            self.assertAllEqual(fa[k], fb[k], msg=k)
        pa = joblib.load(os.path.join(a, "save", "rocstories", "best_params.jl"))
        pb = joblib.load(os.path.join(b, "save", "rocstories", "best_params.jl"))
        self.assertEqual(len(pa), len(pb))
        for x, y in zip(pa, pb):
            self.assertAllEqual(x, y)
        with open(os.path.join(a, "submission", "ROCStories.tsv")) as f1, \
                open(os.path.join(b, "submission", "ROCStories.tsv")) as f2:
            self.assertEqual(f1.read(), f2.read())
        self.assertEqual(leftovers(b), [])

    def test_reference_run(self):
        self.assertOk(self.reference)
        self.assertIn("ROCStories Test Accuracy", self.reference.stdout)
        self.assertEqual(leftovers(os.path.join(self.root, "reference")), [])

    def test_killed_and_resumed_equals_uninterrupted(self):
        for how, proc, problems, newest in self.kills:
            self.assertEqual(proc.returncode, -signal.SIGKILL, f"{how}: not killed\n{proc.stderr[-2000:]}")
            self.assertEqual(problems, [], how)  # no half-written file after any kill
        self.assertOk(self.resumed)
        self.assertIn("resumed at update", self.resumed.stdout)
        self.assertSameRun("killed")

    def assert_fell_back(self, name, culprit):
        """Run `name` warned once, naming `culprit`, resumed from the previous checkpoint (update 7)
        and ended as the uninterrupted run."""
        proc = getattr(self, name)
        self.assertOk(proc)
        warnings = proc.lines("warning:")
        self.assertLen(warnings, 1, proc.stderr)
        self.assertIn(culprit, warnings[0])
        self.assertIn("resumed at update 7", proc.stdout)
        self.assertSameRun(name)

    def test_corrupt_checkpoint_data_falls_back(self):
        self.assert_fell_back("corrupt_data", self.corrupt_prefix)

    def test_corrupt_sidecar_falls_back(self):
        self.assert_fell_back("corrupt_state", "state-00000008.json")


def nan_at_call(k):
    """A Trainer.compute_gradients whose k-th call (1-based) returns NaN losses and gradients, as a blow-up would."""
    original, calls = Trainer.compute_gradients, []

    def compute_gradients(self, *args, **kwargs):
        grads, clf_losses, norm = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == k:
            nan = np.float32("nan")
            return [g * nan for g in grads], clf_losses * nan, norm * nan
        return grads, clf_losses, norm
    return compute_gradients


class NanGuardTest(tf.test.TestCase):
    """--nan_policy on one tower, in this process (op determinism gets turned on here, as in every CPU run)."""

    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.flags = TINY + ["--data_dir", write_tiny_cloze(os.path.join(self.root, "data")), "--n_gpu", "1",
                             "--n_batch", "4", "--submit", "--analysis", "--save_every", "1"]

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def test_stop_keeps_the_last_good_checkpoint(self):
        # a real divergence, no hook: --lr 1e30 without clipping turns update 2's gradients to NaN
        flags = self.flags + ["--lr", "1e30", "--max_grad_norm", "-1"]
        code, lines = run_main_in(self.root, flags + ["--stop_after_updates", "1"])
        self.assertEqual(code, 0, lines)
        before = file_hashes(self.root, "save", "log/rocstories.jsonl")
        raw = io.StringIO()
        code, lines = run_main_in(self.root, flags + ["--resume", "--nan_policy", "stop"], err=raw)
        self.assertEqual(code, 1, lines)
        self.assertLen(lines, 1, lines)
        self.assertRegex(lines[0], r"^error: non-finite loss .* at update 2; stopped")
        self.assertIn(lines[0], terminal_lines(raw.getvalue()))  # the bar closed first: the line is the error's alone
        self.assertEqual(file_hashes(self.root, "save", "log/rocstories.jsonl"), before)  # nothing touched
        problems, newest = readable_state(self.root)
        self.assertEqual((problems, newest), ([], 1))  # the last good checkpoint, readable
        params = joblib.load(os.path.join(self.root, "save", "rocstories", "best_params.jl"))
        self.assertTrue(all(np.all(np.isfinite(p)) for p in params))

    def test_skip_drops_the_update_and_finishes(self):
        with mock.patch.object(Trainer, "compute_gradients", nan_at_call(6)):
            code, lines = run_main_in(self.root, self.flags + ["--nan_policy", "skip"])
        self.assertEqual(code, 0, lines)
        self.assertEqual([l for l in lines if l.startswith(("warning", "error"))],
                         ["warning: non-finite loss or gradient norm at update 6: skipped (1 so far)"])
        with open(os.path.join(self.root, "log", "rocstories.jsonl")) as f:
            records = [json.loads(line) for line in f][1:]
        skipped = [r for r in records if "skipped_update" in r]
        self.assertLen(skipped, 1)
        self.assertEqual((skipped[0]["skipped_update"], skipped[0]["n_skipped"]), (6, 1))
        self.assertEqual([r["n_updates"] for r in records if "va_acc" in r], [4, N_UPDATES - 1])
        for k, v in final_checkpoint_arrays(self.root).items():
            self.assertTrue(np.all(np.isfinite(v)), k)
        with open(os.path.join(ckpt_dir(self.root), f"state-{N_UPDATES - 1:08d}.json")) as f:
            self.assertEqual(json.load(f)["n_skipped"], 1)
        self.assertTrue(os.path.exists(os.path.join(self.root, "submission", "ROCStories.tsv")))


class MemoryTest(tf.test.TestCase):
    """The memory estimate against a measured figure, and the one-line refusal before TF starts."""

    def test_full_gpt1_near_the_original_peak(self):
        self.assertEqual(n_params(ModelConfig()), 116_537_857)  # GPT-1's ~116.5M (n_ctx 512 positions)
        # measured with the original TF1 code: its peak RSS, 8 stories x 2 endings, n_ctx 77: 5.7 GB
        need = estimate_train_bytes(ModelConfig(n_ctx=77), n_batch=8).total
        self.assertBetween(need, 5.7e9 / 2, 5.7e9 * 2)

    def test_scaling(self):
        cfg = ModelConfig(n_ctx=77)
        one, four = estimate_train_bytes(cfg, 8, 1), estimate_train_bytes(cfg, 8, 4)
        # towers in sequence: one copy of parameters, m, v, gradients, plus the sum of the towers' gradients
        self.assertEqual(four.state, one.state * 5 // 4)
        self.assertEqual(four.activations, one.activations)  # one tower's at a time
        self.assertEqual(four.logits, one.logits)
        # train.py's defaults (4 towers of 8 stories, n_ctx 77): no longer refused on a 16 GB machine (was ~17 GiB)
        self.assertLess(four.total, 8 * 2**30)
        self.assertGreater(estimate_train_bytes(cfg, 16, 1).total, one.total)
        self.assertGreater(estimate_train_bytes(ModelConfig(n_ctx=512), 8, 1).total, one.total)

    def test_pretraining_follows_the_micro_batches(self):
        cfg = ModelConfig(n_vocab=40478, n_ctx=512)  # the paper's update: 64 windows of 512
        one, sixteen = estimate_pretrain_bytes(cfg, 64), estimate_pretrain_bytes(cfg, 64, n_micro=16)
        self.assertEqual(sixteen.activations * 16, one.activations)  # one micro-batch's at a time
        self.assertEqual(sixteen.logits * 16, one.logits)
        self.assertEqual(one.logits, memory.LOGIT_COPIES * 4 * 64 * 512 * 40478)  # the token rows only
        self.assertEqual(sixteen.state * 4, one.state * 6)  # + the gradients' running sum and its next value
        # pretrain.py's peak RSS at full size (KiB), measured (BENCHMARKS.md, run J): (windows, micro-batches) per update
        for (n, n_micro), measured in (((8, 1), 12_232_264), ((8, 2), 8_034_108), ((8, 8), 5_562_668),
                                       ((64, 16), 8_579_716), ((64, 64), 5_581_608)):
            self.assertBetween(estimate_pretrain_bytes(cfg, n, n_micro).total, measured * 1024, measured * 1024 * 1.3)

    def test_pretraining_refusal_names_an_n_micro_that_fits(self):
        cfg, available = ModelConfig(n_vocab=40478, n_ctx=512), 8 * 2**30
        with mock.patch.object(memory, "device_memory", return_value=(available, 1, "this machine")):
            with self.assertRaisesRegex(Gpt1Error, r"needs about .* --n_micro 1: .* has 8.0 GiB; --n_micro \d+ would fit") as ctx:
                memory.check_pretrain_memory(cfg, 64, 1)
            k = int(str(ctx.exception).rsplit("--n_micro ", 1)[1].split()[0])
            memory.check_pretrain_memory(cfg, 64, k)  # fits: no error
            self.assertEqual(64 % k, 0)
            self.assertTrue(all(estimate_pretrain_bytes(cfg, 64, j).total > available for j in range(1, k) if 64 % j == 0))
            with self.assertRaisesRegex(Gpt1Error, "lower --n_ctx or the model's size"):
                memory.check_pretrain_memory(ModelConfig(n_vocab=40478, n_embd=8192, n_head=8), 64, 1)

    def test_train_py_takes_cpu_tensors_from_malloc_unless_the_user_chose(self):
        # runtime.prefer_system_allocator, before TensorFlow is imported; the run itself replaced by a probe
        code = """if 1:
            import os, sys
            from unittest import mock
            from gpt1_tf import runtime
            from gpt1_tf.cli import train
            prefer, seen = runtime.prefer_system_allocator, {}
            def probe_prefer():
                seen["tf_before"] = "tensorflow" in sys.modules
                prefer()
            def probe_train(cfg):
                seen["env"] = os.environ.get(runtime.ONEDNN_ALLOCATOR_ENV)
            with mock.patch.object(runtime, "prefer_system_allocator", probe_prefer), \\
                    mock.patch("gpt1_tf.train.finetune.train", probe_train):
                train.main(["--dataset", "rocstories", "--data_dir", sys.argv[1]])
            print(seen["tf_before"], seen["env"])
        """
        data = os.path.join(REPO, "datasets", "rocstories_sample")
        for user, want in ((None, "False 1"), ("0", "False 0")):
            env = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"}
            if user is not None:
                env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = user
            out = subprocess.run([sys.executable, "-c", code, data], env=env, cwd=REPO, capture_output=True,
                                 text=True, timeout=300)
            self.assertEqual(out.stdout.strip(), want, out.stderr[-2000:])

    def test_huge_batch_refused_before_tensorflow_setup(self):
        root = tempfile.mkdtemp()
        data = write_tiny_cloze(os.path.join(root, "data"))
        # a model far too large for any machine (a batch larger than the data is refused earlier: no full batch)
        code, lines = run_main_in(root, TINY + ["--data_dir", data, "--n_gpu", "1", "--n_batch", "4", "--n_embd", "65536",
                                                "--n_head", "1", "--n_layer", "12"])
        self.assertEqual(code, 1, lines)
        self.assertLen(lines, 1, lines)
        self.assertRegex(lines[0], r"^error: this run needs about [\d.]+ GiB .* has [\d.]+ GiB; lower --n_batch")
        self.assertIn("--n_ctx", lines[0])
        self.assertFalse(os.path.exists(os.path.join(root, "log")))  # nothing written
        self.assertFalse(os.path.exists(os.path.join(root, "save")))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    tf.test.main()
