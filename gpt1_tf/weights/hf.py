"""HuggingFace `openai-gpt` folders (`config.json` + `model.safetensors`) in and out, without torch.

Reading takes either key layout transformers writes:
- the bare model's (`OpenAIGPTModel`, and the published `openai-community/openai-gpt`):
  `tokens_embed.weight`, `positions_embed.weight`, `h.{i}.attn.c_attn.weight`, ...;
- a head model's, with the prefix `transformer.`, the tied `lm_head.weight` present or absent (with
  it, transformers may leave `transformer.tokens_embed.weight` out), and for
  `OpenAIGPTDoubleHeadsModel` `multiple_choice_head.summary.{weight,bias}`.
A token table of n_vocab + 3 rows holds the special tokens (_start_, _delimiter_, _classify_) in
the original's order. Buffers (`attn.bias`, `attn.masked_bias`, `position_ids`) are ignored.

HF's names and shapes are those of the table in `gpt1_tf.network.arrays` (`hf`, `hf_shape`): its
conv weights are [nx, nf] where the original's are [1, nx, nf]; its position table has
n_positions rows (512 in the published model); it has no final layer norm, and neither has GPT-1.

Writing gives the bare layout (what `OpenAIGPTLMHeadModel.from_pretrained` reads) for a language
model. A fine-tuned model gets the prefixed layout, the special rows in `transformer.tokens_embed`
(vocab_size 40,481) and its classifier: a multiple-choice head as `OpenAIGPTDoubleHeadsModel`'s
`multiple_choice_head.summary` (transformers then computes our logits as `mc_logits`); any other
head as `clf.{weight,bias}`, which no transformers class has (its sequence classifier has no bias
and reads another token; the double-heads model has one output per choice): transformers loads
the body and the LM head, gpt1_tf reads the whole. `config.json`'s `gpt1_tf` entry records the head.
"""
import json
import os
import shutil

import numpy as np

from gpt1_tf.network import tokens
from gpt1_tf.network.arrays import LAYER, POSITIONS, TOKENS
from gpt1_tf.errors import DataError
from gpt1_tf.files import atomic_write, read_text
from gpt1_tf.weights.convert import N_VOCAB, Weights

CONFIG, SAFETENSORS = "config.json", "model.safetensors"
VOCAB, MERGES, TOKENIZER_CONFIG = "vocab.json", "merges.txt", "tokenizer_config.json"  # the tokenizer's files
FILES = (CONFIG, SAFETENSORS, VOCAB, MERGES, TOKENIZER_CONFIG)  # what `write` writes
PREFIX = "transformer."
BUFFERS = (".attn.bias", ".attn.masked_bias", "position_ids")
SUMMARY = "multiple_choice_head.summary."  # OpenAIGPTDoubleHeadsModel's classifier: a multiple-choice head
CLF = "clf."  # any other head: ours only
AFN_NAMES = {"gelu": "gelu", "relu": "relu", "swish": "silu"}  # ours -> HF's ACT2FN names
AFN_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu", "relu": "relu", "silu": "swish", "swish": "swish"}
LAYER_NORM_EPSILON = 1e-5


# --- in ------------------------------------------------------------------------------------------

def read(folder, n_vocab=N_VOCAB):
    """The Weights of a HuggingFace `openai-gpt` folder; a one-line DataError for anything amiss."""
    config_path, path = os.path.join(folder, CONFIG), os.path.join(folder, SAFETENSORS)
    config = read_config(config_path)
    tensors = _load_tensors(path)
    prefix = _layout(tensors, path)
    sizes = {"n_embd": config["n_embd"], "n_positions": config["n_positions"]}
    take = _taker(tensors, path)
    positions = take(prefix + POSITIONS.hf, POSITIONS.hf_shape(sizes))
    table = _token_table(take, tensors, prefix, config, path, n_vocab)
    layers = [a.from_hf(take(f"{prefix}h.{i}.{a.hf}", a.hf_shape(sizes)), sizes)
              for i in range(config["n_layer"]) for a in LAYER]
    weights = Weights([positions, table[:n_vocab]] + layers, n_head=config["n_head"],
                      afn=AFN_FROM_HF[config["afn"]])
    if len(table) > n_vocab:
        weights.special_rows = table[n_vocab:]
    _read_head(weights, take, tensors, config, path)
    _refuse_leftovers(tensors, take.used, path)
    return weights


def read_config(path):
    """config.json of an `openai-gpt` model: its fields checked for what GPT-1 can be."""
    try:
        config = json.loads(read_text(path, "HuggingFace config"))
    except ValueError as err:
        raise DataError(path, f"not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or config.get("model_type") != "openai-gpt":
        found = config.get("model_type") if isinstance(config, dict) else None
        raise DataError(path, f"model_type is {found!r}: not an openai-gpt (GPT-1) model")
    for name in ("n_embd", "n_head", "n_layer", "n_positions", "vocab_size"):
        if type(config.get(name)) is not int or config[name] < 1:
            raise DataError(path, f"{name} must be a positive integer, found {config.get(name)!r}")
    config.setdefault("afn", "gelu")
    if config["afn"] not in AFN_FROM_HF:
        raise DataError(path, f"afn {config['afn']!r}: GPT-1 has {', '.join(AFN_FROM_HF)}")
    if config.get("layer_norm_epsilon", LAYER_NORM_EPSILON) != LAYER_NORM_EPSILON:
        raise DataError(path, f"layer_norm_epsilon {config['layer_norm_epsilon']}: GPT-1's layer norm uses "
                              f"{LAYER_NORM_EPSILON}")
    if config["n_embd"] % config["n_head"]:
        raise DataError(path, f"n_embd {config['n_embd']} is not divisible by n_head {config['n_head']}")
    return config


def _load_tensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    if not os.path.exists(path):
        raise DataError(path, "missing: a HuggingFace folder holds config.json and model.safetensors "
                              "(a pytorch_model.bin needs converting to safetensors: torch is not used here)")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"not a readable safetensors file, truncated or corrupt ({problem})") from None


def _layout(tensors, path):
    """'' for the bare model's keys, 'transformer.' for a head model's; DataError for anything else."""
    for prefix in ("", PREFIX):
        if prefix + POSITIONS.hf in tensors or prefix + "h.0.ln_1.weight" in tensors:
            return prefix
    some = ", ".join(sorted(tensors)[:3]) or "no tensors"
    raise DataError(path, f"unknown key layout ({some}, ...): expected openai-gpt's tokens_embed.weight, "
                          "positions_embed.weight, h.{i}.* with or without the prefix transformer.")


def _taker(tensors, path):
    """take(key, shape): the float32 tensor, or a DataError naming a missing key or a wrong shape."""
    def take(key, shape):
        if key not in tensors:
            raise DataError(path, f"missing tensor {key} (config.json promises it)")
        a = tensors[key]
        if tuple(a.shape) != tuple(shape):
            raise DataError(path, f"tensor {key} has shape {tuple(a.shape)}, config.json implies {tuple(shape)}")
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
            raise DataError(path, f"tensor {key} is not finite floats ({a.dtype})")
        take.used.add(key)
        return a.astype(np.float32, copy=False)
    take.used = set()
    return take


def _token_table(take, tensors, prefix, config, path, n_vocab):
    """The token rows: tokens_embed, or the tied lm_head that stands in for it (the same array)."""
    shape = (config["vocab_size"], config["n_embd"])
    key = prefix + TOKENS.hf
    table = take(key if key in tensors or "lm_head.weight" not in tensors else "lm_head.weight", shape)
    if key in tensors and "lm_head.weight" in tensors and not np.array_equal(table, take("lm_head.weight", shape)):
        raise DataError(path, "lm_head.weight differs from tokens_embed.weight: GPT-1's LM head is tied to "
                              "the token embedding")
    if len(table) not in (n_vocab, n_vocab + tokens.N_SPECIAL):
        raise DataError(path, f"vocab_size {len(table)}: expected {n_vocab} tokens, or {n_vocab + tokens.N_SPECIAL} "
                              f"with the special tokens {', '.join(tokens.SPECIAL_TOKENS)}")
    return table


def _read_head(weights, take, tensors, config, path):
    """The classifier, as clf/w [nx, n], clf/b [n], with the head it was (config.json's `gpt1_tf`, or HF's)."""
    prefix = next((p for p in (SUMMARY, CLF) if p + "weight" in tensors), None)
    if prefix is None:
        return
    n_out = tensors[prefix + "weight"].shape[0]
    w = take(prefix + "weight", (n_out, config["n_embd"])).T
    weights.clf = (np.ascontiguousarray(w), take(prefix + "bias", (n_out,)))
    weights.head = _head(config, n_out, os.path.join(os.path.dirname(path), CONFIG), prefix)


def _head(config, n_out, config_path, prefix):
    """The head config.json's `gpt1_tf` entry records (ours), else the double-heads model's: multiple choice."""
    from gpt1_tf.network.config import ModelConfig
    head = config.get("gpt1_tf")
    if head is None and prefix == SUMMARY and n_out == 1:
        return {"task_format": "multiple_choice", "n_classes": 0}
    try:
        head = {"task_format": head["task_format"], "n_classes": head["n_classes"]}
        assert ModelConfig(n_embd=8, n_head=1, **head).n_clf_out == n_out
    except Exception:
        raise DataError(config_path, f"gpt1_tf {config.get('gpt1_tf')!r} does not describe the {n_out}-output "
                                     f"classifier {prefix}*") from None
    return head


def _refuse_leftovers(tensors, used, path):
    left = sorted(k for k in tensors if k not in used and not k.endswith(BUFFERS))
    if left:
        raise DataError(path, f"unexpected tensors {', '.join(left[:3])}{', ...' if len(left) > 3 else ''}: "
                              "not the openai-gpt layout (another model, or more layers than config.json's n_layer?)")


# --- out -----------------------------------------------------------------------------------------

def write(weights, folder, *, encoder_path, bpe_path, pdrop=None):
    """Write `weights` as a HuggingFace folder (see the module docstring), with the tokenizer files.

    `folder` must be new or empty; it is written whole or not at all (`files.atomic_folder`).
    """
    from gpt1_tf.files import atomic_folder
    with atomic_folder(folder) as tmp:
        tensors = _tensors_out(weights)
        _save_tensors(tensors, os.path.join(tmp, SAFETENSORS))
        config = _config_out(weights, pdrop)
        atomic_write(os.path.join(tmp, CONFIG), lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))
        shutil.copyfile(encoder_path, os.path.join(tmp, VOCAB))
        shutil.copyfile(bpe_path, os.path.join(tmp, MERGES))
        tok = {"tokenizer_class": "OpenAIGPTTokenizer", "model_max_length": int(weights.positions.shape[0])}
        atomic_write(os.path.join(tmp, TOKENIZER_CONFIG), lambda f: f.write(json.dumps(tok).encode()))


def _tensors_out(weights):
    """HF's tensors: bare keys for a language model; with a classifier, the prefixed keys and the head's."""
    table = weights.tokens if weights.special_rows is None else np.concatenate([weights.tokens, weights.special_rows])
    prefix = PREFIX if weights.clf is not None else ""
    out = {prefix + POSITIONS.hf: weights.positions}
    for n, a in enumerate(weights.layers):
        i, j = divmod(n, len(LAYER))
        out[f"{prefix}h.{i}.{LAYER[j].hf}"] = LAYER[j].to_hf(a)
    out[prefix + TOKENS.hf] = table  # not lm_head.weight: then every transformers class finds it
    if weights.clf is not None:
        w, b = weights.clf
        head = SUMMARY if weights.head["task_format"] == "multiple_choice" else CLF
        out[head + "weight"], out[head + "bias"] = np.asarray(w).T, b
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _save_tensors(tensors, path):
    from safetensors.numpy import save
    data = save(tensors, metadata={"format": "pt"})  # "pt": transformers reads the file as its own
    atomic_write(path, lambda f: f.write(data))


def _config_out(weights, pdrop):
    """config.json: the fields transformers' OpenAIGPTConfig reads, and the head in `gpt1_tf`."""
    pdrop = 0.1 if pdrop is None else pdrop
    n_specials = 0 if weights.special_rows is None else len(weights.special_rows)
    config = {"model_type": "openai-gpt", "architectures": ["OpenAIGPTLMHeadModel"],
              "afn": AFN_NAMES[weights.afn or "gelu"], "n_embd": weights.n_embd, "n_head": weights.n_head,
              "n_layer": weights.n_layer, "n_positions": int(weights.positions.shape[0]),
              "vocab_size": len(weights.tokens) + n_specials, "layer_norm_epsilon": LAYER_NORM_EPSILON,
              "initializer_range": 0.02, "embd_pdrop": pdrop, "attn_pdrop": pdrop, "resid_pdrop": pdrop,
              "tie_word_embeddings": True, "dtype": "float32"}
    if weights.clf is None:
        return config
    config["gpt1_tf"] = dict(weights.head)
    if weights.head["task_format"] == "multiple_choice":
        config.update({"architectures": ["OpenAIGPTDoubleHeadsModel"], "summary_type": "cls_index",
                       "summary_use_proj": True, "summary_proj_to_labels": True, "summary_activation": None,
                       "summary_first_dropout": pdrop, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}})
    return config
