"""Time GPT-1 training updates and evaluation forwards: our default path against the original's.

    python benchmarks/bench.py [--batches FILE.npz] [--steps N] [--mode both|optimized|original]

Run from the repository root; without gpt1_tf installed, the script imports it from the checkout
it lies in.

Prints ONE JSON line. `--mode both` (the default) runs each mode in a fresh subprocess (so each
peak RSS is its own) on the same batches and reports the optimized figures plus the original
mode's and `speedup_vs_original_mode`. Modes:

- original: the original computation with our code: every sequence padded to n_ctx, LM head over
  every position (`lm_head="full"`), no packing, unfused Adam update, glibc malloc untouched
  (`StepConfig(trim=False, packed=False, lm_head="full", pool_only_eval=False, fused_apply=False)`);
  eval padded without the LM head (the original graph fetched only the clf outputs, so TF1 pruned
  its LM head), and `eval_with_lm_head_step_s` with it.
- optimized: the Trainer's defaults (`StepConfig()`): trimmed to the longest sequence, packed dense
  layers, LM head only on masked-in positions, XLA-fused Adam update (on one device; --jit_apply
  sets it), `gpt1_tf.runtime.tune_malloc` (unless --no_malloc_tuning); eval packed, the endings
  sharing their common prefix, the last block only at the `_classify_` positions. With --xla,
  `StepConfig(xla=True)`: the gradient and eval steps compiled with XLA, which needs static shapes
  (trimmed to a multiple of 8, the padded layout, the full LM head).

`--peer` also times HuggingFace's PyTorch `OpenAIGPTDoubleHeadsModel` on the same batches (torch
and transformers installed into a venv of their own, `benchmarks/bench_peer.py`; not project
dependencies) and reports `speedup_vs_peer_hf`.

Batches: `--batches FILE.npz` with X [S, B, K, n_ctx, 2] int32, M [S, B, K, n_ctx] float32, Y [S, B]
int32 (cycled). Without it, `synthetic_batches` draws Story Cloze-like batches (see there), or with
`--task sst2` `synthetic_sst2_batches` single-sentence ones (K = 1, the classification head).
"""
import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("gpt1_tf") is None:  # not installed: the checkout this script lies in
    sys.path.append(REPO)

from gpt1_tf.network import tokens  # noqa: E402 (after the path set-up; the standard library only, no TensorFlow)
import machine  # noqa: E402 (this script's folder is on sys.path)

def synthetic_batches(n_steps, n_batch, *, n_ctx=77, n_vocab=40478, seed=0):
    """Story Cloze-like batches, shaped as `transform_roc` builds them.

    Each story: [_start_] + story + [_delimiter_] + ending_k + [_classify_], the story shared by
    both endings; special and position ids from `gpt1_tf.network.tokens`. Lengths are drawn from a fixed
    distribution matching the real data's mean sequence (52.4 of n_ctx 77, BENCHMARKS.md): story
    ~ N(39, 6) clipped to [20, 60] tokens, ending ~ N(10.4, 3) clipped to [3, 20]; tokens uniform
    over the vocabulary. The mean is scaled down with n_ctx for shrunken models.
    """
    rng = np.random.RandomState(seed)
    k = n_ctx / 77
    X = np.zeros((n_steps, n_batch, 2, n_ctx, 2), np.int32)
    M = np.zeros((n_steps, n_batch, 2, n_ctx), np.float32)
    start, delimiter, clf_token = tokens.start_id(n_vocab), tokens.delimiter_id(n_vocab), tokens.clf_id(n_vocab)
    for s in range(n_steps):
        for b in range(n_batch):
            n_story = int(np.clip(round(rng.normal(39, 6) * k), 1, max(1, round(60 * k))))
            story = rng.randint(0, n_vocab, n_story)
            for e in range(2):
                n_end = int(np.clip(round(rng.normal(10.4, 3) * k), 1, max(1, round(20 * k))))
                x = [start] + list(story) + [delimiter] + list(rng.randint(0, n_vocab, n_end)) + [clf_token]
                x = x[:n_ctx - 1] + [clf_token] if len(x) > n_ctx else x
                X[s, b, e, :len(x), 0] = x
                M[s, b, e, :len(x)] = 1
    X[..., 1] = np.arange(tokens.position_id(n_vocab, 0), tokens.position_id(n_vocab, n_ctx))
    Y = rng.randint(0, 2, (n_steps, n_batch)).astype(np.int32)
    return X, M, Y


SST2_N_CTX = 66  # [_start_] + the longest SST-2 sentence + [_classify_]: assumed, see synthetic_sst2_batches


def synthetic_sst2_batches(n_steps, n_batch, *, n_ctx=SST2_N_CTX, n_vocab=40478, seed=0):
    """SST-2-like batches for the classification format: [_start_] sentence [_classify_], K = 1.

    GLUE's SST-2 train sentences are short phrases: lengths drawn as round(exp(N(2.3, 0.7))) BPE
    tokens (median 10, mean ~13), clipped to [1, n_ctx - 2]. An assumption about the real data (not on
    this machine), not a measurement. Labels 0/1.
    """
    rng = np.random.RandomState(seed)
    X = np.zeros((n_steps, n_batch, 1, n_ctx, 2), np.int32)
    M = np.zeros((n_steps, n_batch, 1, n_ctx), np.float32)
    for s in range(n_steps):
        for b in range(n_batch):
            n_text = int(np.clip(round(np.exp(rng.normal(2.3, 0.7))), 1, n_ctx - 2))
            x = [tokens.start_id(n_vocab)] + list(rng.randint(0, n_vocab, n_text)) + [tokens.clf_id(n_vocab)]
            X[s, b, 0, :len(x), 0] = x
            M[s, b, 0, :len(x)] = 1
    X[..., 1] = np.arange(tokens.position_id(n_vocab, 0), tokens.position_id(n_vocab, n_ctx))
    Y = rng.randint(0, 2, (n_steps, n_batch)).astype(np.int32)
    return X, M, Y


TASKS = {"rocstories": ("multiple_choice", 0), "sst2": ("classification", 2)}  # the head: format, classes


def add_step_flags(p):
    """The flags of the timed update: the batches, the model's shape, the towers, the step's options (also bench_lora.py's)."""
    p.add_argument("--batches", help="npz with X [S,B,2,n_ctx,2], M [S,B,2,n_ctx], Y [S,B]; else synthetic")
    p.add_argument("--steps", type=int, default=5, help="timed training updates (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates first (tracing, allocation)")
    p.add_argument("--task", choices=tuple(TASKS), default="rocstories",
                   help="the synthetic batches and the head: Story Cloze (2 endings) or SST-2 (one sentence)")
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--n_ctx", type=int, default=77)
    p.add_argument("--n_vocab", type=int, default=40478)
    p.add_argument("--n_batch", type=int, default=8, help="stories per tower (global batch n_batch*n_gpu)")
    p.add_argument("--n_gpu", type=int, default=1,
                   help="towers (one per GPU when there are enough, else in sequence on one device, as train.py)")
    p.add_argument("--mirrored", action="store_true",
                   help="CPU: run the towers as MirroredStrategy replicas on n_gpu logical CPU devices (the earlier "
                        "placement, a copy of the model and Adam state each) instead of in sequence")
    p.add_argument("--pdrop", type=float, default=0.1, help="every dropout rate (the original's 0.1)")
    p.add_argument("--lm_coef", type=float, default=0.5)
    p.add_argument("--xla", action="store_true",
                   help="jit_compile the gradient and eval steps (static shapes: trim to a multiple of 8, no packing, "
                        "the full LM head)")
    p.add_argument("--mixed_precision", choices=("bfloat16", "float16"), default=None,
                   help="compute dtype of the optimized mode (the original mode stays float32)")
    p.add_argument("--jit_apply", type=int, choices=(0, 1), default=None,
                   help="jit_compile the optimizer update of the optimized mode (default: the Trainer's, on with "
                        "one tower; the original mode's is never compiled)")
    p.add_argument("--no_malloc_tuning", action="store_true",
                   help="optimized mode: leave glibc malloc as it is (no gpt1_tf.runtime.tune_malloc)")
    p.add_argument("--threads", type=int, default=0, help="intra/inter-op threads (0: TensorFlow's choice)")
    return p


def build_parser():
    p = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n")[0])
    add_step_flags(p)
    p.add_argument("--write_batches", help="write the batches used to this npz (to reuse them elsewhere)")
    p.add_argument("--eval_steps", type=int, default=0, help="timed eval forwards (default: --steps)")
    p.add_argument("--eval_batch", type=int, default=0,
                   help="stories per eval forward (default: the global training batch; train.py evaluates and "
                        "predicts n_batch * n_gpu stories at a time, 32 by default), cut from the batches in order")
    p.add_argument("--mode", choices=("both", "optimized", "original"), default="both")
    p.add_argument("--peer", action="store_true",
                   help="with --mode both: also time HuggingFace's PyTorch OpenAIGPTDoubleHeadsModel on the same batches "
                        "(installs CPU torch + transformers into --peer_venv on first use; needs the network then)")
    p.add_argument("--peer_venv", default=None, help="the peer's venv (default ~/.cache/gpt1_tf/peer-hf-venv)")
    return p


def load_batches(args):
    if args.batches:
        d = np.load(args.batches)
        X, M, Y = d["X"].astype(np.int32), d["M"].astype(np.float32), d["Y"].astype(np.int32)
        assert X.ndim == 5 and X.shape[4] == 2, f"X must be [S, B, K, n_ctx, 2], got {X.shape}"
        assert M.shape == X.shape[:4] and Y.shape == X.shape[:2], f"M {M.shape} / Y {Y.shape} do not match X {X.shape}"
        return X, M, Y
    n_global, n_steps = args.n_batch * args.n_gpu, max(args.steps + args.warmup, 4)
    if args.task == "sst2":
        return synthetic_sst2_batches(n_steps, n_global, n_vocab=args.n_vocab)
    return synthetic_batches(n_steps, n_global, n_ctx=args.n_ctx, n_vocab=args.n_vocab)


def eval_batches(X, M, Y, n):
    """The stories of X [S, B, ...] regrouped into batches of n (0: B), [S', n, ...]; a partial tail is dropped."""
    B = X.shape[1]
    n = n or B
    X, M, Y = (a.reshape(-1, *a.shape[2:]) for a in (X, M, Y))
    k = len(X) // n
    if k < 1:
        raise SystemExit(f"--eval_batch {n}: the batches hold only {len(X)} stories")
    return tuple(a[:k * n].reshape(k, n, *a.shape[1:]) for a in (X, M, Y))


def start_tensorflow(args, mode="optimized"):
    """TensorFlow with --threads set, and the devices the towers run on: (tf, devices). Once per process, first."""
    from gpt1_tf.runtime import prepare_bfloat16, quiet_tensorflow
    if mode != "original" and args.mixed_precision == "bfloat16":
        prepare_bfloat16()  # as train.py: oneDNN's bfloat16 kernels (before TensorFlow starts)
    with quiet_tensorflow():  # TensorFlow's C++ start-up lines (TF_CPP_MIN_LOG_LEVEL shows them)
        import tensorflow as tf
        if args.threads:  # before anything initialises TensorFlow's runtime
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        from gpt1_tf.train.devices import setup_towers
        if args.mirrored:  # the earlier placement: n_gpu logical CPU devices, a replica (and a model copy) each
            tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                       [tf.config.LogicalDeviceConfiguration()] * args.n_gpu)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        else:
            devices, _ = setup_towers(args.n_gpu)
    return tf, devices


def model_config(args, n_ctx, mode="optimized"):
    """The benchmarked model's `ModelConfig`: the flags' shape, every dropout --pdrop, the task's head."""
    from gpt1_tf.network.config import ModelConfig
    return ModelConfig(n_vocab=args.n_vocab, n_ctx=n_ctx, n_embd=args.n_embd, n_head=args.n_head,
                       n_layer=args.n_layer, embd_pdrop=args.pdrop, attn_pdrop=args.pdrop,
                       resid_pdrop=args.pdrop, clf_pdrop=args.pdrop,
                       compute_dtype=(mode != "original" and args.mixed_precision) or "float32",
                       task_format=TASKS[args.task][0], n_classes=TASKS[args.task][1])


def make_trainer(args, mode, n_ctx, devices, tuning=None):
    """The mode's `Trainer` on `devices` (`tuning`: a `TuningConfig`, LoRA or partial fine-tuning; None: full)."""
    import tensorflow as tf
    from gpt1_tf.network.config import OptConfig, StepConfig
    from gpt1_tf.runtime import tune_malloc
    from gpt1_tf.train.devices import make_strategy
    from gpt1_tf.train.trainer import Trainer
    tf.random.set_seed(0)
    if mode == "original":  # the original's computation, with its float sums in our order (not exact=True)
        step_cfg = StepConfig(trim=False, packed=False, lm_head="full", pool_only_eval=False, fused_apply=False)
    else:  # the mode's own choices; with xla, packed stays None: XLA implies the padded layout
        step_cfg = StepConfig(xla=args.xla, fused_apply=None if args.jit_apply is None else bool(args.jit_apply))
        if not args.no_malloc_tuning:
            tune_malloc()  # before the model's tensors are allocated
    return Trainer(model_config(args, n_ctx, mode), OptConfig(t_total=10_000), step_cfg, strategy=make_strategy(devices),
                   lm_coef=args.lm_coef, n_towers=args.n_gpu, tuning=tuning)


def time_updates(trainer, X, M, Y, *, warmup, steps):
    """--warmup untimed then --steps timed updates on the batches X, M, Y [S, ...] (cycled), the i-th on batch i:
    (wall, gradient, Adam update, CPU) seconds of each timed one."""
    S = len(X)

    def timed_train(i):
        x, m, y = X[i % S], M[i % S], Y[i % S]
        c0 = time.process_time()
        t0 = time.perf_counter()
        grads, _, norm = trainer.compute_gradients(x, m, y, i)
        float(norm)
        t1 = time.perf_counter()
        trainer.apply_gradients(grads, norm)
        trainer.n_updates  # reads a variable the update wrote: the update has run
        t2 = time.perf_counter()
        return t2 - t0, t1 - t0, t2 - t1, time.process_time() - c0

    for i in range(warmup):
        timed_train(i)
    return [timed_train(warmup + i) for i in range(steps)]


def run_mode(args, mode):
    """Time one mode in this process; returns a dict of figures."""
    tf, devices = start_tensorflow(args, mode)
    X, M, Y = load_batches(args)
    trainer = make_trainer(args, mode, X.shape[3], devices)
    original = mode == "original"
    S = len(X)
    train = time_updates(trainer, X, M, Y, warmup=args.warmup, steps=args.steps)
    step_s = float(np.median([t[0] for t in train]))
    real_tokens = float(np.mean([M[(args.warmup + i) % S].sum() for i in range(args.steps)]))

    n_eval = args.eval_steps or args.steps
    EX, EM, EY = eval_batches(X, M, Y, args.eval_batch)
    def timed_eval(i):
        t0 = time.perf_counter()
        trainer.eval_batch(EX[i % len(EX)], EM[i % len(EX)], EY[i % len(EX)])
        return time.perf_counter() - t0
    for i in range(max(args.warmup, 1)):
        timed_eval(i)
    eval_s = float(np.median([timed_eval(i) for i in range(n_eval)]))

    out = {
        "mode": mode,
        "train_step_s": round(step_s, 4),
        "grads_s": round(float(np.median([t[1] for t in train])), 4),
        "apply_s": round(float(np.median([t[2] for t in train])), 4),
        "train_step_cpu_s": round(float(np.median([t[3] for t in train])), 4),
        "tokens_per_s": round(real_tokens / step_s, 1),
        "real_tokens_per_step": real_tokens,
        "timed_mean_seq_len": round(float(np.mean([M[(args.warmup + i) % S].sum(-1).mean() for i in range(args.steps)])), 2),
        "eval_step_s": round(eval_s, 4),
        "eval_stories_per_forward": int(EX.shape[1]),
    }
    if original:
        # the padded forward WITH the LM head computed (what the original would do, unpruned)
        fwd_lm = tf.function(lambda x, m, y: trainer.model(x, m, y, training=False, lm_head="full")[2])
        def timed_fwd_lm(i):
            t0 = time.perf_counter()
            fwd_lm(EX[i % len(EX)], EM[i % len(EX)], EY[i % len(EX)]).numpy()
            return time.perf_counter() - t0
        timed_fwd_lm(0)
        out["eval_with_lm_head_step_s"] = round(float(np.median([timed_fwd_lm(i) for i in range(n_eval)])), 4)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def time_peer(args, X, M, Y):
    """HF's figures on the same batches (`benchmarks/bench_peer.py`), in a venv of their own."""
    import tempfile

    from bench_peer import PEER_VENV_DEFAULT, ensure_peer_venv, run_peer  # this script's folder is on sys.path
    venv = args.peer_venv or PEER_VENV_DEFAULT
    ensure_peer_venv(venv, quiet=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.batches or os.path.join(tmp, "batches.npz")
        if X.shape[2] == 1:
            # one sequence per example: HF's double-heads model with one choice (label 0); the same
            # body and LM-head work, a 1-output classifier instead of a 2-class one (negligible)
            path = os.path.join(tmp, "batches.npz")
            np.savez(path, X=X, M=M, Y=np.zeros_like(Y))
        elif not args.batches:
            np.savez(path, X=X, M=M, Y=Y)
        return run_peer(path, steps=args.steps, warmup=args.warmup, n_layer=args.n_layer, n_embd=args.n_embd,
                        n_head=args.n_head, n_vocab=args.n_vocab, pdrop=args.pdrop, lm_coef=args.lm_coef,
                        threads=args.threads, venv=venv)


def main(argv=None):
    args = build_parser().parse_args(argv)
    X, M, Y = load_batches(args)
    if args.write_batches:
        np.savez(args.write_batches, X=X, M=M, Y=Y)
    info = {
        "task": args.task,
        "model": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head, "n_ctx": int(X.shape[3]),
                  "n_vocab": args.n_vocab, "stories_per_update": int(X.shape[1]), "n_gpu": args.n_gpu},
        "towers": "mirrored replicas on logical CPUs" if args.mirrored else "train.py's placement (devices.setup_towers)",
        "batches": args.batches or f"synthetic (benchmarks/bench.py {'synthetic_sst2_batches' if args.task == 'sst2' else 'synthetic_batches'})",
        "mean_seq_len": round(float(M.sum(-1).mean()), 2),
        "steps": args.steps, "warmup": args.warmup, "cpu": machine.cpu(), "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if args.mode != "both":
        res = {**info, **run_mode(args, args.mode)}
    else:
        res = {}
        for mode in ("original", "optimized"):
            cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
                   "--mode", mode]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.peer:
            try:
                res["peer"] = time_peer(args, X, M, Y)
            except RuntimeError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
        orig, opt, peer = res.pop("original"), res.pop("optimized"), res.pop("peer", None)
        keys = ("train_step_s", "grads_s", "apply_s", "train_step_cpu_s", "tokens_per_s", "eval_step_s",
                "peak_rss_mb")
        res = {**info, **{k: opt[k] for k in keys}, "real_tokens_per_step": opt["real_tokens_per_step"],
               "timed_mean_seq_len": opt["timed_mean_seq_len"], "eval_stories_per_forward": opt["eval_stories_per_forward"],
               "speedup_vs_original_mode": round(orig["train_step_s"] / opt["train_step_s"], 3),
               "eval_speedup_vs_original_mode": round(orig["eval_step_s"] / opt["eval_step_s"], 3),
               "eval_speedup_vs_original_with_lm_head": round(orig["eval_with_lm_head_step_s"] / opt["eval_step_s"], 3),
               "original_mode": {k: orig[k] for k in keys + ("eval_with_lm_head_step_s",)}}
        if peer is not None:
            res["speedup_vs_peer_hf"] = round(peer["peer_train_step_s"] / res["train_step_s"], 3)
            res["eval_speedup_vs_peer_hf"] = round(peer["peer_eval_no_lm_head_step_s"] / res["eval_step_s"], 3)
            res["peer_hf"] = peer
    from gpt1_tf.runtime import quiet_tensorflow
    with quiet_tensorflow():
        import tensorflow as tf
    res["tf_version"] = tf.__version__
    res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
