"""LoRA adapters in PEFT's format, without torch: `adapter_config.json` and `adapter_model.safetensors`.

What `peft.PeftModel.from_pretrained(OpenAIGPTDoubleHeadsModel..., folder)` reads (PEFT 0.21):
- each adapted weight's `lora_A.weight` [r, n_in] and `lora_B.weight` [n_out, r] under
  `base_model.model.transformer.h.{i}.<module>` (ours transposed: A [n_in, r], B [r, n_out]);
  `fan_in_fan_out` true (GPT's Conv1D weights are [n_in, n_out]); `target_modules` the modules'
  names (`attn.c_attn`, ...), `layers_to_transform` the adapted layers (None: all) with pattern `h`;
- the special-token rows as PEFT's trainable tokens (`trainable_token_indices`): the 3 rows GPT-1
  adds to the vocabulary, which the published base lacks (a PEFT user resizes its embeddings to
  40,481 rows first); written whether they trained or not: they are the run's;
- the head as `modules_to_save`: a multiple-choice head is the double-heads model's
  `multiple_choice_head.summary` (transformers then computes our logits as `mc_logits`); another
  head is our `clf` (no transformers class has it; gpt1_tf reads it back).
The safetensors metadata hold `gpt1_tf_base`, a fingerprint of the base weights the adapters were
trained on (`fingerprint`: the token rows and the layers), and `gpt1_tf_head`, the head's format
and classes: an adapter folder loads (`load`) only onto that base and that head. Layout and names
come from `gpt1_tf.network.arrays` (LORA_TARGETS) and `gpt1_tf.weights.hf` (the head's keys).
"""
import hashlib
import json
import os

import numpy as np

from gpt1_tf.errors import ConfigError, DataError
from gpt1_tf.files import atomic_write, read_text
from gpt1_tf.network import arrays, lora
from gpt1_tf.network.config import TuningConfig
from gpt1_tf.weights import hf, pretrained

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
FILES = (CONFIG, WEIGHTS)
MODEL = "base_model.model."  # PEFT's prefix: the wrapped model's keys follow
TOKENS = hf.PREFIX + "tokens_embed"  # the module of the trainable tokens
TOKENS_DELTA = TOKENS + ".token_adapter.trainable_tokens_delta"  # PEFT's name; it holds the rows themselves
BASE_KEY, HEAD_KEY = "gpt1_tf_base", "gpt1_tf_head"
MODULES = {name: path.replace("/", ".") for name, path in arrays.LORA_TARGETS.items()}  # attn.c_attn, ...
# PEFT's bare names match by suffix: `c_proj` is both attention's and the MLP's
BARE = {"c_attn": ("c_attn",), "c_fc": ("c_fc",), "c_proj": ("c_proj", "mlp/c_proj")}


def fingerprint(model):
    """SHA-256 of the base weights adapters are trained on: the token rows and each layer's base arrays (not merged)."""
    body = model.transformer
    digest = hashlib.sha256()
    for i, p in enumerate(body.params_in_order()):
        a = np.asarray(p.numpy() if i else p[:body.cfg.n_vocab].numpy(), np.float32)
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _head_keys(cfg):
    head = hf.SUMMARY if cfg.task_format == "multiple_choice" else hf.CLF
    return head.rstrip(".").split(".")[0], MODEL + head + "weight", MODEL + head + "bias"


def lora_key(i, target, which):
    """The safetensors key of layer i's adapter of `target`, `which` "A" or "B"."""
    return f"{MODEL}{hf.PREFIX}h.{i}.{MODULES[target]}.lora_{which}.weight"


def config_of(tuning, cfg, base_path=None):
    """adapter_config.json of a run's tuning (`TuningConfig` with LoRA) on a model of `cfg`."""
    layers = list(tuning.trained_layers(cfg.n_layer))
    module, _, _ = _head_keys(cfg)
    return {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_path, "r": tuning.lora_rank,
            "lora_alpha": tuning.alpha, "lora_dropout": 0.0, "fan_in_fan_out": True, "bias": "none",
            "target_modules": [MODULES[t] for t in tuning.lora_targets],
            # PEFT (0.21) refuses a layers_pattern without layers_to_transform: both or neither
            "layers_to_transform": None if tuning.train_layers is None else layers,
            "layers_pattern": None if tuning.train_layers is None else "h",
            "modules_to_save": [module], "trainable_token_indices": {
                "tokens_embed": list(range(cfg.n_vocab, cfg.n_vocab + cfg.n_special))},
            "init_lora_weights": True, "inference_mode": True, "use_rslora": False, "use_dora": False,
            "rank_pattern": {}, "alpha_pattern": {}}


def tensors_of(model):
    """The adapter file's tensors of a LoRA model (`TransformerModel` after `lora.adapt`): A, B, special rows, head."""
    body, cfg = model.transformer, model.cfg
    out = {}
    for i, target, conv in lora.adapted_layers(body):
        out[lora_key(i, target, "A")] = conv.lora_kernel_a.numpy().T
        out[lora_key(i, target, "B")] = conv.lora_kernel_b.numpy().T
    special = body.special if body.special is not None else body.we[cfg.n_vocab:cfg.n_vocab + cfg.n_special]
    out[MODEL + TOKENS_DELTA] = special.numpy()
    _, w_key, b_key = _head_keys(cfg)
    out[w_key], out[b_key] = model.clf.w.numpy().T, model.clf.b.numpy()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def write(folder, model, tuning, *, base, base_path=None):
    """The two adapter files of `model` into `folder` (each atomically); `base`: the base's `fingerprint`."""
    from safetensors.numpy import save
    metadata = {"format": "pt", BASE_KEY: base, HEAD_KEY: json.dumps(pretrained.head_of(model.cfg))}
    data = save(tensors_of(model), metadata=metadata)
    atomic_write(os.path.join(folder, WEIGHTS), lambda f: f.write(data))
    text = json.dumps(config_of(tuning, model.cfg, base_path), indent=2) + "\n"
    atomic_write(os.path.join(folder, CONFIG), lambda f: f.write(text.encode()))


# --- in ------------------------------------------------------------------------------------------

def read_tuning(folder, n_layer):
    """The `TuningConfig` an adapter folder was made with (rank, alpha, targets, adapted layers); DataError if it is not
    one, or if its adapted layers are not the top ones of a model of `n_layer` layers."""
    path = os.path.join(folder, CONFIG)
    if not os.path.isdir(folder):
        raise DataError(folder, "not a folder: --lora_from names a LoRA adapter folder (adapter_config.json, "
                                "adapter_model.safetensors)")
    try:
        config = json.loads(read_text(path, "LoRA adapter config"))
    except ValueError as err:
        raise DataError(path, f"not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise DataError(path, f"peft_type {config.get('peft_type') if isinstance(config, dict) else None!r}: "
                              "not a LoRA adapter")
    for name in ("use_dora", "use_rslora", "rank_pattern", "alpha_pattern", "lora_bias"):
        if config.get(name):
            raise DataError(path, f"{name} is set: gpt1_tf's LoRA is plain LoRA (x W + alpha/r x A B)")
    try:
        return TuningConfig(lora_rank=config.get("r"), lora_alpha=config.get("lora_alpha"),
                            lora_targets=_targets(config.get("target_modules"), path),
                            train_layers=_n_top_layers(config.get("layers_to_transform"), n_layer, path))
    except (ConfigError, TypeError) as err:
        raise DataError(path, str(err)) from None


def _targets(modules, path):
    if isinstance(modules, str):
        modules = [modules]
    if not isinstance(modules, list) or not modules:
        raise DataError(path, f"target_modules {modules!r}: expected a list of module names")
    names = {m: t for t, m in MODULES.items()}
    found = [t for m in modules for t in ((names[m],) if m in names else BARE.get(m, (None,)))]
    if None in found:
        raise DataError(path, f"target_modules {modules}: GPT-1's adaptable modules are {', '.join(MODULES.values())}")
    return tuple(t for t in arrays.LORA_TARGETS if t in found)


def _n_top_layers(layers, n_layer, path):
    """train_layers of `layers_to_transform` (None: all layers), which must be the top layers of `n_layer`."""
    if layers is None:
        return None
    layers = [layers] if isinstance(layers, int) else layers
    if not isinstance(layers, list) or not layers or sorted(layers) != list(range(min(layers), max(layers) + 1)):
        raise DataError(path, f"layers_to_transform {layers}: gpt1_tf adapts a run of top layers")
    if sorted(layers) != list(range(n_layer - len(layers), n_layer)):
        raise DataError(path, f"layers_to_transform {layers} are not the top {len(layers)} of this model's "
                              f"{n_layer} layers")
    return len(layers)


def load(model, folder, base=None):
    """The adapter folder into a LoRA `model` of its layout: A, B, the special rows and the head, each checked first.

    `base`: this model's base `fingerprint`; an adapter recorded on another base is refused (one recorded
    by PEFT itself, without a fingerprint, is taken on its shapes). Nothing is assigned unless all fits.
    """
    path = os.path.join(folder, WEIGHTS)
    tensors, metadata = _read_tensors(path)
    if base is not None and metadata.get(BASE_KEY) not in (None, base):
        raise DataError(path, "these adapters were trained on other base weights (their fingerprint differs from "
                              "this run's --model_dir / n_transfer); load them onto the base they were made on")
    recorded = metadata.get(HEAD_KEY)
    if recorded and json.loads(recorded) != pretrained.head_of(model.cfg):
        raise DataError(path, f"its head is {json.loads(recorded)}, this model's {pretrained.head_of(model.cfg)}")
    want = tensors_of(model)
    for key, a in want.items():
        if key not in tensors:
            raise DataError(path, f"missing tensor {key} (this model's LoRA layout has it: rank, targets, layers?)")
        if tuple(tensors[key].shape) != a.shape:
            raise DataError(path, f"tensor {key} has shape {tuple(tensors[key].shape)}, this model's {a.shape}")
        if not np.all(np.isfinite(tensors[key])):
            raise DataError(path, f"tensor {key} has non-finite values")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise DataError(path, f"tensor {extra[0]} has no place in this model's LoRA layout")
    _assign(model, {k: tensors[k].astype(np.float32) for k in want})


def _assign(model, tensors):
    body, cfg = model.transformer, model.cfg
    for i, target, conv in lora.adapted_layers(body):
        conv.lora_kernel_a.assign(tensors[lora_key(i, target, "A")].T)
        conv.lora_kernel_b.assign(tensors[lora_key(i, target, "B")].T)
    body.set_special_rows(tensors[MODEL + TOKENS_DELTA])
    _, w_key, b_key = _head_keys(cfg)
    model.clf.w.assign(tensors[w_key].T)
    model.clf.b.assign(tensors[b_key])


def _read_tensors(path):
    from safetensors import SafetensorError, safe_open
    if not os.path.exists(path):
        raise DataError(path, "missing: an adapter folder holds adapter_config.json and adapter_model.safetensors")
    try:
        with safe_open(path, framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, (f.metadata() or {})
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"not a readable safetensors file, truncated or corrupt ({problem})") from None
