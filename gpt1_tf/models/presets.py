"""Presets: every source the project reads, by one path, and the folder `save_to_preset` writes.

A source is what `gpt1_tf.weights.formats` reads (OpenAI's shards, a HuggingFace `openai-gpt`
folder, a `best_params.jl` with its head file, a `.keras` file of a `TransformerModel`), or a preset
folder. A preset folder is a HuggingFace folder as `gpt1_tf.weights.hf` writes it (config.json,
model.safetensors, and the tokenizer's vocab.json, merges.txt, tokenizer_config.json), which
transformers' `from_pretrained` loads, plus PRESET_FILE: the class that wrote it and its
`ModelConfig` fields (the positions, dropouts and activation the HF files do not say alike).
No TensorFlow here.
"""
import dataclasses
import json
import os

import gpt1_tf
from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH
from gpt1_tf.errors import ConfigError, DataError
from gpt1_tf.files import atomic_folder, atomic_write, read_text
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.weights import formats, hf
from gpt1_tf.weights.convert import check_flags

PRESET_FILE = "gpt1_tf_preset.json"
FILES = (PRESET_FILE,) + hf.FILES  # what `write` leaves, its marker first (`files.atomic_folder`)
# the tokenizer's files in a folder: a HuggingFace folder's names, then those of OpenAI's model/
VOCABULARY_NAMES = ((hf.VOCAB, hf.MERGES),
                    (os.path.basename(DEFAULT_ENCODER_PATH), os.path.basename(DEFAULT_BPE_PATH)))


def kind_of(path):
    """'preset' for a folder `write` wrote, else what `formats.kind_of` says (None: no source the project reads)."""
    if os.path.isdir(path) and os.path.exists(os.path.join(path, PRESET_FILE)):
        return "preset"
    return formats.kind_of(path)


def read(path, **flags):
    """(Weights, the preset's ModelConfig or None) of any source; `flags` as `formats.read` takes them."""
    weights = formats.read(path, **flags)
    if kind_of(path) != "preset":
        return weights, None
    cfg = read_config(path)
    said = os.path.join(path, PRESET_FILE)
    check_flags(weights, said, n_embd=cfg.n_embd, n_head=cfg.n_head, n_layer=cfg.n_layer, afn=cfg.afn)
    return weights, cfg


def read_config(folder):
    """The ModelConfig a preset folder's PRESET_FILE records; a one-line DataError for anything amiss."""
    path = os.path.join(folder, PRESET_FILE)
    try:
        return ModelConfig(**json.loads(read_text(path, "preset description"))["model_config"])
    except ConfigError as err:
        raise DataError(path, str(err)) from None
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"not a gpt1_tf preset description ({type(err).__name__}: {err})") from None


def write(weights, folder, cfg, *, class_name, encoder_path, bpe_path):
    """A preset folder of `weights` (a model of `cfg`, written by `class_name`), whole or not at all.

    `folder` must be new, empty, or an earlier preset (replaced once the new one is whole); any
    other folder is refused in one line and nothing in it is touched (`files.atomic_folder`).
    """
    description = {"class_name": class_name, "model_config": dataclasses.asdict(cfg),
                   "gpt1_tf_version": gpt1_tf.__version__}
    with atomic_folder(folder, earlier=FILES, flag="the preset") as tmp:
        # hf.write takes the new empty folder as its own output (itself written whole, then renamed)
        hf.write(weights, tmp, encoder_path=encoder_path, bpe_path=bpe_path, pdrop=cfg.resid_pdrop)
        text = json.dumps(description, indent=2) + "\n"
        atomic_write(os.path.join(tmp, PRESET_FILE), lambda f: f.write(text.encode()))


def vocabulary_files(path):
    """(vocabulary, merges) of a source folder that holds both (HF's or OpenAI's names), else (None, None).

    None, None: the packaged files (a params or .keras file holds none). A path that is no source
    is a one-line DataError, as for the weights.
    """
    if kind_of(path) is None:
        raise formats.unknown_source(path)
    if os.path.isdir(path):
        for names in VOCABULARY_NAMES:
            found = [os.path.join(path, name) for name in names]
            if all(os.path.isfile(f) for f in found):
                return tuple(found)
    return None, None
