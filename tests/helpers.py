"""Shared test helpers: golden fixtures (copied from the original's runs) and tiny configs."""
import json
import math
import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
FWD_CASES = ("fwd_gelu", "fwd_relu", "fwd_swish")
ADAM_CASES = ("adam_warmup_linear", "adam_warmup_cosine_vector_l2", "adam_warmup_constant_noclip_nolm")
# the parameters after the steps to compare with: the golden files, except the no-clipping case,
# whose golden file recorded a thread race of the original graph (see fixtures/README.md)
ADAM_REFERENCE = {"adam_warmup_linear": "adam_warmup_linear",
                  "adam_warmup_cosine_vector_l2": "adam_warmup_cosine_vector_l2",
                  "adam_warmup_constant_noclip_nolm": "adam_warmup_constant_noclip_nolm_racefree"}


def load_fixture(name):
    """(arrays dict, meta dict) of a golden fixture."""
    d = np.load(os.path.join(FIXTURES, f"{name}.npz"))
    arrays = {k: d[k] for k in d.files}
    meta = json.loads(bytes(arrays.pop("meta_json")).decode())
    return arrays, meta


def load_batches(name):
    d = np.load(os.path.join(FIXTURES, f"{name}_batches.npz"))
    return {k: d[k] for k in d.files}


def params_of(arrays, which):
    """param_before_NNN / param_after_NNN in order."""
    keys = sorted(k for k in arrays if k.startswith(f"param_{which}_"))
    return [arrays[k] for k in keys]


def model_config(hp, **overrides):
    """ModelConfig of a fixture's hp, all dropouts 0 (as the fixtures were produced)."""
    from gpt1_tf.network.config import ModelConfig
    kw = dict(n_vocab=hp["n_vocab"], n_special=hp["n_special"], n_ctx=hp["n_ctx"], n_embd=hp["n_embd"],
              n_head=hp["n_head"], n_layer=hp["n_layer"], afn=hp["afn"],
              embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0, clf_pdrop=0.0)
    kw.update(overrides)
    cfg = ModelConfig(**kw)
    assert cfg.clf_token == hp["clf_token"], (cfg.clf_token, hp["clf_token"])
    return cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "datasets", "rocstories_sample")
VAL_FILE = "cloze_test_val__spring2016 - cloze_test_ALL_val.csv"
TEST_FILE = "cloze_test_test__spring2016 - cloze_test_ALL_test.csv"


def write_tiny_cloze(directory, n_val=24, n_test=12):
    """Story Cloze files with the first stories of the bundled sample (header kept)."""
    os.makedirs(directory, exist_ok=True)
    for name, n in ((VAL_FILE, n_val), (TEST_FILE, n_test)):
        with open(os.path.join(SAMPLE_DIR, name), encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.writelines(lines[:1 + n])
    return directory


# --- train.py runs (tiny configs) ----------------------------------------------------------------
TINY = ["--dataset", "rocstories", "--n_valid", "8", "--n_transfer", "-1", "--n_layer", "1", "--n_embd", "16",
        "--n_head", "2", "--n_iter", "2", "--lr", "1e-3", "--lr_warmup", "0.1"]
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch_train.py")


def run_train(workdir, *args, check=True, env=None):
    """python train.py ... in a fresh process (towers need a fresh TensorFlow), cwd = workdir."""
    import subprocess
    import sys
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, **(env or {}))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def ctrl_c_after_first_update(test, program, args, cwd, env=None, timeout=300):
    """Run `program` (train.py, pretrain.py) in a fresh process, send SIGINT once its first update is done,
    and check it stopped with a checkpoint: exit 130, no traceback. Returns the update it names."""
    import re
    import signal
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, program), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = b""
    while b"loss=" not in err:  # the first update is done
        chunk = proc.stderr.read1(65536)
        test.assertTrue(chunk, err.decode(errors="replace"))
        err += chunk
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=timeout)
    err = (err + rest).decode(errors="replace")
    test.assertEqual(proc.returncode, 130, err)
    test.assertNotIn("Traceback", err)
    match = re.search(r"interrupted: checkpoint written at update (\d+); continue with --resume", err)
    test.assertIsNotNone(match, err)
    return match.group(1)


def run_main_in(root, args, err=None):
    """train.py's main(args) in this process with cwd = root; (exit code, stderr lines without progress bars).

    `err`: a StringIO that receives the raw stderr, progress bars and all (`terminal_lines`)."""
    import contextlib
    import io
    from gpt1_tf.cli import train as train_cli
    cwd, err = os.getcwd(), err if err is not None else io.StringIO()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = train_cli.main(args)
    finally:
        os.chdir(cwd)
    lines = [l.strip() for l in err.getvalue().replace("\r", "\n").splitlines()]
    return code, [l for l in lines if l and "it/s" not in l and "s/it" not in l and "%|" not in l]


def terminal_lines(raw):
    """The lines a terminal shows for the raw text `raw`: each line's text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1].strip() for line in raw.split("\n")]


def final_checkpoint_arrays(workdir, desc="rocstories"):
    """Every float tensor of the newest checkpoint (model and optimizer), by key."""
    import tensorflow as tf
    ckpt_dir = os.path.join(workdir, "save", desc, "checkpoints")
    states = sorted(f for f in os.listdir(ckpt_dir) if f.startswith("state-"))
    with open(os.path.join(ckpt_dir, states[-1])) as f:
        prefix = os.path.join(ckpt_dir, json.load(f)["tf_prefix"])
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k, _ in tf.train.list_variables(prefix)
            if "OBJECT_GRAPH" not in k and reader.get_tensor(k).dtype == np.float32}


PREPARED_PEAK = 1e11  # FLOP/s: the matmul peak of every compute dtype in the tests' cache (conftest.py)


def log_without_time(workdir, desc="rocstories"):
    """A run's log records without what is timing (time, the throughput) or may differ between equal runs."""
    from gpt1_tf.train.logs import THROUGHPUT_KEYS
    with open(os.path.join(workdir, "log", f"{desc}.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    for line in lines:
        line.pop("time")
        for key in THROUGHPUT_KEYS:
            line.pop(key, None)
    lines[0].pop("resume", None)
    lines[0].pop("stop_after_updates", None)
    return lines


# --- synthetic Story Cloze-shaped batches (tiny vocabulary) ----------------------------------------
N_VOCAB, N_CTX = 40, 16


def story_batch(rng, n_batch):
    """`transform_roc`-shaped batch: [_start_] story [_delimiter_] ending_k [_classify_], unequal lengths."""
    from gpt1_tf.network import tokens
    X = np.zeros((n_batch, 2, N_CTX, 2), np.int32)
    M = np.zeros((n_batch, 2, N_CTX), np.float32)
    for b in range(n_batch):
        story = list(rng.randint(0, N_VOCAB, rng.randint(1, 7)))
        for k in range(2):
            x = ([tokens.start_id(N_VOCAB)] + story + [tokens.delimiter_id(N_VOCAB)]
                 + list(rng.randint(0, N_VOCAB, rng.randint(1, 4))) + [tokens.clf_id(N_VOCAB)])
            X[b, k, :len(x), 0] = x
            M[b, k, :len(x)] = 1
    X[..., 1] = tokens.position_id(N_VOCAB, np.arange(N_CTX))
    return X, M, rng.randint(0, 2, n_batch).astype(np.int32)


# --- parity after optimizer steps: what holds on every CPU -----------------------------------------
OPT_TOL = 1e-6  # parameters after the optimizer steps within 1e-6 abs
FWD_TOL = 1e-5


def np_schedule(name, x, warmup):
    """The original's three schedules, in NumPy (independent of gpt1_tf.network.opt)."""
    s = 1.0 if x <= warmup else 0.0
    if name == "warmup_cosine":
        return s * (x / warmup) + (1 - s) * 0.5 * (1 + math.cos(math.pi * x))
    if name == "warmup_constant":
        return s * (x / warmup) + (1 - s)
    return (s * (x / warmup) + (1 - s)) * (1 - x)


def gradient_free(names, lm_coef):
    """Parameters that shift both endings' clf logits alike and nothing else: zero true gradient.

    clf/b always (a 2-way softmax is shift-invariant); without the LM term also the last block's
    ln_2/b, which adds one vector to every final hidden state, hence c.w to both logits. What a
    computer gets for their gradient is rounding noise, which depends on the CPU's kernels, and
    Adam normalises it into steps of up to lr: their values after the steps are machine-dependent.
    """
    free = {"model/clf/b:0"}
    if lm_coef <= 0:
        last = max(int(n.split("/")[1][1:]) for n in names if n.startswith("model/h"))
        free.add(f"model/h{last}/ln_2/b:0")
    return free


def adam_movement_bound(before, opt, *, b1=0.9, b2=0.999):
    """Elementwise bound on |after - before| after opt['steps'] updates of the original Adam, whatever the gradients.

    With m_t and v_t Adam's moments, Cauchy-Schwarz gives |m_t| / sqrt(v_t) <= (1 - b1) / sqrt(1 - b2)
    * sqrt(sum_{k<t} (b1^2 / b2)^k); the update also decays by l2 * p where that applies (matrices,
    vectors with vector_l2). `opt` is a fixture's optimizer record; b1, b2 are the original's defaults.
    """
    before = np.abs(np.asarray(before, np.float64))
    decays = opt["l2"] > 0 and (before.ndim > 1 or opt["vector_l2"])
    bound = np.zeros_like(before)
    for t in range(1, opt["steps"] + 1):
        lrt = opt["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * np_schedule(
            opt["lr_schedule"], t / opt["t_total"], opt["lr_warmup"])
        ratio = (1 - b1) / math.sqrt(1 - b2) * math.sqrt(sum((b1 * b1 / b2) ** k for k in range(t)))
        bound += abs(lrt) * (ratio + (opt["l2"] * (before + bound) if decays else 0.0))
    return bound


def assert_parity_after_steps(test, name, ours, *, tol=OPT_TOL):
    """`ours` (params after a golden adam_* case's steps) against the original, as far as any machine allows.

    Every parameter with a non-zero true gradient: within `tol` of the reference. The gradient-free
    ones: moved no farther than the update rule allows (the reference too), and the training outputs
    (clf losses, predictions; LM losses when lm_coef > 0) do not depend on them at all.
    """
    arrays, meta = load_fixture(name)
    reference, _ = load_fixture(ADAM_REFERENCE[name])
    want, before, names = params_of(reference, "after"), params_of(arrays, "before"), meta["param_names"]
    free = gradient_free(names, meta["opt"]["lm_coef"])
    for p, w, b, n in zip(ours, want, before, names):
        if n not in free:
            test.assertAllClose(p, w, atol=tol, rtol=0, msg=f"{name}: {n}")
            continue
        bound = adam_movement_bound(b, meta["opt"]) * (1 + 1e-4) + 1e-7  # float32 rounding of the update
        for got, who in ((p, "ours"), (w, "the original's")):
            test.assertTrue(np.all(np.abs(got - b) <= bound), f"{name}: {n} ({who}) moved {np.abs(got - b).max()} "
                                                               f"> the update rule's bound {bound.max()}")
    assert_outputs_ignore(test, name, ours, free)


def assert_outputs_ignore(test, name, params, free):
    """The training outputs of `params` do not change when the `free` parameters are moved by 0.1."""
    from gpt1_tf.network.model import TransformerModel
    from gpt1_tf.weights.pretrained import set_params
    arrays, meta = load_fixture(name)
    batches, names = load_batches(name), meta["param_names"]
    model = TransformerModel(model_config(meta["hp"]))
    rng = np.random.RandomState(0)
    moved = [p + (rng.uniform(-0.1, 0.1, p.shape).astype(np.float32) if n in free else 0) for p, n in zip(params, names)]
    outputs = []
    for arrays_ in (params, moved):
        set_params(model, arrays_)
        X, M, Y = batches["X_0"], batches["M_0"], batches["Y_0"]
        outputs.append([t.numpy() for t in model(X, M, Y, lm_head="full")])
    (logits, clf, lm), (logits2, clf2, lm2) = outputs
    test.assertNotAllClose(logits, logits2, atol=1e-3)  # the move did move the logits ...
    test.assertAllClose(clf, clf2, atol=FWD_TOL, rtol=0, msg=f"{name}: clf losses")  # ... but no loss
    test.assertAllEqual(np.argmax(logits, 1), np.argmax(logits2, 1))
    if meta["opt"]["lm_coef"] > 0:
        test.assertAllClose(lm, lm2, atol=FWD_TOL, rtol=0, msg=f"{name}: lm losses")


# --- forward passes with gradients (the speed-lever tests) -------------------------------------------
def randomised(model, seed=0):
    """The model with parameters larger than the 0.02 init, so that differences would show."""
    rng = np.random.RandomState(seed)
    for p in model.params_in_order():
        p.assign(rng.normal(0, 0.3 if len(p.shape) > 1 else 0.1, p.shape).astype(np.float32))
    return model


def forward_and_grads(model, X, M, Y, *, training, seed=None, **options):
    """clf logits, clf losses, lm losses and the gradient of every parameter of a mixed loss."""
    import tensorflow as tf
    with tf.GradientTape() as tape:
        logits, clf, lm = model(X, M, Y, training=training, seed=seed, **options)
        # weight every loss differently, so that a mix-up between examples would show in the grads
        w = tf.range(1, tf.size(lm) + 1, dtype=tf.float32)
        loss = tf.reduce_sum(clf * w[: tf.size(clf)]) + tf.reduce_sum(lm * w) * 0.3
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.params_in_order())]
    return [logits, clf, lm] + grads


def assert_same_step(test, ref, fast, X, M, Y, *, grads=True, tol=1e-5):
    """Two Trainers give the same clf losses, global norm and gradients of one step (if `grads`), and evaluation."""
    if grads:
        g_ref, clf_ref, norm_ref = ref.compute_gradients(X, M, Y, 3)
        g, clf, norm = fast.compute_gradients(X, M, Y, 3)
        test.assertAllClose(clf, clf_ref, atol=tol, rtol=0)
        test.assertAllClose(norm, norm_ref, atol=tol, rtol=0)
        for a, b in zip(g, g_ref):
            test.assertAllClose(a, b, atol=tol, rtol=0)
    for a, b in zip(fast.eval_batch(X, M, Y), ref.eval_batch(X, M, Y)):
        test.assertAllClose(a, b, atol=tol, rtol=0)
