"""Pretraining at the paper's shape, ours against HuggingFace: seconds per update, tokens/s, peak RSS, MFU.

    python benchmarks/bench_pretrain.py                                  # 12 x 768, 64 x 512 per update
    python benchmarks/bench_pretrain.py --updates 1 --dtypes float32     # shorter
    python benchmarks/bench_pretrain.py --n_layer 2 --n_embd 64 --n_head 4 --n_ctx 64 --n_batch 16 --n_micro 4

One update: --n_batch windows of --n_ctx random token ids (the paper: 64 x 512), run as --n_micro
micro-batches with gradient accumulation, dropout 0.1, clipped by global norm 1.0, then one Adam
step. Each configuration runs in a subprocess of its own (its peak RSS is its own), in this order:
ours float32, the peer float32, ours bfloat16, the peer bfloat16 (--dtypes):
- ours: `gpt1_tf.train.pretraining.LMTrainer(n_micro=...)`, `ModelConfig(compute_dtype=...)`, one
  device. --warmup whole updates first (the first one traces the step: `first_update_s`), then
  --updates timed updates (median);
- the peer (`peer_hf_pretrain.py` in the venv of `bench_peer.py`): transformers'
  `OpenAIGPTLMHeadModel`, random init, the same shape and dropout, train mode, the same
  micro-batches with gradient accumulation, clip_grad_norm_(1.0), fused AdamW; bfloat16 as
  `torch.autocast("cpu", torch.bfloat16)` around each micro-batch's forward. Eager PyTorch has
  nothing to trace: its warm-up is --warmup updates of ONE micro-batch; then --updates timed updates.
  torch runs --threads threads (default: the cores this process may use, TensorFlow's intra-op default).

MFU: `gpt1_tf.train.throughput.flops_per_token` (the same model FLOPs for both) x tokens/s over the
machine's float matmul rate in that dtype, `throughput.measure_matmul_peak` in TensorFlow, measured
afresh (a 10 s budget) in our worker of that dtype just before its timing. The 1-minute load average is read
before the first configuration (waiting up to --wait_load_s while it is above --max_load) and
around each configuration. Prints a short table, then one JSON line with the CPU model.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_peer  # noqa: E402 (this script's folder, on the path above)
import machine  # noqa: E402

PEER_WORKER = os.path.join(HERE, "peer_hf_pretrain.py")
SHAPE = ("n_layer", "n_embd", "n_head", "n_vocab", "n_ctx", "n_batch", "n_micro", "pdrop", "updates", "warmup", "seed")


def load1():
    """The 1-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_for_load(max_load, wait_s, poll_s=30):
    """Poll the load every poll_s until it is at most max_load or wait_s have passed: the loads seen."""
    seen, deadline = [load1()], time.time() + wait_s
    while seen[-1] > max_load and time.time() < deadline:
        print(f"load {seen[-1]:.2f} > {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(poll_s)
        seen.append(load1())
    return seen


def rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ours(args):
    """Our worker: one JSON line of this dtype's figures."""
    import keras
    import numpy as np
    import tensorflow as tf
    from gpt1_tf.network.config import ModelConfig, OptConfig
    from gpt1_tf.train import throughput
    from gpt1_tf.train.pretraining import LMTrainer
    peak = throughput.measure_matmul_peak(args.dtype, budget_s=10)  # a longer budget: a loaded machine
    keras.utils.set_random_seed(args.seed)
    p = args.pdrop
    cfg = ModelConfig(n_vocab=args.n_vocab, n_ctx=args.n_ctx, n_embd=args.n_embd, n_head=args.n_head,
                      n_layer=args.n_layer, embd_pdrop=p, attn_pdrop=p, resid_pdrop=p, compute_dtype=args.dtype)
    trainer = LMTrainer(cfg, OptConfig(lr=2.5e-4, lr_schedule="warmup_cosine", t_total=1000),
                        tf.distribute.get_strategy(), args.seed, n_micro=args.n_micro)
    rss_model = rss_mb()
    rng = np.random.RandomState(args.seed)

    def update():
        ids = tf.constant(rng.randint(0, args.n_vocab, (args.n_batch, args.n_ctx)), tf.int32)
        start = time.perf_counter()
        loss, _, _ = trainer.train_step(ids)  # floats: the update has run when it returns
        return time.perf_counter() - start, loss

    first = [update()[0] for _ in range(args.warmup)]
    timed = [update() for _ in range(args.updates)]
    return {"s_per_update": statistics.median(t for t, _ in timed), "update_s": [round(t, 2) for t, _ in timed],
            "first_update_s": round(first[0], 2) if first else None, "last_loss": round(timed[-1][1], 4),
            "peak_rss_mb": rss_mb(), "rss_after_model_mb": rss_model, "matmul_peak_flops": peak,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
            "tf_version": tf.__version__}


def run_json(cmd, what, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(proc.stderr.splitlines()[-15:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(args, who, dtype, python):
    """One configuration in a subprocess: its figures, with the load around it."""
    options = [a for k in SHAPE for a in (f"--{k}", str(getattr(args, k)))] + ["--dtype", dtype]
    before = load1()
    if who == "ours":
        out = run_json([sys.executable, os.path.abspath(__file__), "--worker", *options], f"ours {dtype}")
    else:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        out = run_json([python, "-I", PEER_WORKER, *options, "--threads", str(args.threads)], f"peer {dtype}", env)
    return {**out, "load_before": before, "load_after": load1()}


def table(rows):
    lines = ["| who | dtype | s / update | tokens/s | peak RSS MiB | MFU |", "|---|---|---|---|---|---|"]
    for r in rows:
        mfu = "-" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
        lines.append(f"| {r['who']} | {r['dtype']} | {r['s_per_update']:.2f} | {r['tokens_per_s']:.0f} | "
                     f"{r['peak_rss_mb']:,.0f} | {mfu} |")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--n_vocab", type=int, default=40478)
    p.add_argument("--n_ctx", type=int, default=512)
    p.add_argument("--n_batch", type=int, default=64, help="windows per update (the paper: 64)")
    p.add_argument("--n_micro", type=int, default=16, help="micro-batches per update (16: 4 windows each)")
    p.add_argument("--pdrop", type=float, default=0.1, help="embedding, attention and residual dropout")
    p.add_argument("--updates", type=int, default=2, help="timed updates (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates first (the peer: of one micro-batch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    p.add_argument("--skip_peer", action="store_true")
    p.add_argument("--peer_venv", default=bench_peer.PEER_VENV_DEFAULT)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads for the peer")
    p.add_argument("--max_load", type=float, default=1.5, help="wait while the 1-minute load is above this")
    p.add_argument("--wait_load_s", type=float, default=600, help="... for at most this many seconds")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    return p


def main():
    args = build_parser().parse_args()
    if args.worker:
        print(json.dumps(ours(args)))
        return
    assert args.n_batch % args.n_micro == 0, f"--n_micro {args.n_micro} does not divide --n_batch {args.n_batch}"
    from gpt1_tf.network.config import ModelConfig
    from gpt1_tf.train.throughput import flops_per_token
    cfg = ModelConfig(n_vocab=args.n_vocab, n_ctx=args.n_ctx, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer)
    python = None if args.skip_peer else bench_peer.ensure_peer_venv(args.peer_venv)
    loads = wait_for_load(args.max_load, args.wait_load_s)
    tokens, fpt = args.n_batch * args.n_ctx, flops_per_token(cfg)
    rows, peaks = [], {}
    for dtype in args.dtypes:
        for who in ("ours",) + (() if args.skip_peer else ("peer",)):
            r = {"who": who, "dtype": dtype, **measure(args, who, dtype, python)}
            if who == "ours":
                peaks[dtype] = r["matmul_peak_flops"]
            r["tokens_per_s"] = tokens / r["s_per_update"]
            r["mfu"] = r["tokens_per_s"] * fpt / peaks[dtype]
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)  # kept should a later configuration fail
    ratios = {}
    for dtype in args.dtypes:
        by = {r["who"]: r for r in rows if r["dtype"] == dtype}
        if "peer" in by:
            ratios[f"ours_vs_peer_{dtype}"] = round(by["ours"]["tokens_per_s"] / by["peer"]["tokens_per_s"], 2)
    for who in ("ours", "peer"):
        by = {r["dtype"]: r for r in rows if r["who"] == who}
        if len(by) == 2:
            ratios[f"{who}_bfloat16_vs_float32"] = round(by["bfloat16"]["tokens_per_s"] / by["float32"]["tokens_per_s"], 2)
    for r in rows:
        r.update(tokens_per_s=round(r["tokens_per_s"], 1), mfu=round(r["mfu"], 4), s_per_update=round(r["s_per_update"], 2))
    print(table(rows))
    print(json.dumps({"cpu": machine.cpu(), "cpus": len(os.sched_getaffinity(0)), "load_before_start": loads,
                      **{k: getattr(args, k) for k in SHAPE}, "tokens_per_update": tokens, "flops_per_token": fpt,
                      "matmul_peak_flops": peaks, "ratios": ratios, "runs": rows}))


if __name__ == "__main__":
    main()
