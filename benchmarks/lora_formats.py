"""Each task format's final validation metric on the bundled samples: LoRA against full fine-tuning, one pretrained model.

    python benchmarks/lora_formats.py [--seeds 1 2 3] [--lora_rank 8] [--lora_lr_scale 10] [--work DIR]
    python benchmarks/lora_formats.py --model_dir save/pretrain/model          # an earlier pretrain.py --out

1. Pretrain (unless --model_dir): the README's tiny recipe on the bundled corpus
   (`pretrain.py "datasets/pretrain_sample/*.txt" --n_ctx 64 --n_embd 64 --n_head 4 --n_layer 2
   --n_batch 16 --n_iter 3 --lr 3e-3 --lr_warmup_updates 20 --eval_every 100`), into --work.
2. For each bundled sample (Story Cloze, SST-2, SNLI, STS-B, RACE: multiple choice, classification,
   entailment, similarity, 4-answer multiple choice) and each seed, `train.py --model_dir` that model
   (all layers transferred, --n_ctx 64 as pretrained) with the README's sample flags (Story Cloze:
   its pretrained recipe, lm_coef 0.5; the others: `$T`, lm_coef 0): full fine-tuning at the
   format's lr; `--lora_rank R` (default targets c_attn, c_proj; alpha = rank) at the same lr; and
   LoRA at --lora_lr_scale times it (LoRA is usually given a larger rate than full fine-tuning).
   Same seed, epochs and batches for all three.
3. The final validation metric: the task's first `va_` metric of the log's last record
   (log/<desc>.jsonl; `va_acc`, STS-B's `va_pearson`), per run and the mean over the seeds.

Everything is written under --work (default: a new temporary folder, removed at the end unless
--keep); nothing in the checkout. Prints a table, then one JSON line.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import machine  # noqa: E402 (this script's folder, on the path above)

MODEL = ["--n_embd", "64", "--n_head", "4", "--n_layer", "2"]  # and PRETRAIN's n_ctx: train.py caps the data's at it (RACE needs 74)
PRETRAIN = ["--n_ctx", "64", *MODEL, "--n_batch", "16", "--n_iter", "3", "--lr", "3e-3", "--lr_warmup_updates", "20",
            "--eval_every", "100"]
# README: the Story Cloze sample from the pretrained model (lm_coef 0.5); the other samples' `$T` without
# --n_transfer -1 (lm_coef 0 kept: at 2 x 64 the 40,558-row LM head is most of the work, a RACE run ~5 min with it)
SAMPLE = ["--n_gpu", "2", "--n_batch", "8", "--n_iter", "8", "--lr_warmup", "0.1", "--lm_coef", "0"]
TASKS = {  # dataset: (format, data folder, flags, lr)
    "rocstories": ("multiple choice", "rocstories_sample", ["--n_valid", "20", "--n_gpu", "2", "--n_batch", "4", "--n_iter", "3",
                                                            "--lr_schedule", "warmup_constant", "--lr_warmup", "0.1"], 3e-4),
    "sst2": ("classification", "sst2_sample", SAMPLE, 1e-3),
    "snli": ("entailment", "snli_sample", SAMPLE, 1e-3),
    "stsb": ("similarity", "stsb_sample", SAMPLE, 1e-3),
    "race": ("multiple choice, 4 answers", "race_sample", SAMPLE, 1e-3),
}


def run(cmd, what, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode:
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}): "
                         f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return proc


def pretrain(work):
    """The README's tiny pretraining on the bundled corpus: the model folder."""
    corpus = os.path.join(REPO, "datasets", "pretrain_sample", "*.txt")
    run([sys.executable, os.path.join(REPO, "pretrain.py"), corpus, *PRETRAIN, "--save_dir", os.path.join(work, "save"),
         "--log_dir", os.path.join(work, "log"), "--cache_dir", os.path.join(work, "cache")], "pretrain.py", work)
    return os.path.join(work, "save", "pretrain", "model")


def final_metric(log_path):
    """(name, value) of the task's first validation metric in the log's last record."""
    with open(log_path) as f:
        last = [json.loads(line) for line in f if line.strip()][-1]
    name = next(k for k in last if k.startswith("va_") and k != "va_cost")
    return name, last[name]


def fine_tune(args, work, dataset, seed, way):
    """One train.py run; way: "full", "lora" (the same lr) or "lora_lr" (--lora_lr_scale times it)."""
    _, folder, flags, lr = TASKS[dataset]
    desc = f"{dataset}_{way}_{seed}"
    lora = ["--lora_rank", str(args.lora_rank)] if way != "full" else []
    lr = float(f"{lr * (args.lora_lr_scale if way == 'lora_lr' else 1):g}")
    run([sys.executable, os.path.join(REPO, "train.py"), "--dataset", dataset, "--data_dir",
         os.path.join(REPO, "datasets", folder), "--model_dir", args.model_dir, *MODEL, "--n_ctx", "64", *flags, "--lr", f"{lr:g}",
         *lora, "--seed", str(seed), "--desc", desc, "--save_dir", os.path.join(work, "save"),
         "--log_dir", os.path.join(work, "log"), "--submission_dir", os.path.join(work, "submission")],
        f"train.py {desc}", work)
    name, value = final_metric(os.path.join(work, "log", f"{desc}.jsonl"))
    return {"dataset": dataset, "way": way, "seed": seed, "lr": lr, "metric": name, "value": value}


def table(rows, args):
    ways = ("full", "lora", "lora_lr")
    head = ["full fine-tuning", f"LoRA r={args.lora_rank}, same lr", f"LoRA r={args.lora_rank}, lr x{args.lora_lr_scale:g}"]
    lines = [f"| sample (format), final validation metric, seeds {' / '.join(map(str, args.seeds))} | "
             + " | ".join(head) + " |", "|---|" + "---|" * len(ways)]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        cells = []
        for way in ways:
            got = [r for r in rows if r["dataset"] == dataset and r["way"] == way]
            values = [r["value"] for r in got]
            cells.append(f"{' / '.join(f'{v:.1f}' for v in values)} (mean {sum(values) / len(values):.1f}, lr {got[0]['lr']:g})")
        lines.append(f"| {dataset} ({TASKS[dataset][0]}), {rows[[r['dataset'] for r in rows].index(dataset)]['metric']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python benchmarks/lora_formats.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--datasets", nargs="+", choices=tuple(TASKS), default=list(TASKS))
    p.add_argument("--lora_rank", type=int, default=8)
    p.add_argument("--lora_lr_scale", type=float, default=10.0, help="LoRA's second lr, times the format's (the first: the same)")
    p.add_argument("--model_dir", help="a pretrained tiny model (2 x 64, 4 heads) to fine-tune; default: pretrain one")
    p.add_argument("--work", help="the folder for every output (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary --work folder")
    args = p.parse_args(argv)
    if args.lora_rank < 1:
        p.error(f"--lora_rank must be at least 1, got {args.lora_rank}")
    if not args.lora_lr_scale > 0:
        p.error(f"--lora_lr_scale must be positive, got {args.lora_lr_scale}")
    if args.model_dir and not os.path.isdir(args.model_dir):
        p.error(f"--model_dir {args.model_dir}: no such folder")
    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="lora_formats_")
    os.makedirs(work, exist_ok=True)
    pretrained_here = not args.model_dir
    try:
        if args.model_dir:
            args.model_dir = os.path.abspath(args.model_dir)
        else:
            args.model_dir = pretrain(work)
        rows = []
        for seed in args.seeds:
            for dataset in args.datasets:
                for way in ("full", "lora", "lora_lr"):
                    rows.append(fine_tune(args, work, dataset, seed, way))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows, args))
    print(json.dumps({"cpu": machine.cpu(), "cpus": len(os.sched_getaffinity(0)), "pretrained": "here: pretrain.py " + " ".join(PRETRAIN) if pretrained_here else args.model_dir,
                      "lora_rank": args.lora_rank, "lora_lr_scale": args.lora_lr_scale, "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
