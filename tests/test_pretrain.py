"""Pretraining on raw text: the corpus cache, the windows, the LM step, checkpoints, and a 2-worker cluster.

- the token cache: made once, reused, uint16, keyed by the files; bad corpora refused with no cache file;
- the global batches: the workers' slices add up to the one-process batch, for any split;
- the LM step's loss is the scoring loss (`scoring.token_losses`) of the same windows;
- a run stopped and resumed equals the uninterrupted run; its shards are what train.py and
  generate.py read (pretrain -> fine-tune -> generate);
- 2 worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy) give the parameters of 1 process
  with the same global batch (rel 1e-5, no dropout); --resume continues a cluster run; killing a
  worker stops the other with one line; a worker whose peer never comes gives up in bounded time.
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
from helpers import REPO, ctrl_c_after_first_update, run_train
from gpt1_tf.cli import pretrain
from gpt1_tf.train import pretraining
from gpt1_tf.data import corpus
from gpt1_tf.weights import pretrained
from gpt1_tf.errors import DataError
from gpt1_tf.data.text_utils import TextEncoder

SAMPLE = os.path.join(REPO, "datasets", "pretrain_sample")
TINY = ["--n_ctx", "16", "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--n_batch", "8", "--lr", "1e-3",
        "--lr_warmup_updates", "2", "--eval_every", "5", "--embd_pdrop", "0", "--attn_pdrop", "0", "--resid_pdrop", "0"]
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
        self.assertEqual(tokens.dtype, np.uint16)
        with open(path, encoding="utf-8") as f:
            want = encoder().encode([f.read()])[0]  # the lines joined by the newline token, as the whole text gives
        self.assertAllEqual(tokens, want)
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
                            ([path, *TINY], "not one batch of --n_batch 8"),
                            ([path, *TINY, "--n_ctx", "64"], "too few"),
                            ([f"{tmp}/none*.txt", *TINY], "no file matches")):
            code, out, err = run_main(*args, "--save_dir", f"{tmp}/save", "--log_dir", f"{tmp}/log")
            self.assertEqual(code, 1)
            self.assertLen(err.strip().splitlines(), 1, err)
            self.assertIn(words, err)
        self.assertFalse(os.path.exists(f"{tmp}/log"))
        self.assertFalse(os.path.exists(f"{tmp}/save/pretrain"))


class ClusterTest(tf.test.TestCase):
    """Worker processes on 127.0.0.1: each bounded in time and killed at the end, whatever happens."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.corpus = small_corpus(cls.root, 150)
        cls.args = [cls.corpus, *TINY, "--n_iter", "1", "--cache_dir", os.path.join(cls.root, "cache")]
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
        want = np.array(tokens)
        for damage in (lambda f: f.truncate(os.path.getsize(cache) // 2),  # a killed copy
                       lambda f: np.save(f, np.arange(5, dtype=np.float64))):  # not a token array
            with self.subTest(damage=damage):
                with open(cache, "r+b") as f:
                    damage(f)
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    tokens, again, reused = corpus.tokenize_corpus([path], encoder(), f"{tmp}/cache")
                self.assertEqual((again, reused), (cache, False))
                self.assertAllEqual(tokens, want)
                self.assertRegex(err.getvalue(), rf"warning: {cache}: unreadable token cache \(.+\); tokenizing the "
                                                 "corpus again")

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
        self.assertEqual(list(tokens), list(corpus.text_ids(text * 3, encoder())))


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
