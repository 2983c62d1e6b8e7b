"""`python -m gpt1_tf.export SOURCE --to FORMAT --out PATH`: GPT-1's weights from any format to any other.

SOURCE (told apart by what it is):
- a folder with the original's `params_shapes.json` + `params_*.npy` (OpenAI's `model/`);
- a HuggingFace `openai-gpt` folder (`config.json` + `model.safetensors`);
- a `best_params.jl` written by `train.py --submit` (its head from `best_params.head.json` beside it);
- a `.keras` file of a `TransformerModel`.

--to:
- `hf`: config.json, model.safetensors, vocab.json, merges.txt (`gpt1_tf.weights.hf`);
- `shards`: the original's 10 shards (a language model: the special rows and a classifier are left out);
- `keras`: a `.keras` file of a `TransformerModel`;
- `saved_model`: a SavedModel for TF Serving (`gpt1_tf.weights.saved_model`).

The output is written whole or not at all, into a new (or empty) folder or file; --out and the flags
are checked before the source is read (`check_args`). The formats themselves: `gpt1_tf.weights.formats`.
"""
import argparse
import sys

from gpt1_tf.cli.common import exits
from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.config import ACTIVATIONS, MAX_N_CTX, MIN_N_CTX
from gpt1_tf.weights.formats import FORMATS, N_CTX_FORMATS


def build_parser():
    p = argparse.ArgumentParser(prog="python -m gpt1_tf.export", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("source", help="original shards folder, HuggingFace folder, best_params.jl or .keras file")
    p.add_argument("--to", choices=FORMATS, required=True, help="the output format")
    p.add_argument("--out", required=True,
                   help="the output folder (a .keras file for --to keras); missing folders above it are made")
    g = p.add_argument_group("what the source does not say (checked against it where it does)")
    g.add_argument("--n_head", type=int, default=None, help="attention heads (default 12, GPT-1's)")
    g.add_argument("--afn", choices=ACTIVATIONS, default=None, help="activation (default gelu)")
    g.add_argument("--n_embd", type=int, default=None, help="checked against the source")
    g.add_argument("--n_layer", type=int, default=None, help="checked against the source")
    g.add_argument("--n_ctx", type=int, default=None,
                   help=f"positions kept, {MIN_N_CTX}..{MAX_N_CTX} (--to keras / saved_model; default: all the "
                        f"source has, at most {MAX_N_CTX})")
    p.add_argument("--encoder_path", default=DEFAULT_ENCODER_PATH, help="vocab.json of --to hf")
    p.add_argument("--bpe_path", default=DEFAULT_BPE_PATH, help="merges.txt of --to hf")
    return p


def check_args(args):
    """Refuse a flag that does not apply or is out of range, and an --out that cannot be written, before any reading."""
    from gpt1_tf.files import check_new_file, check_new_output
    if args.n_ctx is not None and args.to not in N_CTX_FORMATS:
        raise Gpt1Error(f"--n_ctx is for --to keras and saved_model; --to {args.to} keeps every position the "
                        "source has")
    if args.n_ctx is not None and not MIN_N_CTX <= args.n_ctx <= MAX_N_CTX:
        raise Gpt1Error(f"--n_ctx must be in {MIN_N_CTX}..{MAX_N_CTX}, got {args.n_ctx}")
    if args.to == "keras":
        if not args.out.endswith(".keras"):
            raise Gpt1Error(f"--out {args.out}: a Keras file's name ends in .keras")
        check_new_file(args.out, "--out")
    else:
        check_new_output(args.out, "--out")


@exits
def main(argv=None):
    """`python -m gpt1_tf.export`: one-line errors and exit 1 for bad input, and no output then."""
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import quiet_tensorflow
    check_args(args)
    with quiet_tensorflow():  # TensorFlow's start-up lines hidden (the readers and writers import it)
        import tensorflow as tf
        tf.config.list_logical_devices()
    from gpt1_tf.weights import formats
    weights = formats.read(args.source, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer, afn=args.afn)
    print(f"read {args.source}: {formats.describe(weights)}")
    formats.WRITERS[args.to](weights, args.out, n_ctx=args.n_ctx, source=args.source,
                             encoder_path=args.encoder_path, bpe_path=args.bpe_path)
    print(f"wrote {args.out} ({args.to})")


if __name__ == "__main__":
    sys.exit(main())
