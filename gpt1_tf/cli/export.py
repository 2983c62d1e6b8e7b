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
are checked before the source is read (`check_args`).
`kind_of` (which format a path holds) and `read_pretrained` (train.py's --model_dir) live here too.
"""
import argparse
import importlib
import os
import sys
import zipfile

from gpt1_tf.weights import hf, pretrained
from gpt1_tf.network.config import ACTIVATIONS, MAX_N_CTX, MIN_N_CTX
from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH
from gpt1_tf.weights.convert import Weights, config_of_params, from_params, model_config, with_flags

FORMATS = ("hf", "shards", "keras", "saved_model")
N_CTX_FORMATS = ("keras", "saved_model")  # those that build a model (hf and shards keep every position)
TRAIN_ADVICE = "or --n_transfer -1 to train from scratch"  # read_pretrained's, for train.py's --model_dir


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


def kind_of(path):
    """Which format `path` holds: 'shards', 'hf', 'params' (a best_params.jl), 'keras', or None."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "params_shapes.json")):
            return "shards"
        if os.path.exists(os.path.join(path, "config.json")):
            return "hf"
        return None
    return {".jl": "params", ".keras": "keras"}.get(os.path.splitext(path)[1])


def read_pretrained(model_dir, advice=TRAIN_ADVICE):
    """The pretrained weights in `model_dir`: the original's shards or a HuggingFace folder.

    `advice`: the reading program's own words after the weights help, for a missing folder or file.
    """
    if not os.path.isdir(model_dir):
        raise DataError(model_dir, f"no such model directory: {pretrained.weights_help(advice)}")
    kind = kind_of(model_dir)
    if kind == "hf":
        return hf.read(model_dir)
    if kind is None and os.path.exists(os.path.join(model_dir, "model.safetensors")):
        raise DataError(os.path.join(model_dir, "config.json"), "missing beside model.safetensors (a HuggingFace "
                                                                "folder holds both)")
    return Weights(pretrained.load_shards(model_dir, advice))


def read_source(args):
    """The source's Weights, with n_head and afn from the flags where the source does not say them."""
    kind = kind_of(args.source)
    if kind is None:
        what = "folder without params_shapes.json or config.json" if os.path.isdir(args.source) else (
            "no such file or folder" if not os.path.exists(args.source) else "not a .jl or .keras file")
        raise DataError(args.source, f"{what}: expected original shards, a HuggingFace folder, a best_params.jl "
                                     "or a .keras file")
    return with_flags(READERS[kind](args.source), said_by(args.source, kind), args)


def said_by(path, kind):
    """The file that says a source's sizes: a HuggingFace folder's config.json, else the source itself."""
    return os.path.join(path, hf.CONFIG) if kind == "hf" else path


def _read_params(path):
    """A best_params.jl: its shapes say n_embd, n_layer and n_ctx; best_params.head.json its head."""
    cfg = config_of_params(pretrained.read_params_file(path), path)
    weights = from_params(pretrained.load_params(path, cfg), cfg)
    weights.n_head = weights.afn = None  # the flags' to say
    return weights


def _read_keras(path):
    import keras
    importlib.import_module("gpt1_tf.network.model")  # registers TransformerModel with Keras
    if not os.path.isfile(path):
        raise DataError(path, "no such .keras file")
    if not zipfile.is_zipfile(path):  # Keras itself says "File not found" of a file that is there
        raise DataError(path, "not a readable .keras file: a .keras file is a zip archive, this is not one "
                              "(truncated or corrupt?)")
    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # Keras raises many types on a corrupt or foreign file
        raise DataError(path, f"not a readable .keras file of a gpt1_tf TransformerModel ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not hasattr(model, "params_in_order"):
        raise DataError(path, f"holds a {type(model).__name__}, not a gpt1_tf TransformerModel")
    return from_params(pretrained.get_params(model), model.cfg)


READERS = {"shards": lambda path: Weights(pretrained.load_shards(path)), "hf": hf.read,
           "params": _read_params, "keras": _read_keras}


def write_hf(weights, args):
    hf.write(weights, args.out, encoder_path=args.encoder_path, bpe_path=args.bpe_path)


def write_shards(weights, args):
    from gpt1_tf.files import atomic_folder
    left_out = [what for what, there in (("the special-token rows", weights.special_rows is not None),
                                         ("the classifier", weights.clf is not None)) if there]
    with atomic_folder(args.out) as tmp:
        pretrained.save_shards(weights.shards, tmp)
    if left_out:
        print(f"note: the original's shards hold the language model only; {' and '.join(left_out)} are left out")


def build_model(weights, args):
    """A TransformerModel holding `weights` (positions up to args.n_ctx; zeros for what the source lacks).

    `args` needs `n_ctx` (None: all the source's positions, at most 512) and `source` (for errors).
    """
    from gpt1_tf.network.model import TransformerModel
    from gpt1_tf.weights.convert import to_params
    n_ctx = args.n_ctx if args.n_ctx is not None else min(weights.positions.shape[0], MAX_N_CTX)
    if n_ctx > weights.positions.shape[0]:
        raise Gpt1Error(f"--n_ctx {n_ctx}: {args.source} has {weights.positions.shape[0]} positions")
    model = TransformerModel(model_config(weights, n_ctx=n_ctx))
    pretrained.set_params(model, to_params(weights, model.cfg), args.source)
    return model


def _note_no_head(weights):
    if weights.clf is None:
        print("note: the source has no task head: the model's classifier (and special-token rows) are zeros")


def write_keras(weights, args):
    from gpt1_tf.files import atomic_save
    _note_no_head(weights)
    model = build_model(weights, args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # as the folder formats make theirs
    atomic_save(args.out, model.save)


def write_saved_model(weights, args):
    from gpt1_tf.weights import saved_model as serving
    _note_no_head(weights)
    serving.save_saved_model(build_model(weights, args), args.out)


WRITERS = {"hf": write_hf, "shards": write_shards, "keras": write_keras, "saved_model": write_saved_model}


def describe(weights):
    specials = " + 3 special rows" if weights.special_rows is not None else ""
    head = weights.head["task_format"] + (f" ({weights.head['n_classes']} classes)" if weights.head["n_classes"] else "") \
        if weights.head else "none (a language model)"
    return (f"{weights.n_layer} layers, n_embd {weights.n_embd}, n_head {weights.n_head}, {weights.afn}, "
            f"{weights.tokens.shape[0]} tokens{specials}, {weights.positions.shape[0]} positions; head: {head}")


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


def main(argv=None):
    """`python -m gpt1_tf.export`: one-line errors and exit 1 for bad input, and no output then."""
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import quiet_tensorflow
    try:
        check_args(args)
        with quiet_tensorflow():  # TensorFlow's start-up lines hidden (the readers and writers import it)
            import tensorflow as tf
            tf.config.list_logical_devices()
        weights = read_source(args)
        print(f"read {args.source}: {describe(weights)}")
        WRITERS[args.to](weights, args)
    except Gpt1Error as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.to})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
