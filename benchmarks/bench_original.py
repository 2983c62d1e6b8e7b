"""Time the ORIGINAL OpenAI TF1 code's Story Cloze training update on TensorFlow 2 (`tf.compat.v1`).

    python benchmarks/bench_original.py --original DIR [--batches FILE.npz] [--steps N] [--warmup N]

DIR is a checkout of openai/finetune-transformer-lm (its code only; the pretrained weights are not
needed). It is not part of this repository and is never committed; get it with

    git clone https://github.com/openai/finetune-transformer-lm /tmp/finetune-transformer-lm

Run from the repository root. Prints ONE JSON line: the median seconds of one update
(`sess.run([clf_loss, train])` as the original's training loop, plus the mean LM loss) over --steps
after --warmup, its CPU seconds, tokens/s, peak RSS, the CPU (`machine.py`), n_ctx, the batch shape,
the threads, and the loss the graph computed on the first batch (`first_loss` = clf + lm_coef * lm,
before any update; exit 1 when it is not finite).

The same batches as `bench.py` (`--batches FILE.npz`, X [S, B, 2, n_ctx, 2], M [S, B, 2, n_ctx], Y
[S, B], cycled; without it bench.py's `synthetic_batches`). Write them once and give both scripts
the file:

    python benchmarks/bench.py --write_batches /tmp/bench/b8.npz --steps 1 --warmup 0 --mode original --n_layer 1
    python benchmarks/bench.py --batches /tmp/bench/b8.npz --steps 3 --warmup 1
    python benchmarks/bench_original.py --original /tmp/finetune-transformer-lm --batches /tmp/bench/b8.npz \
        --steps 3 --warmup 1

How the original runs here. Its graph is built by its own functions: `train.model` through
`train.mgpu_train` (towers, `average_grads`, `opt.adam`: warmup_linear schedule, lr 6.25e-5, l2
0.01, clip 1, b1 0.9, b2 0.999, e 1e-8), gelu, every dropout `--pdrop` (0.1), lm_coef 0.5, n_ctx from
the batches, random N(0, 0.02) init (no pretrained weights; values do not change the timing), t_total
10,000 as bench.py. Patched from outside, the original's files untouched:
- `tf.compat.v1.disable_v2_behavior()` (graph mode, reference variables, TF1 control flow), and
  `tensorflow` resolves to `tf.compat.v1` while its modules import, so its `tf.*` calls (and the
  initializers in its default arguments) are TF1's.
- `spacy`, `ftfy` and `pandas` are empty stand-ins while it imports: only its text encoder and its
  result analysis use them, neither is run (and pandas is not installed here).
- `train.py` reads its hyperparameters as module globals (`globals().update(args.__dict__)` under
  `__main__`): they are set on the imported module.
- its towers ask for `/gpu:i` (`utils.assign_to_gpu`): the session has `allow_soft_placement=True`
  (the original's own session config), which puts them on the CPU; its variables too (it keeps
  only ops of type "Variable" on the CPU, and TF1's are "VariableV2"). The device function is not
  patched. With clip 1 every assign waits for all gradients: no read-after-update race.

Like-for-like with `bench.py --mode original` (our network run the original's way): the batches,
every sequence padded to n_ctx, the LM head at every position, dropout everywhere including the
whole embedding table, the same loss, clipping and Adam arithmetic, unfused. Not like-for-like:
- a TF1 graph in a `Session` (Grappler on, reference variables), one `sess.run` per update fed from
  NumPy; bench.py times a gradient function and an update function (`grads_s`, `apply_s`), here
  only the whole update exists. The embedding gradient is dense (its `convert_gradient_to_tensor`).
- with `--n_gpu` > 1 the towers are independent subgraphs of one graph: the executor may run them
  concurrently (inter-op threads), where bench.py runs them in sequence.
- the first `sess.run` of the update prunes and optimises the graph (seconds at full size): keep
  --warmup >= 1, as bench.py's default.
- no evaluation forward is timed; its eval graphs (`mgpu_predict`) are not built, no weights loaded.
- glibc malloc untouched, float32 only, no XLA, as bench.py's original mode; bench.py's optimized
  mode (trimmed, packed, LM head on masked positions only, fused Adam, malloc tuning) differs in all.
On a machine with a GPU, soft placement puts the towers on it.
"""
import argparse
import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import time
import types

import numpy as np

import bench  # this script's folder is on sys.path; bench sets up the gpt1_tf import
import machine

ORIGINAL_MODULES = ("train", "opt", "utils", "datasets", "analysis", "text_utils")
STUBBED = ("spacy", "ftfy", "pandas")  # imported by its text_utils.py / analysis.py only; never run here
N_SPECIAL = 3  # _start_, _delimiter_, _classify_
SEED = 42  # train.py's --seed
HPARAMS = {  # train.py's defaults for the update; t_total as bench.py's OptConfig(t_total=10_000)
    "opt": "adam", "lr": 6.25e-5, "lr_warmup": 0.002, "lr_schedule": "warmup_linear", "l2": 0.01,
    "vector_l2": False, "max_grad_norm": 1, "b1": 0.9, "b2": 0.999, "e": 1e-8, "afn": "gelu",
    "n_updates_total": 10_000,
}


def build_parser():
    p = argparse.ArgumentParser(prog="python benchmarks/bench_original.py", description=__doc__.split("\n")[0])
    p.add_argument("--original", required=True, help="a checkout of openai/finetune-transformer-lm (its train.py)")
    p.add_argument("--batches", help="npz with X [S,B,2,n_ctx,2], M [S,B,2,n_ctx], Y [S,B] (bench.py --write_batches); "
                                     "else bench.py's synthetic batches")
    p.add_argument("--steps", type=int, default=5, help="timed training updates (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    p.add_argument("--n_batch", type=int, default=None,
                   help="stories per tower (default: the batches' B / n_gpu; 8 for synthetic batches)")
    p.add_argument("--n_gpu", type=int, default=1, help="the original's towers (tf.split of each batch)")
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--n_ctx", type=int, default=77, help="synthetic batches only (else the batches' n_ctx)")
    p.add_argument("--n_vocab", type=int, default=40478)
    p.add_argument("--pdrop", type=float, default=0.1, help="every dropout rate (the original's 0.1)")
    p.add_argument("--lm_coef", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=0, help="intra/inter-op threads (0: TensorFlow's choice)")
    return p


def load_batches(args):
    """bench.py's batches (the file, or its synthetic ones), checked against the original's layout."""
    if args.batches:
        X, M, Y = bench.load_batches(argparse.Namespace(batches=args.batches))
    else:
        n_batch = args.n_batch or 8
        X, M, Y = bench.synthetic_batches(max(args.steps + args.warmup, 4), n_batch * args.n_gpu,
                                          n_ctx=args.n_ctx, n_vocab=args.n_vocab)
    S, B, K, n_ctx = X.shape[:4]
    if K != 2:
        raise SystemExit(f"the original's graph is Story Cloze's (2 endings per story); the batches have K={K}")
    if B % args.n_gpu:
        raise SystemExit(f"{B} stories per update do not split into --n_gpu {args.n_gpu} towers")
    if args.n_batch is not None and args.n_batch * args.n_gpu != B:
        raise SystemExit(f"--n_batch {args.n_batch} x --n_gpu {args.n_gpu} != the batches' {B} stories per update")
    first_pos = args.n_vocab + N_SPECIAL
    if not np.array_equal(X[..., 1], np.broadcast_to(np.arange(first_pos, first_pos + n_ctx), X.shape[:4])):
        raise SystemExit(f"position ids are not {first_pos}..: the batches were written for another --n_vocab")
    return X, M, Y


@contextlib.contextmanager
def tf1_imports(tf):
    """While the original's modules import: `tensorflow` is tf.compat.v1, STUBBED are empty modules."""
    saved = {name: sys.modules.get(name) for name in ("tensorflow",) + STUBBED}
    sys.modules["tensorflow"] = tf.compat.v1
    for name in STUBBED:
        sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def import_original(path, tf):
    """The original's train module, imported from `path` (first on sys.path, ahead of this repo's datasets/)."""
    path = os.path.realpath(path)
    if not os.path.isfile(os.path.join(path, "train.py")):
        raise SystemExit(f"--original {path}: no train.py "
                         "(git clone https://github.com/openai/finetune-transformer-lm)")
    for name in ORIGINAL_MODULES:  # a same-named module loaded from elsewhere must not stand in for its own
        module = sys.modules.get(name)
        if module is not None and os.path.dirname(os.path.realpath(getattr(module, "__file__", None) or "")) != path:
            del sys.modules[name]
    import joblib, sklearn.metrics, sklearn.model_selection, sklearn.utils, tqdm  # noqa: E401,F401 (before the swap)
    sys.path.insert(0, path)
    with tf1_imports(tf):
        train = importlib.import_module("train")
    for name in ("train", "opt", "utils"):
        got = os.path.dirname(os.path.realpath(sys.modules[name].__file__))
        assert got == path, f"{name} imported from {got}, not {path}"
    return train


def configure(train, args, n_ctx, n_batch):
    """Set the module globals train.py's functions read (what its `globals().update(args.__dict__)` did)."""
    values = dict(HPARAMS, n_vocab=args.n_vocab, n_special=N_SPECIAL, n_ctx=n_ctx, n_embd=args.n_embd,
                  n_head=args.n_head, n_layer=args.n_layer, embd_pdrop=args.pdrop, attn_pdrop=args.pdrop,
                  resid_pdrop=args.pdrop, clf_pdrop=args.pdrop, lm_coef=args.lm_coef, n_gpu=args.n_gpu,
                  n_batch=n_batch, n_batch_train=n_batch * args.n_gpu, clf_token=args.n_vocab + N_SPECIAL - 1)
    for name, value in values.items():
        setattr(train, name, value)


def build_graph(train, tf1, n_batch_train, n_ctx):
    """The original's training graph, as its __main__ builds it: placeholders -> mgpu_train."""
    tf1.set_random_seed(SEED)
    X = tf1.placeholder(tf1.int32, [n_batch_train, 2, n_ctx, 2])
    M = tf1.placeholder(tf1.float32, [n_batch_train, 2, n_ctx])
    Y = tf1.placeholder(tf1.int32, [n_batch_train])
    train_op, _, clf_losses, lm_losses = train.mgpu_train(X, M, Y)
    clf_loss = tf1.reduce_mean(clf_losses)  # the original fetches this with the train op each update
    return (X, M, Y), train_op, clf_loss, tf1.reduce_mean(lm_losses)


def make_session(tf1, threads):
    config = tf1.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=threads,
                             inter_op_parallelism_threads=threads)
    sess = tf1.Session(config=config)
    sess.run(tf1.global_variables_initializer())
    return sess


def time_updates(sess, placeholders, train_op, clf_loss, lm_loss, batches, args):
    """Run warmup + steps updates; returns (wall s, CPU s) of the timed ones and the first batch's losses."""
    X, M, Y = batches
    first = {}
    # the original's fetches plus the mean of its lm_losses (one small op), the same every update: a new
    # fetch set would make TF build (and Grappler optimise) another executor inside a timed update
    fetches = [clf_loss, train_op, lm_loss]

    def update(i):
        feed = dict(zip(placeholders, (X[i % len(X)], M[i % len(X)], Y[i % len(X)])))
        c0, t0 = time.process_time(), time.perf_counter()
        out = sess.run(fetches, feed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if i == 0:
            first.update(clf=float(out[0]), lm=float(out[2]))
        return wall, cpu

    for i in range(args.warmup):
        update(i)
    timed = [update(args.warmup + i) for i in range(args.steps)]
    return timed, first


def original_commit(path):
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def report(args, batches, timed, first, tf):
    X, M, _ = batches
    steps = [(args.warmup + i) % len(X) for i in range(args.steps)]
    step_s = float(np.median([t[0] for t in timed]))
    real_tokens = float(np.mean([M[s].sum() for s in steps]))
    first_loss = first["clf"] + args.lm_coef * first["lm"]
    return {
        "mode": "original_tf1", "task": "rocstories",
        "model": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head, "n_ctx": int(X.shape[3]),
                  "n_vocab": args.n_vocab, "stories_per_update": int(X.shape[1]), "n_gpu": args.n_gpu},
        "n_ctx": int(X.shape[3]),
        "batch_shape": {"X": list(X.shape[1:]), "M": list(M.shape[1:]), "Y": [int(X.shape[1])]},
        "batches": args.batches or "synthetic (benchmarks/bench.py synthetic_batches)",
        "mean_seq_len": round(float(M.sum(-1).mean()), 2),
        "steps": args.steps, "warmup": args.warmup,
        "train_step_s": round(step_s, 4),
        "train_step_cpu_s": round(float(np.median([t[1] for t in timed])), 4),
        "tokens_per_s": round(real_tokens / step_s, 1),
        "real_tokens_per_step": real_tokens,
        "timed_mean_seq_len": round(float(np.mean([M[s].sum(-1).mean() for s in steps])), 2),
        "first_loss": round(first_loss, 6), "first_clf_loss": round(first["clf"], 6),
        "first_lm_loss": round(first["lm"], 6),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": {"intra_op": args.threads, "inter_op": args.threads, "note": "0: TensorFlow's choice"},
        "placement": "allow_soft_placement=True (the towers' /gpu:i on the CPU when no GPU)",
        "cpu": machine.cpu(), "cpus": os.cpu_count(),
        "original": {"dir": os.path.realpath(args.original), "commit": original_commit(args.original)},
        "tf_version": tf.__version__,
    }


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.steps < 1:
        raise SystemExit("--steps must be at least 1")
    batches = load_batches(args)
    load_start = [round(x, 2) for x in os.getloadavg()]
    from gpt1_tf.runtime import quiet_tensorflow
    with quiet_tensorflow():  # TensorFlow's C++ start-up lines
        import tensorflow as tf
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)  # TF1 API deprecation notices
    tf.compat.v1.disable_v2_behavior()
    train = import_original(args.original, tf)
    n_ctx, B = batches[0].shape[3], batches[0].shape[1]
    configure(train, args, n_ctx, B // args.n_gpu)
    placeholders, train_op, clf_loss, lm_loss = build_graph(train, tf.compat.v1, B, n_ctx)
    with quiet_tensorflow():  # the devices' set-up lines
        sess = make_session(tf.compat.v1, args.threads)
    timed, first = time_updates(sess, placeholders, train_op, clf_loss, lm_loss, batches, args)
    res = {**report(args, batches, timed, first, tf), "loadavg_at_start": load_start,
           "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(res))
    if not np.isfinite(res["first_loss"]):
        print(f"error: the first batch's loss is not finite ({res['first_loss']})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
