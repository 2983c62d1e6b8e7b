"""Pretraining on raw text: the corpus cache, the windows, the LM step, checkpoints, and a 2-worker cluster.

- the token cache: made once, reused, uint16, one shard per file (joined: the one-array corpus; a
  changed or damaged shard made again alone; the same tokens from 1 or 2 processes; cluster workers
  tokenize only their own files); windows read without loading it (flat anonymous memory);
  bad corpora refused with no cache file;
- the global batches: the workers' slices add up to the one-process batch, for any split;
- the LM step's loss is the scoring loss (`scoring.token_losses`) of the same windows;
- a run stopped and resumed equals the uninterrupted run; its shards are what train.py and
  generate.py read (pretrain -> fine-tune -> generate);
- micro-batches give the one-batch update (1e-5, dropout off and on); a window's dropout masks are
  the same in any slice of the global batch; bfloat16 and float16 steps, a float16 overflow skipped;
- 2 worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy), 2 mirrored replicas, and 1 process
  with 4 micro-batches give the parameters of 1 process with the same global batch (rel 1e-5,
  dropout on); --resume continues a cluster run, also in 1 process; killing a worker stops the
  other with one line; a worker whose peer never comes gives up in bounded time.
"""
import contextlib
import io
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from cluster import finish, kill, start_workers, wait_for_line
from helpers import PREPARED_PEAK, REPO, ctrl_c_after_first_update, run_train
from gpt1_tf.cli import pretrain
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.train import logs, pretraining, throughput
from gpt1_tf.data import corpus
from gpt1_tf.weights import pretrained
from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.data.text_utils import TextEncoder

SAMPLE = os.path.join(REPO, "datasets", "pretrain_sample")
TINY = ["--n_ctx", "16", "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--n_batch", "8", "--lr", "1e-3",
        "--lr_warmup_updates", "2", "--eval_every", "5", "--embd_pdrop", "0", "--attn_pdrop", "0", "--resid_pdrop", "0"]
DROPOUT = ["--embd_pdrop", "0.1", "--attn_pdrop", "0.1", "--resid_pdrop", "0.1"]
_ENCODER = []


def encoder():
    if not _ENCODER:
        _ENCODER.append(TextEncoder())
    return _ENCODER[0]


def small_corpus(directory, n_lines=120):
    """The first lines of the bundled corpus, as a file in `directory`."""
    with open(os.path.join(SAMPLE, "stories_0.txt"), encoding="utf-8") as f:
        lines = f.readlines()[:n_lines]
    path = os.path.join(directory, "c.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return path


def run_main(*args):
    """pretrain.main in this process: (exit code, stdout, stderr without the progress bars)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = pretrain.main([str(a) for a in args])
    lines = [line for line in err.getvalue().replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    return code, out.getvalue(), "\n".join(lines) + "\n"


def shards_of(work, desc="pretrain"):
    return pretrained.load_shards(os.path.join(work, "save", desc, "model"))


def whole(tokens):
    """A corpus' ids, all of them (small corpora only)."""
    return tokens.span(0, len(tokens))


def assert_close_rel(test, got, want, rel):
    for i, (a, b) in enumerate(zip(got, want)):
        scale = max(float(np.abs(b).max()), 1e-30)
        test.assertLessEqual(float(np.abs(a - b).max()) / scale, rel, f"array {i}")


class CorpusTest(tf.test.TestCase):
    def test_the_cache_is_made_once_and_reused(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp, 30)
        tokens, cache, reused = corpus.tokenize_corpus([os.path.join(tmp, "*.txt")], encoder(), f"{tmp}/cache")
        self.assertFalse(reused)
        self.assertTrue(all(s.dtype == np.uint16 for s in tokens.shards))
        with open(path, encoding="utf-8") as f:
            want = encoder().encode([f.read()])[0]  # the lines joined by the newline token, as the whole text gives
        self.assertAllEqual(whole(tokens), want)
        again, cache2, reused = corpus.tokenize_corpus([path], encoder(), f"{tmp}/cache")
        self.assertTrue(reused)
        self.assertEqual(cache, cache2)
        with open(path, "a", encoding="utf-8") as f:
            f.write("one more line.\n")
        self.assertFalse(corpus.tokenize_corpus([path], encoder(), f"{tmp}/cache")[2])  # the file changed

    def test_bad_corpora_leave_no_cache(self):
        tmp = tempfile.mkdtemp()
        for name, data, words in (("empty.txt", b"\n  \n", "empty"), ("latin1.txt", b"ok\ncaf\xe9\n", "UTF-8")):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
            with self.assertRaisesRegex(DataError, words) as ctx:
                corpus.tokenize_corpus([os.path.join(tmp, name)], encoder(), f"{tmp}/cache")
            self.assertIn(name, str(ctx.exception))
        self.assertRaisesRegex(DataError, "no file matches", corpus.tokenize_corpus, [f"{tmp}/*.md"], encoder(), tmp)
        self.assertFalse(os.path.exists(f"{tmp}/cache") and os.listdir(f"{tmp}/cache"))

    def test_workers_slices_make_the_global_batch(self):
        tokens = np.arange(16 * 40, dtype=np.uint16)
        order = corpus.epoch_order(40, 8, seed=3, epoch=1)
        self.assertEqual(order.shape, (5, 8))
        self.assertEqual(len(set(order.ravel())), 40)
        self.assertNotAllEqual(order, corpus.epoch_order(40, 8, seed=3, epoch=2))
        whole = list(corpus.batches(tokens, order, 16, pipeline=0, n_pipelines=1, per_replica=8))
        for n_pipelines, per_replica in ((2, 4), (2, 2), (4, 2), (1, 4)):
            parts = [list(corpus.batches(tokens, order, 16, pipeline=p, n_pipelines=n_pipelines,
                                         per_replica=per_replica)) for p in range(n_pipelines)]
            per_step = 8 // per_replica // n_pipelines  # consecutive elements: this pipeline's replicas
            for step, want in enumerate(whole):
                got = np.concatenate([part[step * per_step + r] for part in parts for r in range(per_step)])
                self.assertAllEqual(got, want)
        self.assertAllEqual(whole[0][0], tokens[order[0, 0] * 16:(order[0, 0] + 1) * 16])

    def test_held_out_windows_are_the_last(self):
        self.assertEqual(corpus.split_windows(16 * 100, 16, 0.05), (95, 5))
        self.assertEqual(corpus.split_windows(16 * 10 + 3, 16, 0.01), (9, 1))
        self.assertEqual(corpus.split_windows(16 * 10, 16, 0), (10, 0))
        self.assertRaisesRegex(DataError, "too few", corpus.split_windows, 20, 16, 0.1)


class StepTest(tf.test.TestCase):
    def test_the_training_loss_is_the_scoring_loss(self):
        from gpt1_tf.network.config import ModelConfig, OptConfig
        from gpt1_tf.lm.scoring import token_losses
        from gpt1_tf.train.pretraining import LMTrainer
        from helpers import randomised
        cfg = ModelConfig(n_vocab=60, n_ctx=16, n_embd=16, n_head=2, n_layer=2, embd_pdrop=0, attn_pdrop=0,
                          resid_pdrop=0, clf_pdrop=0)
        trainer = LMTrainer(cfg, OptConfig(), tf.distribute.get_strategy())
        randomised(trainer.model)
        ids = np.random.RandomState(0).randint(0, 60, (3, 16)).astype(np.int32)
        want = np.mean([token_losses(trainer.model, row) for row in ids])
        self.assertAllClose(float(trainer.loss(tf.constant(ids))), want, atol=1e-5, rtol=0)


class AccumulationAndDropoutTest(tf.test.TestCase):
    """Micro-batches and replicas draw one process's dropout masks: the update does not depend on the split."""

    def trainer(self, pdrop, n_micro, **model):
        from gpt1_tf.network.config import ModelConfig, OptConfig
        from gpt1_tf.train.pretraining import LMTrainer
        from helpers import randomised
        cfg = ModelConfig(n_vocab=60, n_ctx=16, n_embd=16, n_head=2, n_layer=2, embd_pdrop=pdrop, attn_pdrop=pdrop,
                          resid_pdrop=pdrop, clf_pdrop=0, **model)
        trainer = LMTrainer(cfg, OptConfig(t_total=10, lr_warmup=0.5), tf.distribute.get_strategy(), n_micro=n_micro)
        randomised(trainer.model)
        return trainer

    def test_micro_batches_give_the_one_batch_update(self):
        ids = tf.constant(np.random.RandomState(0).randint(0, 60, (8, 16)).astype(np.int32))
        for pdrop in (0.0, 0.2):
            params = {}
            for n_micro in (1, 2, 4):
                trainer = self.trainer(pdrop, n_micro)
                loss, norm, lr = trainer.train_step(ids)
                params[n_micro] = [p.numpy() for p in trainer.params], loss
            with self.subTest(pdrop=pdrop):
                for n_micro in (2, 4):
                    self.assertAllClose(params[n_micro][1], params[1][1], atol=1e-5, rtol=0)
                    for a, b in zip(params[n_micro][0], params[1][0]):
                        self.assertAllClose(a, b, atol=1e-5, rtol=0)
        # dropout on: the masks are drawn, and differ from no dropout
        self.assertNotAllClose(self.trainer(0.2, 1).loss(ids, self.seed(0)), self.trainer(0.0, 1).loss(ids))

    def seed(self, first):
        from gpt1_tf.network.ops import WindowSeed
        return WindowSeed(tf.constant([42, 3], tf.int64), tf.constant(first))

    def test_a_window_is_dropped_alike_in_any_slice(self):
        # the losses of windows 4..7 computed alone (first=4) equal their losses in the whole batch
        from gpt1_tf.network.heads import next_token_losses
        from gpt1_tf.network.model import with_positions
        trainer = self.trainer(0.3, 1)
        ids = tf.constant(np.random.RandomState(1).randint(0, 60, (8, 16)).astype(np.int32))

        def losses(ids, seed):
            h, we = trainer.model.transformer.hidden(with_positions(ids, trainer.cfg), seed=seed)
            return tf.reduce_mean(next_token_losses(h, we, ids, trainer.cfg.n_vocab), 1)

        whole = losses(ids, self.seed(0))
        self.assertAllClose(losses(ids[4:], self.seed(4)), whole[4:], atol=1e-6, rtol=0)
        self.assertNotAllClose(losses(ids[4:], self.seed(0)), whole[4:])  # the place in the batch matters

    def test_mixed_precision_and_a_float16_overflow(self):
        ids = tf.constant(np.random.RandomState(0).randint(0, 60, (8, 16)).astype(np.int32))
        ref = self.trainer(0.1, 2)
        want = ref.train_step(ids)[0]
        for dtype in ("bfloat16", "float16"):
            with self.subTest(dtype=dtype):
                loss, norm, lr = self.trainer(0.1, 2, compute_dtype=dtype).train_step(ids)
                self.assertAllClose(loss, want, atol=0.05, rtol=0)
                self.assertIsNotNone(lr)
        half = self.trainer(0.1, 2, compute_dtype="float16")
        half.loss_scale.scale.assign(2.0 ** 120)  # the scaled gradients overflow float16
        before = [p.numpy() for p in half.params]
        loss, norm, lr = half.train_step(ids)
        self.assertIsNone(lr)  # skipped
        self.assertEqual(half.loss_scale.value(), 2.0 ** 119)
        self.assertEqual(half.n_updates, 0)
        for a, b in zip(half.params, before):
            self.assertAllEqual(a, b)


class RunTest(tf.test.TestCase):
    def test_stopped_and_resumed_equals_uninterrupted(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp)
        whole, part = os.path.join(tmp, "whole"), os.path.join(tmp, "part")
        common = [path, *TINY, "--n_iter", "2", "--cache_dir", f"{tmp}/cache", "--save_every", "4"]
        self.assertEqual(run_main(*common, "--save_dir", f"{whole}/save", "--log_dir", f"{whole}/log")[0], 0)
        code, out, err = run_main(*common, "--save_dir", f"{part}/save", "--log_dir", f"{part}/log",
                                  "--stop_after_updates", "7")
        self.assertEqual(code, 0, err)
        self.assertIn("stopped after update 7", out)
        self.assertFalse(os.path.exists(f"{part}/save/pretrain/model"))
        code, out, err = run_main(*common, "--save_dir", f"{part}/save", "--log_dir", f"{part}/log", "--resume")
        self.assertEqual(code, 0, err)
        self.assertIn("resumed from update 7", out)
        for a, b in zip(shards_of(part), shards_of(whole)):
            self.assertAllClose(a, b, atol=1e-6, rtol=0)
        with open(f"{whole}/log/pretrain.jsonl") as f:
            records = [json.loads(line) for line in f][1:]
        self.assertEqual([r["n_updates"] for r in records][:2], [5, 10])
        self.assertTrue(all(abs(np.exp(r["va_cost"]) - r["va_ppl"]) < 1e-6 * r["va_ppl"] for r in records))
        self.assertLess(records[-1]["va_cost"], records[0]["va_cost"])

    def test_pretrain_then_fine_tune_then_generate(self):
        from gpt1_tf.cli import generate
        work = tempfile.mkdtemp()
        path = small_corpus(work)
        code, out, err = run_main(path, *TINY[:8], "--n_ctx", "64", "--n_iter", "1", "--save_dir", f"{work}/save",
                                  "--log_dir", f"{work}/log")
        self.assertEqual(code, 0, err)
        model_dir = os.path.join(work, "save", "pretrain", "model")
        self.assertEqual(shards_of(work)[0].shape, (64, 16))  # positions: the run's n_ctx
        proc = run_train(work, "--dataset", "rocstories", "--data_dir", os.path.join(REPO, "datasets", "rocstories_sample"),
                         "--n_valid", "16", "--n_iter", "1", "--n_gpu", "1", "--n_batch", "4", "--model_dir", model_dir,
                         "--n_embd", "16", "--n_head", "2", "--n_layer", "1")
        self.assertIn("rocstories", proc.stdout)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = generate.main(["--model_dir", model_dir, "--n_head", "2", "--prompt", "anna wanted", "--length", "5"])
        self.assertEqual(code, 0)
        self.assertTrue(out.getvalue().splitlines()[1].startswith("anna wanted"))

    def test_bad_flags_and_corpora(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp, 3)
        for args, words in (([path, *TINY, "--n_batch", "0"], "--n_batch"),
                            ([path, *TINY, "--n_ctx", "600"], "--n_ctx"),
                            ([path, *TINY, "--tokenize_workers", "0"], "--tokenize_workers must be at least 1"),
                            ([path, *TINY, "--tokenize_workers", "-2"], "--tokenize_workers must be at least 1"),
                            ([path, *TINY], "not one batch of --n_batch 8"),
                            ([path, *TINY, "--n_ctx", "64"], "too few"),
                            ([f"{tmp}/none*.txt", *TINY], "no file matches")):
            code, out, err = run_main(*args, "--save_dir", f"{tmp}/save", "--log_dir", f"{tmp}/log")
            self.assertEqual(code, 1)
            self.assertLen(err.strip().splitlines(), 1, err)
            self.assertIn(words, err)
        self.assertFalse(os.path.exists(f"{tmp}/log"))
        self.assertFalse(os.path.exists(f"{tmp}/save/pretrain"))

    def test_a_run_that_cannot_fit_is_refused_before_the_model_is_built(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp)
        code, out, err = run_main(path, *TINY, "--n_embd", "65536", "--n_head", "1", "--n_layer", "12",
                                  "--save_dir", f"{tmp}/save", "--log_dir", f"{tmp}/log", "--out", f"{tmp}/out")
        self.assertEqual(code, 1)
        self.assertLen(err.strip().splitlines(), 1, err)
        self.assertRegex(err, r"^error: this run needs about [\d.]+ GiB of memory \(a replica's micro-batches of 8 "
                              r"windows x 16 tokens, --n_micro 1: .* has [\d.]+ GiB; lower --n_ctx or the model's size")
        self.assertFalse(os.path.exists(f"{tmp}/log") or os.path.exists(f"{tmp}/out"))
        self.assertFalse(os.path.exists(f"{tmp}/save/pretrain"))


class ClusterTest(tf.test.TestCase):
    """Worker processes on 127.0.0.1: each bounded in time and killed at the end, whatever happens."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.corpus = small_corpus(cls.root, 150)
        # dropout on: the masks are a function of each window's place in the global batch, not of the worker
        cls.args = [cls.corpus, *TINY, *DROPOUT, "--n_iter", "1", "--cache_dir", os.path.join(cls.root, "cache")]
        run_main(*cls.args, "--save_dir", f"{cls.root}/one/save", "--log_dir", f"{cls.root}/one/log")
        cls.one_process = shards_of(f"{cls.root}/one")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def cluster(self, name, *extra, n=2, timeout=180, per_worker=None):
        work = os.path.join(self.root, name)
        os.makedirs(work, exist_ok=True)
        procs = start_workers(n, [*self.args, "--save_dir", "save", "--log_dir", "log", *extra], work,
                              per_worker=per_worker)
        return work, procs, finish(procs, timeout)

    def test_two_workers_equal_one_process_and_only_the_chief_writes(self):
        # worker 1 gets folders of its own, which must stay empty (it reads the shared corpus cache only)
        work, _, results = self.cluster("two", per_worker={1: ["--save_dir", "save1", "--log_dir", "log1"]})
        for code, out, err in results:
            self.assertEqual(code, 0, err[-2000:])
            self.assertEqual([line for line in err.splitlines() if line.strip() and "%|" not in line], [])
        self.assertIn("replicas: 2 on 2 workers", results[0][1])
        self.assertEqual(results[1][1], "")  # worker 1 prints nothing
        assert_close_rel(self, shards_of(work), self.one_process, 1e-5)
        self.assertFalse(os.path.exists(os.path.join(work, "log1")))
        self.assertFalse(os.path.exists(os.path.join(work, "save1", "pretrain")))
        self.assertEqual(sorted(os.listdir(os.path.join(work, "save", "pretrain"))), [".lock", "checkpoints", "model"])

    def test_mirrored_replicas_on_one_machine_equal_one_process(self):
        # the several-GPU path (MirroredStrategy, 2 replicas fed by one input pipeline), on 2 logical
        # CPUs: make_strategy is replaced from outside, in a fresh process (devices are set up once)
        work = os.path.join(self.root, "mirrored")
        os.makedirs(work)
        script = (
            "import sys, tensorflow as tf\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "from gpt1_tf.cli import pretrain\n"
            "from gpt1_tf.train import cluster\n"
            "cluster.cluster_strategy = lambda *a: tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])\n"
            "sys.exit(pretrain.main(sys.argv[1:]))\n")
        import subprocess
        import sys
        proc = subprocess.run([sys.executable, "-c", script, *self.args, "--save_dir", "save", "--log_dir", "log"],
                              cwd=work, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        self.assertIn("replicas: 2 devices on this machine (MirroredStrategy)", proc.stdout)
        assert_close_rel(self, shards_of(work), self.one_process, 1e-5)

    def test_micro_batches_equal_one_process(self):
        work = os.path.join(self.root, "micro")
        code, _, err = run_main(*self.args, "--n_micro", "4", "--save_dir", f"{work}/save", "--log_dir", f"{work}/log")
        self.assertEqual(code, 0, err)
        assert_close_rel(self, shards_of(work), self.one_process, 1e-5)

    def test_a_two_worker_run_resumed_in_one_process_continues_identically(self):
        work, _, results = self.cluster("regrouped", "--stop_after_updates", "9")
        self.assertEqual([r[0] for r in results], [0, 0], results[0][2][-2000:])
        with contextlib.chdir(work):  # the flags as the workers gave them
            code, out, err = run_main(*self.args, "--save_dir", "save", "--log_dir", "log", "--resume", "--n_micro", "2")
        self.assertEqual(code, 0, err)
        self.assertIn("resumed from update 9", out)
        assert_close_rel(self, shards_of(work), self.one_process, 1e-5)

    def test_resume_continues_a_cluster_run(self):
        work, _, results = self.cluster("resumed", "--stop_after_updates", "9")
        self.assertEqual([r[0] for r in results], [0, 0], results[0][2][-2000:])
        _, _, results = self.cluster("resumed", "--resume")
        self.assertEqual([r[0] for r in results], [0, 0], results[1][2][-2000:])
        self.assertIn("resumed from update 9", results[0][1])
        assert_close_rel(self, shards_of(work), self.one_process, 1e-5)

    def test_a_killed_worker_stops_the_run_with_one_line(self):
        work = os.path.join(self.root, "killed")
        os.makedirs(work)
        args = [*self.args, "--n_iter", "200", "--save_dir", "save", "--log_dir", "log", "--collective_timeout", "30"]
        procs = start_workers(2, args, work)
        try:
            self.assertTrue(wait_for_line(os.path.join(work, "worker0.out"), " 10 train loss", 120))
            kill(procs[1])
            (code, out, err), = finish(procs[:1], timeout=120)
        finally:
            for proc in procs:
                kill(proc)
        self.assertEqual(code, 1)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        self.assertLen(errors, 1, err[-3000:])
        self.assertIn("a worker of the cluster stopped", errors[0])
        noise = [line for line in err.splitlines() if line.strip() and "%|" not in line and line not in errors]
        self.assertEqual(noise, [])  # TensorFlow's gRPC and collective errors are hidden
        self.assertFalse(os.path.exists(os.path.join(work, "save", "pretrain", "model")))

    def test_a_missing_peer_fails_in_bounded_time(self):
        work = os.path.join(self.root, "alone")
        os.makedirs(work)
        procs = start_workers(2, [*self.args, "--save_dir", "save", "--log_dir", "log", "--cluster_timeout", "5"],
                              work, only=[0])
        (code, out, err), = finish(procs, timeout=90)
        self.assertEqual(code, 1)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        self.assertLen(errors, 1)
        self.assertIn("the cluster did not come up within 5 s", errors[0])
        self.assertFalse(os.path.exists(os.path.join(work, "log")))


TINY_RUN = [*TINY[:8], "--n_iter", "1", "--eval_every", "100"]


def strict_records(path):
    """The records of a jsonl log, parsed strictly: NaN or Infinity in a line fails the test."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line, parse_constant=refuse) for line in f]


class OutputsTest(tf.test.TestCase):
    """--out, --cache_dir and the other outputs: checked before any work; nothing the run did not write is removed."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.corpus = small_corpus(self.tmp)
        self.afile = os.path.join(self.tmp, "afile")
        open(self.afile, "w").close()

    def run_in(self, *args):
        return run_main(self.corpus, *TINY_RUN, "--save_dir", f"{self.tmp}/save", "--log_dir", f"{self.tmp}/log", *args)

    def assert_refused_up_front(self, args, words):
        code, out, err = self.run_in(*args)
        self.assertEqual(code, 1, err)
        self.assertLen(err.strip().splitlines(), 1, err)
        self.assertIn(words, err)
        self.assertFalse(os.path.exists(f"{self.tmp}/log"))  # nothing written: not even the token cache
        self.assertFalse(os.path.exists(f"{self.tmp}/save"))

    def test_a_folder_holding_other_files_is_refused_and_kept(self):
        user = os.path.join(self.tmp, "v")
        os.makedirs(os.path.join(user, "sub"))
        with open(os.path.join(user, "sub", "data.txt"), "w") as f:
            f.write("keep")
        self.assert_refused_up_front(["--out", user], "not an empty folder")
        with open(os.path.join(user, "sub", "data.txt")) as f:
            self.assertEqual(f.read(), "keep")

    def test_outputs_in_the_way_are_refused_before_any_work(self):
        for args in (["--out", self.afile], ["--out", f"{self.afile}/sub"], ["--cache_dir", f"{self.afile}/cache"]):
            with self.subTest(args=args):
                self.assert_refused_up_front(args, "afile: exists and is not a folder")

    def test_an_earlier_output_is_replaced_anything_else_is_not(self):
        out = os.path.join(self.tmp, "o")
        for _ in range(2):  # the second run replaces the first one's shards
            code, _, err = self.run_in("--out", out)
            self.assertEqual(code, 0, err)
        self.assertCountEqual(os.listdir(out), pretraining.OUT_FILES)
        self.assertEqual(len(pretrained.load_shards(out)), 2 + 12)
        # the run's own folder (checkpoints, token cache), and shards that pretrain.py did not write
        # (OpenAI's downloaded weights, say): refused, untouched
        openai = os.path.join(self.tmp, "openai")
        pretrained.save_shards(pretrained.load_shards(out), openai)
        for folder in (f"{self.tmp}/save", openai):
            before = sorted(os.listdir(folder))
            code, _, err = self.run_in("--out", folder)
            self.assertEqual(code, 1, err)
            self.assertIn("not an empty folder or an earlier output", err)
            self.assertEqual(sorted(os.listdir(folder)), before)
        with open(os.path.join(out, "notes.txt"), "w") as f:  # an earlier output the user added to
            f.write("mine")
        code, _, err = self.run_in("--out", out)
        self.assertEqual(code, 1, err)
        self.assertIn("notes.txt", os.listdir(out))


class LogTest(tf.test.TestCase):
    def test_one_evaluation_per_update_and_strict_json(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp, 200)
        # 14 updates an epoch: the evaluation of update 14 falls on the epoch's end
        code, out, err = run_main(path, "--n_ctx", "32", "--n_embd", "16", "--n_head", "2", "--n_layer", "1",
                                  "--n_batch", "16", "--n_iter", "2", "--eval_every", "7",
                                  "--save_dir", f"{tmp}/save", "--log_dir", f"{tmp}/log")
        self.assertEqual(code, 0, err)
        self.assertIn("14 updates of 16 per epoch", out)
        records = strict_records(f"{tmp}/log/pretrain.jsonl")[1:]
        self.assertEqual([r["n_updates"] for r in records], [7, 14, 21, 28])
        self.assertTrue(all(isinstance(r["tr_cost"], float) and isinstance(r["va_cost"], float) for r in records))
        # the throughput, against the tests' prepared peak (conftest.py)
        model = ModelConfig(n_vocab=len(encoder().encoder), n_ctx=32, n_embd=16, n_head=2, n_layer=1)
        for r in records:
            self.assertEqual(list(r)[-3:], [*logs.THROUGHPUT_KEYS, "time"])
            self.assertGreater(r["tokens_per_s"], 0)
            self.assertAllClose(r["mfu"], r["tokens_per_s"] * throughput.flops_per_token(model) / PREPARED_PEAK)
        self.assertRegex(out, r"perplexity [\d.]+  \d+ tok/s, mfu \d+%")

    def test_no_held_out_windows_logs_null(self):
        tmp = tempfile.mkdtemp()
        code, _, err = run_main(small_corpus(tmp), *TINY_RUN, "--valid_fraction", "0",
                                "--save_dir", f"{tmp}/save", "--log_dir", f"{tmp}/log")
        self.assertEqual(code, 0, err)
        record, = strict_records(f"{tmp}/log/pretrain.jsonl")[1:]
        self.assertIsNone(record["va_cost"])
        self.assertIsNone(record["va_ppl"])
        self.assertIsInstance(record["tr_cost"], float)


class CacheAndTextRuleTest(tf.test.TestCase):
    def test_an_unreadable_cache_is_made_again_with_a_warning(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp, 30)
        tokens, cache, _ = corpus.tokenize_corpus([path], encoder(), f"{tmp}/cache")
        want, shard = whole(tokens), corpus.shard_path(path, encoder(), cache)
        n_vocab = len(encoder().encoder)
        for damage in (lambda f: f.truncate(os.path.getsize(shard) // 2),  # a killed copy
                       lambda f: f.truncate(20),  # not even a header
                       lambda f: np.save(f, np.arange(5, dtype=np.float64)),  # not a token array
                       lambda f: np.save(f, np.zeros((2, 3), np.uint16)),  # not 1-D
                       lambda f: np.save(f, np.array([1, n_vocab], np.uint16))):  # another vocabulary's ids
            with self.subTest(damage=damage):
                with open(shard, "r+b") as f:
                    damage(f)
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    tokens, again, reused = corpus.tokenize_corpus([path], encoder(), f"{tmp}/cache")
                self.assertEqual((again, reused), (cache, False))
                self.assertAllEqual(whole(tokens), want)
                warning, = [line for line in err.getvalue().replace("\r", "\n").splitlines() if "warning" in line]
                self.assertRegex(warning, rf"^warning: {shard}: unreadable token cache \(.+\); "
                                          rf"tokenizing {path} again$")

    def test_pretraining_and_scoring_read_a_text_alike(self):
        text = "Anna went home.\n\n  \nShe slept.\nThe end.\n"
        ids = list(corpus.text_ids(text, encoder()))
        newline = encoder().encoder[corpus.NEWLINE]
        self.assertEqual(ids.count(newline), 2)  # between the three lines, not after the last
        self.assertEqual(ids, encoder().encode([text])[0])  # as tokenizing the whole text gives
        tmp = tempfile.mkdtemp()
        with open(f"{tmp}/t.txt", "w", encoding="utf-8") as f:
            f.write(text * 3)
        tokens, _, _ = corpus.tokenize_corpus([f"{tmp}/t.txt"], encoder(), f"{tmp}/cache")
        self.assertEqual(list(whole(tokens)), list(corpus.text_ids(text * 3, encoder())))


def write_texts(directory, texts):
    """Text files t0.txt, t1.txt, ... of these texts; their paths."""
    paths = []
    for i, text in enumerate(texts):
        paths.append(os.path.join(directory, f"t{i}.txt"))
        with open(paths[-1], "w", encoding="utf-8") as f:
            f.write(text)
    return paths


def anon_rss():
    """This process's anonymous resident memory (bytes): what mapped file pages do not count in."""
    with open("/proc/self/status") as f:
        kb, = [int(line.split()[1]) for line in f if line.startswith("RssAnon:")]
    return kb * 1024


class ShardedCacheTest(tf.test.TestCase):
    """One shard per file: joined, they are the one-array corpus; reused file by file; any number of processes."""

    TEXTS = ("Anna went home.\nShe slept.\n", "\n  \n", "The end came.\n\nA new day!\n", "Bob ran.")

    def test_the_shards_joined_are_the_one_array_corpus(self):
        tmp = tempfile.mkdtemp()
        paths = write_texts(tmp, self.TEXTS)
        tokens, cache, reused = corpus.tokenize_corpus([f"{tmp}/t*.txt"], encoder(), f"{tmp}/cache")
        self.assertFalse(reused)
        self.assertLen(os.listdir(cache), len(paths))  # one shard per file (the blank one too)
        lines = [line for p in paths for line in corpus.lines_of(open(p, encoding="utf-8").read())]
        one_array = corpus.join_lines(encoder().encode(lines), encoder())  # version 2's single array
        self.assertAllEqual(whole(tokens), one_array)
        self.assertAllEqual(whole(tokens), corpus.text_ids("\n".join(self.TEXTS), encoder()))
        self.assertLen(tokens, len(one_array))
        for n_ctx in (1, 3, 5, 7):  # windows across shards and their joining newlines
            windows = range(len(one_array) // n_ctx)
            self.assertAllEqual(corpus.window_ids(tokens, windows, n_ctx),
                                corpus.window_ids(one_array, windows, n_ctx))
        for start, stop in ((0, 0), (2, 9), (0, len(one_array)), (len(one_array) - 1, len(one_array))):
            self.assertAllEqual(tokens.span(start, stop), one_array[start:stop])

    def test_a_changed_file_is_tokenized_again_alone(self):
        tmp = tempfile.mkdtemp()
        paths = write_texts(tmp, self.TEXTS)
        corpus.tokenize_corpus(paths, encoder(), f"{tmp}/cache")
        before = {name: os.stat(f"{tmp}/cache/{name}").st_mtime_ns for name in os.listdir(f"{tmp}/cache")}
        self.assertTrue(corpus.tokenize_corpus(paths, encoder(), f"{tmp}/cache")[2])
        with open(paths[2], "a", encoding="utf-8") as f:
            f.write("One more line.\n")
        tokens, cache, reused = corpus.tokenize_corpus(paths, encoder(), f"{tmp}/cache")
        self.assertFalse(reused)
        new, = set(os.listdir(cache)) - set(before)
        self.assertEqual(new, os.path.basename(corpus.shard_path(paths[2], encoder(), cache)))
        self.assertEqual({n: os.stat(f"{cache}/{n}").st_mtime_ns for n in before}, before)  # the others: untouched
        self.assertAllEqual(whole(tokens), corpus.text_ids("\n".join(self.TEXTS[:3]) + "One more line.\n" + "\n" +
                                                    self.TEXTS[3], encoder()))

    def test_two_tokenizing_processes_give_the_same_tokens(self):
        tmp = tempfile.mkdtemp()
        one, _, _ = corpus.tokenize_corpus([f"{SAMPLE}/*.txt"], encoder(), f"{tmp}/one")
        two, _, reused = corpus.tokenize_corpus([f"{SAMPLE}/*.txt"], encoder(), f"{tmp}/two", n_procs=2)
        self.assertFalse(reused)
        self.assertAllEqual(whole(two), whole(one))
        self.assertEqual(sorted(os.listdir(f"{tmp}/one")), sorted(os.listdir(f"{tmp}/two")))

    def test_a_bad_file_in_a_process_pool_is_one_line(self):
        tmp = tempfile.mkdtemp()
        paths = write_texts(tmp, self.TEXTS[:1])
        with open(f"{tmp}/t1.txt", "wb") as f:
            f.write(b"ok\ncaf\xe9\n")
        with self.assertRaisesRegex(DataError, r"t1.txt:2: not valid UTF-8"):
            corpus.tokenize_corpus([*paths, f"{tmp}/t1.txt"], encoder(), f"{tmp}/cache", n_procs=2)

    def test_cluster_workers_tokenize_only_their_own_files(self):
        tmp = tempfile.mkdtemp()
        paths = write_texts(tmp, self.TEXTS)
        shards = [corpus.shard_path(p, encoder(), f"{tmp}/cache") for p in paths]
        with self.assertRaisesRegex(Gpt1Error, rf"^{shards[1]}: the token shard of {paths[1]} is not there after"):
            corpus.tokenize_corpus(paths, encoder(), f"{tmp}/cache", worker=0, n_workers=2, timeout=0.2)
        self.assertEqual(sorted(os.listdir(f"{tmp}/cache")), sorted(os.path.basename(s) for s in shards[0::2]))
        tokens, _, reused = corpus.tokenize_corpus(paths, encoder(), f"{tmp}/cache", worker=1, n_workers=2)
        self.assertFalse(reused)
        self.assertAllEqual(whole(tokens), corpus.text_ids("\n".join(self.TEXTS), encoder()))
        self.assertTrue(corpus.tokenize_corpus(paths, encoder(), f"{tmp}/cache", worker=0, n_workers=2)[2])
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]},
                                              "task": {"type": "worker", "index": 2}})
        try:
            from gpt1_tf.train.cluster import task_of
            self.assertEqual(task_of(os.environ["TF_CONFIG"]), (2, 3))
        finally:
            del os.environ["TF_CONFIG"]

    def test_iterating_every_window_keeps_anonymous_memory_flat(self):
        tmp = tempfile.mkdtemp()
        rng, paths = np.random.RandomState(0), []
        for i in range(4):  # 4 shards of 4M tokens: 32 MB of corpus
            paths.append(f"{tmp}/s{i}.npy")
            np.save(paths[-1], rng.randint(0, 40000, size=1 << 22).astype(np.uint16))
        tokens = corpus.TokenShards([np.load(p, mmap_mode="r") for p in paths], newline=7)
        n_ctx, n_windows = 512, len(tokens) // 512
        order = corpus.epoch_order(n_windows, 64, seed=1, epoch=0)
        before, checksum = anon_rss(), 0
        for _ in range(3):
            for row in order:
                checksum += int(corpus.window_ids(tokens, row, n_ctx)[:, 0].sum())
        growth = anon_rss() - before
        self.assertLess(growth, 4 << 20, f"anonymous memory grew by {growth} bytes, a corpus of {len(tokens) * 2}")
        self.assertAllEqual(corpus.window_ids(tokens, [n_windows - 1], n_ctx)[0],
                            np.load(paths[-1])[-(len(tokens) - (n_windows - 1) * n_ctx):][:n_ctx])


class InterruptTest(tf.test.TestCase):
    def test_ctrl_c_checkpoints_and_resume_continues(self):
        tmp = tempfile.mkdtemp()
        args = [small_corpus(tmp), *TINY[:6], "--n_batch", "2", "--n_iter", "30", "--eval_every", "1000"]
        update = ctrl_c_after_first_update(self, "pretrain.py", args, tmp, timeout=120)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            code, out, err = run_main(*args, "--resume", "--stop_after_updates", str(int(update) + 1))
        finally:
            os.chdir(cwd)
        self.assertEqual(code, 0, err)
        self.assertIn(f"resumed from update {update}", out)


class FlagsTest(tf.test.TestCase):
    def test_non_finite_floats_are_refused(self):
        tmp = tempfile.mkdtemp()
        path = small_corpus(tmp, 3)
        for flag in ("--lr", "--l2", "--b1", "--e", "--max_grad_norm", "--valid_fraction", "--embd_pdrop",
                     "--cluster_timeout", "--collective_timeout"):
            for value in ("nan", "inf"):
                with self.subTest(flag=flag, value=value):
                    code, _, err = run_main(path, *TINY, flag, value, "--save_dir", f"{tmp}/save", "--log_dir", f"{tmp}/log")
                    self.assertEqual(code, 1, err)
                    self.assertLen(err.strip().splitlines(), 1, err)
                    self.assertIn(f"error: {flag} must be a finite number, got {value}", err)
        self.assertFalse(os.path.exists(f"{tmp}/save"))

    def test_bad_cluster_specs_name_the_address(self):
        import socket
        from gpt1_tf.errors import Gpt1Error
        from gpt1_tf.train.cluster import cluster_of, wait_for_cluster

        def spec(*addresses):
            return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": 0}})

        for bad in ("localhost", "localhost:99999", "localhost:0", "localhost:http", ":1234"):
            with self.subTest(address=bad):
                with self.assertRaisesRegex(Gpt1Error, f"TF_CONFIG: '{bad}' is not a host:port address"):
                    cluster_of(spec("127.0.0.1:1", bad))
        with socket.create_server(("", 0)) as taken:
            port = taken.getsockname()[1]
            with self.assertRaisesRegex(Gpt1Error, f"cannot listen on 127.0.0.1:{port} \\(Address already in use\\)"):
                wait_for_cluster(spec(f"127.0.0.1:{port}", "127.0.0.1:1"), timeout=1)
