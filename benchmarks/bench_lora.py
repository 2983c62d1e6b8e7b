"""Full fine-tuning against LoRA and partial fine-tuning: step time, peak RSS, trained parameters, Adam state, MFU.

    python benchmarks/bench_lora.py [--rounds 2] [--steps 5] [--warmup 1] [--configs full lora layers2]
    python benchmarks/bench_lora.py --n_layer 2 --n_embd 64 --n_head 4 --n_vocab 500 --steps 2 --rounds 1   # a quick look

The update `bench.py` times (its optimized mode: the Trainer's defaults, one tower of --n_batch 8
Story Cloze-shaped stories by default, synthetic or --batches FILE.npz, full size, float32), for
each configuration of --configs (`TuningConfig`, as train.py's flags build it):

- full: every parameter trains (the original's fine-tuning);
- lora: `--lora_rank 8 --lora_targets c_attn,c_proj` (--lora_rank, --lora_targets);
- layers2: `--train_layers 2` (--train_layers); the table is frozen, its special-token rows train;
- layers2_frozen: `--train_layers 2 --freeze_embeddings`: nothing below the top layers trains, so the
  backward pass can stop there (not in the default --configs).

Each configuration runs in a subprocess of its own (its peak RSS, ru_maxrss, is its own), the
configurations interleaved over --rounds rounds (A B C A B C), on the same batches. Each worker
first measures this machine's float32 matmul peak (`throughput.measure_matmul_peak`, a 5 s budget),
then --warmup untimed and --steps timed updates (median). Per configuration: update seconds (and its
gradient and Adam parts), peak RSS, trained values (count; % of the base model's, as train.py's
note), the Adam state's bytes read from the optimizer's m and v variables (checked against
2 x 4 bytes x trained values), and two MFUs: `throughput.flops_per_token` (full fine-tuning's 6N +
12 L n_embd T, the same numerator for every row, so it compares speed) and the work this
configuration needs (`needed_flops_per_token`: frozen weights need no weight gradient, and the
backward pass stops below the lowest layer that trains). The JSON's MFUs are over the worker's own
peak; the table's over the highest peak any worker measured (a worker that measured while another
process held a core reads a low peak). Prints a table, then one JSON line with the machine and the
load. On a shared machine compare the CPU seconds too: they count the work, not the cores left over.
"""
import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402 (this script's folder, on the path above; bench puts the checkout on the path)
import machine  # noqa: E402

CONFIGS = ("full", "lora", "layers2", "layers2_frozen")


def tuning_config(args, name):
    """The `TuningConfig` of a configuration name under the flags."""
    from gpt1_tf.network.config import TuningConfig
    if name == "full":
        return TuningConfig()
    if name == "lora":
        return TuningConfig(lora_rank=args.lora_rank, lora_targets=args.lora_targets)
    return TuningConfig(train_layers=args.train_layers, freeze_embeddings=name == "layers2_frozen")


def needed_flops_per_token(model_cfg, tuning, *, lm_head=True):
    """Model FLOPs of one trained token under `tuning`: forward, backward to the lowest layer a gradient must reach,
    and the weight gradients of what trains. Full tuning: `throughput.flops_per_token` (6 N + 12 L n_embd T).

    Counted as there: the layers' conv1d weights and the tied LM head's table (2 FLOPs a weight forward,
    2 for the input's gradient, 2 for the weight's); attention 4 n_embd T a layer forward, 8 backward.
    LoRA's x A B: 2 r (n_in + n_out) each of the three. A frozen table's trained special rows (a lookup, no
    matmul) still need the gradient at the bottom: the backward pass then runs through every layer.
    """
    from gpt1_tf.network import arrays
    L, d, T = model_cfg.n_layer, model_cfg.n_embd, model_cfg.n_ctx
    sizes = {"n_embd": d, "n_table": model_cfg.n_table}
    layer = sum(int(np.prod(a.shape(sizes))) for a in arrays.LAYER if a.conv)
    table = sum(int(np.prod(a.shape(sizes))) for a in arrays.MODEL_FIRST) if lm_head else 0
    trained = tuning.trained_layers(L)
    lowest = 0 if (not tuning.frozen_table or tuning.special_rows) else min(trained)
    n_back = L - lowest  # layers the backward pass runs through
    forward = 2 * (L * layer + table) + 4 * L * d * T
    backward = 2 * (n_back * layer + table) + 8 * n_back * d * T
    if tuning.lora:
        # W [1, n_in, n_out] gets A [n_in, r] and B [r, n_out]
        adapters = sum(tuning.lora_rank * sum(arrays.lora_target(name).shape(sizes)[1:]) for name in tuning.lora_targets)
        forward += 2 * len(trained) * adapters
        backward += 4 * len(trained) * adapters  # the input's gradient and A's and B's
    else:
        backward += 2 * len(trained) * layer
    if not tuning.frozen_table:
        backward += 2 * table
    return forward + backward


def worker(args):
    """One configuration in this process: its figures."""
    tf, devices = bench.start_tensorflow(args)
    from gpt1_tf.network import lora
    from gpt1_tf.train import throughput
    peak = throughput.measure_matmul_peak("float32", budget_s=5)
    X, M, Y = bench.load_batches(args)
    tuning = tuning_config(args, args.config)
    trainer = bench.make_trainer(args, "optimized", X.shape[3], devices, tuning=tuning)
    n_trained, n_base = lora.n_values(trainer.params), lora.n_values(trainer.model.params_in_order())
    opt = trainer.optimizer
    adam_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in opt._m + opt._v)  # m and v, one pair a trained variable
    assert len(opt._m) == len(opt._v) == len(trainer.params), "one m and one v per trained variable"
    assert adam_bytes == 2 * 4 * n_trained, f"Adam state {adam_bytes} B is not 2 x 4 B x {n_trained} trained values"
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    train = bench.time_updates(trainer, X, M, Y, warmup=args.warmup, steps=args.steps)
    step_s = float(np.median([t[0] for t in train]))
    tokens = float(np.mean([M[(args.warmup + i) % len(X)].sum() for i in range(args.steps)]))
    cfg, lm = trainer.cfg, args.lm_coef > 0
    return {"config": args.config, "step_s": step_s, "grads_s": float(np.median([t[1] for t in train])),
            "apply_s": float(np.median([t[2] for t in train])), "cpu_s": float(np.median([t[3] for t in train])),
            "steps_s": [round(t[0], 3) for t in train], "tokens_per_step": tokens,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_after_build_mib": round(rss_built, 1),
            "trained_values": n_trained, "base_values": n_base, "trained_pct": 100 * n_trained / n_base,
            "adam_state_bytes": adam_bytes, "matmul_peak_flops": peak,
            "mfu_full_flops": tokens / step_s * throughput.flops_per_token(cfg, lm_head=lm) / peak,
            "mfu_needed_flops": tokens / step_s * needed_flops_per_token(cfg, tuning, lm_head=lm) / peak,
            "flops_per_token": throughput.flops_per_token(cfg, lm_head=lm),
            "needed_vs_full_flops": needed_flops_per_token(cfg, tuning, lm_head=lm) / throughput.flops_per_token(cfg, lm_head=lm)}


def run_worker(argv, config):
    """A configuration in a subprocess of its own: its JSON figures, with the load before and after."""
    before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--worker", config],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"error: the {config} worker failed (exit {proc.returncode}): "
                         f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_before": round(before, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def table(rows, rounds):
    """Markdown: one line per configuration, each round's figures separated by " / "; MFU over the best peak measured."""
    peak = max(r["matmul_peak_flops"] for r in rows)

    def each(name, fmt, key=None, value=None):
        return " / ".join(fmt(r[key] if key else value(r)) for r in rows if r["config"] == name)
    lines = ["| configuration | update s (median) | CPU s | gradient s | Adam update s | peak RSS MiB | trained values "
             "(% of base) | Adam state | MFU, full FT's FLOPs | MFU, the work needed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["config"] for r in rows):
        first = next(r for r in rows if r["config"] == name)
        mfu = lambda ratio: lambda r: r["tokens_per_step"] / r["step_s"] * r["flops_per_token"] * ratio / peak  # noqa: E731
        lines.append(" | ".join([
            f"| {name}", each(name, "{:.2f}".format, "step_s"), each(name, "{:.2f}".format, "cpu_s"),
            each(name, "{:.2f}".format, "grads_s"), each(name, "{:.3f}".format, "apply_s"),
            each(name, "{:,.0f}".format, "peak_rss_mib"),
            f"{first['trained_values']:,} ({first['trained_pct']:.2f}%)", f"{first['adam_state_bytes'] / 2**20:,.1f} MiB",
            each(name, lambda x: f"{100 * x:.0f}%", value=mfu(1)),
            each(name, lambda x: f"{100 * x:.0f}%", value=mfu(first["needed_vs_full_flops"]))
            + f" (x{first['needed_vs_full_flops']:.2f} the work)"]) + " |")
    return "\n".join(lines) + (f"\n\n{rounds} rounds, one figure per round (/); MFU over the highest matmul peak the workers "
                               f"measured, {peak / 1e9:.0f} GFLOP/s")


def build_parser():
    p = argparse.ArgumentParser(prog="python benchmarks/bench_lora.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=["full", "lora", "layers2"])
    p.add_argument("--rounds", type=int, default=2, help="rounds of all configurations, interleaved")
    p.add_argument("--lora_rank", type=int, default=8)
    p.add_argument("--lora_targets", type=lambda s: tuple(s.split(",")), default=("c_attn", "c_proj"),
                   help="comma-separated (train.py's --lora_targets)")
    p.add_argument("--train_layers", type=int, default=2)
    p.add_argument("--worker", choices=CONFIGS, dest="config", help=argparse.SUPPRESS)
    return bench.add_step_flags(p)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = build_parser()
    args = p.parse_args(argv)
    for name in ("rounds", "lora_rank", "train_layers", "steps", "n_batch", "n_gpu"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.train_layers > args.n_layer:
        p.error(f"--train_layers {args.train_layers} is more than --n_layer {args.n_layer}")
    try:
        tuning_config(args, "lora").check(bench.model_config(args, args.n_ctx))
    except ValueError as err:  # ConfigError: an unknown LoRA target, ...
        p.error(str(err))
    if args.config:
        print(json.dumps(worker(args)))
        return 0
    X, M, _ = bench.load_batches(args)
    loads = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for r in range(args.rounds):
        for name in args.configs:
            rows.append({"round": r + 1, **run_worker(argv, name)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # kept should a later worker fail
    print(table(rows, args.rounds))
    print(json.dumps({"cpu": machine.cpu(), "cpus": len(os.sched_getaffinity(0)), "loadavg_at_start": loads,
                      "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
                      "model": {k: getattr(args, k) for k in ("n_layer", "n_embd", "n_head", "n_vocab", "n_batch", "n_gpu")}
                      | {"n_ctx": int(X.shape[3]), "mean_seq_len": round(float(M.sum(-1).mean()), 2)},
                      "steps": args.steps, "warmup": args.warmup, "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
