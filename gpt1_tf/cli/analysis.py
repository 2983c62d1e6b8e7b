"""`python analysis.py LOG`: a run log's learning curves as one PNG, beside the log.

    python analysis.py log/rocstories.jsonl                  # train.py's log: cost and the task's metric
    python analysis.py log/pretrain.jsonl --out curves.png   # pretrain.py's log: loss and perplexity

The drawing is `gpt1_tf.train.curves`; train.py --analysis draws the same picture after its report.
"""
import argparse

from gpt1_tf.cli.common import exits


def build_parser():
    p = argparse.ArgumentParser(prog="analysis.py", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("log", help="train.py's log/<desc>.jsonl or pretrain.py's log/pretrain.jsonl")
    p.add_argument("--out", default=None, help="the PNG to write (default: the log's path with .png)")
    return p


@exits
def main(argv=None):
    """Draw the curves and say where (`wrote PATH`); bad input is one line and exit 1, with no picture."""
    args = build_parser().parse_args(argv)
    from gpt1_tf.train import curves
    print(f"wrote {curves.write_curves(args.log, args.out)}")
