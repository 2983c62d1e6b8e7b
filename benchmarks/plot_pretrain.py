"""Held-out perplexity per epoch of pretraining runs, from their logs, as one PNG (BENCHMARKS.md run I).

    python benchmarks/plot_pretrain.py OUT.png "bundled sample=log_a/pretrain.jsonl" "Tiny Shakespeare=log_b/pretrain.jsonl"

Each LABEL=LOG is a `pretrain.py` log (`log/<desc>.jsonl`): its evaluation records' `va_ppl`
against the epoch they were taken at (updates / updates per epoch, from the record of the first
epoch's end). Needs matplotlib, which is not a dependency of the project: run it with a Python
that has it (`pip install matplotlib` in a venv of its own).
"""
import json
import sys


def curve(path):
    """(epochs, perplexities) of a pretraining log's evaluations."""
    with open(path) as f:
        records = [json.loads(line) for line in f][1:]  # the first record is the command line
    records = [r for r in records if r.get("va_ppl") is not None]
    per_epoch = next(r["n_updates"] for r in records if r["n_epochs"] >= 1)
    return [r["n_updates"] / per_epoch for r in records], [r["va_ppl"] for r in records]


def main(out, *specs):
    try:
        import matplotlib
    except ImportError:
        sys.exit("error: plot_pretrain.py needs matplotlib (pip install matplotlib, in a venv of its own)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for spec in specs:
        label, _, path = spec.partition("=")
        x, y = curve(path)
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out perplexity")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("pretrain.py, tiny model (2 x 64), held-out perplexity")
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(*sys.argv[1:])
