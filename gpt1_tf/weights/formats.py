"""Every weight format, by name: which one a path holds, reading any of them, writing any of them.

Sources (told apart by what they are, `kind_of`):
- "shards": a folder with the original's `params_shapes.json` + `params_*.npy` (OpenAI's `model/`);
- "hf": a HuggingFace `openai-gpt` folder (`config.json` + `model.safetensors`);
- "params": a `best_params.jl` written by `train.py --submit` (its head from `best_params.head.json`);
- "keras": a `.keras` file of a `TransformerModel`.

Outputs (`WRITERS`): "hf", "shards", "keras", "saved_model", each written whole or not at all.
`read_pretrained` is what `train.py --model_dir` and `generate.py --model_dir` read; `build_model`
puts `Weights` into a `TransformerModel`. No argparse here: the programs pass what they were told.
"""
import importlib
import os
import zipfile

from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.network.config import MAX_N_CTX
from gpt1_tf.weights import hf, pretrained
from gpt1_tf.weights.convert import Weights, config_of_params, from_params, model_config, to_params, with_flags

TRAIN_ADVICE = "or --n_transfer -1 to train from scratch"  # read_pretrained's, for train.py's --model_dir


def kind_of(path):
    """Which format `path` holds: 'shards', 'hf', 'params' (a best_params.jl), 'keras', or None."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, pretrained.SHAPES_FILE)):
            return "shards"
        if os.path.exists(os.path.join(path, hf.CONFIG)):
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
        raise DataError(os.path.join(model_dir, hf.CONFIG), "missing beside model.safetensors (a HuggingFace "
                                                            "folder holds both)")
    return Weights(pretrained.load_shards(model_dir, advice))


def read(source, **flags):
    """The Weights of any source, checked against `flags` (n_embd, n_head, n_layer, afn: None = unsaid).

    n_head and afn come from the flags where the source does not say them (else GPT-1's 12, gelu).
    """
    kind = kind_of(source)
    if kind is None:
        raise unknown_source(source)
    return with_flags(READERS[kind](source), said_by(source, kind), **flags)


def unknown_source(source):
    """The one-line DataError for a path that holds none of the formats `read` takes."""
    what = f"folder without {pretrained.SHAPES_FILE} or {hf.CONFIG}" if os.path.isdir(source) else (
        "no such file or folder" if not os.path.exists(source) else "not a .jl or .keras file")
    return DataError(source, f"{what}: expected original shards, a HuggingFace folder, a best_params.jl "
                             "or a .keras file")


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


def model_n_ctx(weights, n_ctx=None, source="the weights", said_as="--n_ctx"):
    """The positions of a model of `weights`: n_ctx, or None for all they have (at most 512); more is refused.

    `said_as`: what the caller calls n_ctx, in the error.
    """
    n_ctx = n_ctx if n_ctx is not None else min(weights.positions.shape[0], MAX_N_CTX)
    if n_ctx > weights.positions.shape[0]:
        raise Gpt1Error(f"{said_as} {n_ctx}: {source} has {weights.positions.shape[0]} positions")
    return n_ctx


def build_model(weights, n_ctx=None, source="the weights"):
    """A TransformerModel holding `weights`: n_ctx positions (None: all they have, at most 512); zeros for what they lack.

    `source` names the weights in errors.
    """
    from gpt1_tf.network.model import TransformerModel
    model = TransformerModel(model_config(weights, n_ctx=model_n_ctx(weights, n_ctx, source)))
    pretrained.set_params(model, to_params(weights, model.cfg), source)
    return model


def write_hf(weights, out, *, encoder_path, bpe_path, **_):
    hf.write(weights, out, encoder_path=encoder_path, bpe_path=bpe_path)


def write_shards(weights, out, **_):
    from gpt1_tf.files import atomic_folder
    left_out = [what for what, there in (("the special-token rows", weights.special_rows is not None),
                                         ("the classifier", weights.clf is not None)) if there]
    with atomic_folder(out) as tmp:
        pretrained.save_shards(weights.shards, tmp)
    if left_out:
        print(f"note: the original's shards hold the language model only; {' and '.join(left_out)} are left out")


def _note_no_head(weights):
    if weights.clf is None:
        print("note: the source has no task head: the model's classifier (and special-token rows) are zeros")


def write_keras(weights, out, *, n_ctx=None, source="the weights", **_):
    from gpt1_tf.files import atomic_save
    _note_no_head(weights)
    model = build_model(weights, n_ctx, source)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)  # as the folder formats make theirs
    atomic_save(out, model.save)


def write_saved_model(weights, out, *, n_ctx=None, source="the weights", **_):
    from gpt1_tf.weights import saved_model
    _note_no_head(weights)
    saved_model.save_saved_model(build_model(weights, n_ctx, source), out)


# each writer takes the weights, the output path and the keywords it needs of: n_ctx, source,
# encoder_path, bpe_path (the others ignore what is not theirs)
WRITERS = {"hf": write_hf, "shards": write_shards, "keras": write_keras, "saved_model": write_saved_model}
FORMATS = tuple(WRITERS)
N_CTX_FORMATS = ("keras", "saved_model")  # those that build a model (hf and shards keep every position)


def describe(weights):
    """One line: the sizes, activation, table rows and head of `weights`."""
    specials = " + 3 special rows" if weights.special_rows is not None else ""
    head = weights.head["task_format"] + (f" ({weights.head['n_classes']} classes)" if weights.head["n_classes"] else "") \
        if weights.head else "none (a language model)"
    return (f"{weights.n_layer} layers, n_embd {weights.n_embd}, n_head {weights.n_head}, {weights.afn}, "
            f"{weights.tokens.shape[0]} tokens{specials}, {weights.positions.shape[0]} positions; head: {head}")
