"""Held-out perplexity per epoch of pretraining runs, from their logs, as one PNG (BENCHMARKS.md run I).

    python benchmarks/plot_pretrain.py OUT.png "bundled sample=log_a/pretrain.jsonl" "Tiny Shakespeare=log_b/pretrain.jsonl"

Each LABEL=LOG is a `pretrain.py` log (`log/<desc>.jsonl`): its evaluation records' `va_ppl`
against the epoch they were taken at (updates / updates per epoch, from the record of the first
epoch's end). A thin client of the library's learning curves (`gpt1_tf.train.curves`, which reads
the log and draws with matplotlib, a dependency of the project): run it with the project's Python.
One log's own curves, loss too: `python analysis.py LOG`.
"""
import dataclasses
import sys

from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.train import curves, logs


def curve(path, label):
    """A pretraining log's held-out perplexities as a `curves.Series` against the epoch."""
    evaluations = logs.read_evaluations(path)
    if not evaluations or curves.kind_of(evaluations, path) != logs.PRETRAINING:
        raise DataError(path, "not a pretraining log with evaluations (pretrain.py's log/pretrain.jsonl)")
    per_epoch = next((r["n_updates"] for _, r in evaluations if r["n_epochs"] >= 1), None)
    if not per_epoch:
        raise DataError(path, "no evaluation at an epoch's end: the updates an epoch are unknown")
    line = curves.series(evaluations, logs.PERPLEXITY, label, path)
    return dataclasses.replace(line, x=tuple(n / per_epoch for n in line.x))


def main(out, *specs):
    lines = tuple(curve(path, label) for label, _, path in (spec.partition("=") for spec in specs))
    panel = curves.Panel("held-out perplexity", lines, log_y=True)
    picture = curves.Curves("pretrain.py, tiny model (2 x 64), held-out perplexity", (panel,), xlabel="epoch")
    print(f"wrote {curves.draw(picture, out, curves.Style(width=6, height=3.6, dpi=120))}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    try:
        main(*sys.argv[1:])
    except Gpt1Error as err:
        sys.exit(f"error: {err}")
