"""What bfloat16 mixed precision costs in accuracy: float32 and bfloat16 side by side.

    python benchmarks/bf16_accuracy.py [--seeds 0 1 2] [--skip_sample]

1. The README's first command (a 2-layer model fine-tuned from scratch on the bundled Story Cloze
   sample), once per seed, with and without `--mixed_precision bfloat16`: valid and test accuracy,
   the last evaluation's costs.
2. The tests' tiny runs (`tests/test_task_heads.py`, `learn`): a 1-layer model learns each task
   format's invented task; its loss and metric after 60 updates.

Prints one JSON line. Run from the repository root; without gpt1_tf installed, the script imports
it from the checkout it lies in.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import machine  # noqa: E402 (this script's folder, on the path above)

# the README's first command, after its install step
SAMPLE_RUN = ["--dataset", "rocstories", "--data_dir", os.path.join(REPO, "datasets", "rocstories_sample"),
              "--n_valid", "20", "--n_transfer", "-1", "--n_layer", "2", "--n_embd", "64", "--n_head", "4",
              "--n_gpu", "2", "--n_batch", "4", "--n_iter", "3", "--lr", "3e-4", "--lr_schedule", "warmup_constant",
              "--lr_warmup", "0.1", "--submit", "--analysis"]
DTYPES = ("float32", "bfloat16")


def sample_run(seed, dtype):
    """The README's command in a scratch folder: {valid, test, va_cost, tr_cost}."""
    extra = [] if dtype == "float32" else ["--mixed_precision", dtype]
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *SAMPLE_RUN, "--seed", str(seed), *extra],
                              cwd=cwd, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"train.py failed ({dtype}, seed {seed}): {proc.stderr.strip().splitlines()[-1]}")
        with open(os.path.join(cwd, "log", "rocstories.jsonl")) as f:
            last = [json.loads(line) for line in f][-1]
    accuracy = dict(re.findall(r"ROCStories (Valid|Test) Accuracy:\s+([\d.]+)", proc.stdout))
    return {"valid": float(accuracy["Valid"]), "test": float(accuracy["Test"]),
            "va_cost": round(last["va_cost"], 4), "tr_cost": round(last["tr_cost"], 4)}


def tiny_runs():
    """The tests' invented tasks, each format in both dtypes: loss and metric after training."""
    from test_task_heads import HEADS, learn
    out = {}
    for task_format, n_classes in HEADS:
        for dtype in DTYPES:
            _, (loss, score) = learn(task_format, n_classes, dtype)
            out[f"{task_format}/{n_classes}/{dtype}"] = {"loss": round(loss, 4), "score": round(float(score), 2)}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python benchmarks/bf16_accuracy.py", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--skip_sample", action="store_true", help="only the tests' tiny runs")
    args = p.parse_args(argv)
    result = {"cpu": machine.cpu()}
    if not args.skip_sample:
        result["sample"] = {dtype: {seed: sample_run(seed, dtype) for seed in args.seeds} for dtype in DTYPES}
        for dtype in DTYPES:
            runs = result["sample"][dtype].values()
            result["sample"][f"{dtype}_mean"] = {k: round(sum(r[k] for r in runs) / len(runs), 3)
                                                 for k in ("valid", "test", "va_cost")}
    result["tiny"] = tiny_runs()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
