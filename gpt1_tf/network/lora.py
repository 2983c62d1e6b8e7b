"""LoRA and partial fine-tuning on the body: which variables train, adapters on target weights, merged weights.

`adapt(body, tuning)` applies a `config.TuningConfig` to a built `model.Transformer`: the frozen
variables get `trainable = False` (they carry no gradient and no Adam state: a trainer trains
`trained_in_order`'s list), LoRA adds A and B beside each target weight of the trained layers
(`layers.Conv1D.enable_lora`), and a frozen table whose special-token rows train gets them as a
variable of their own, `body.special` [n_special, n_embd] (`Transformer.table` puts them in place).
A full tuning changes nothing: the original's fine-tuning, its variables and graph untouched.

`merged_in_order(body)`: the body's arrays in the original order as it computes with them, W +
(alpha / r) A B and the table with its special rows: what `best_params.jl` holds, so every reader
of the original layout reads a LoRA run as any other. `clear_adapters` after merged arrays are
assigned back into the base: B zero, the special rows read from the table again.
"""
import math

import numpy as np

from gpt1_tf.errors import ConfigError
from gpt1_tf.network import arrays


def target_layers(block, targets):
    """The Conv1D layers of a block named by LoRA targets ("c_attn": block.attn.c_attn), in that order."""
    return [arrays.walk(block, arrays.LORA_TARGETS[name]) for name in targets]


def adapted_layers(body):
    """(layer index, target name, Conv1D) of every layer with LoRA, bottom first, in LORA_TARGETS' order."""
    return [(i, name, conv) for i, block in enumerate(body.blocks)
            for name, conv in zip(arrays.LORA_TARGETS, target_layers(block, arrays.LORA_TARGETS))
            if conv.lora_rank is not None]


def adapt(body, tuning):
    """Freeze what `tuning` freezes, add its LoRA adapters and the special rows' variable (under the caller's strategy scope)."""
    tuning.check(body.cfg)
    if tuning.full:
        return
    if adapted_layers(body) or body.special is not None:
        raise ConfigError("the body is adapted already (LoRA or partial fine-tuning is enabled once)")
    trained = set(tuning.trained_layers(body.cfg.n_layer))
    body.we.trainable = not tuning.frozen_table
    for i, block in enumerate(body.blocks):
        for p in arrays.layer_params(block):
            p.trainable = i in trained and not tuning.lora
        if tuning.lora and i in trained:
            for conv in target_layers(block, tuning.lora_targets):
                conv.enable_lora(tuning.lora_rank, tuning.lora_alpha)
    if tuning.special_rows:
        body.add_special_rows()
    body.tuning = tuning


def trained_in_order(body):
    """The body's trained variables: the table (or its special rows), then each layer's arrays and adapters (A, B).

    With nothing frozen, `body.params_in_order()` itself: the original's list and order.
    """
    out = [body.we] if body.we.trainable else []
    if body.special is not None:
        out.append(body.special)
    for block in body.blocks:
        out += [p for p in arrays.layer_params(block) if p.trainable]
        for conv in target_layers(block, arrays.LORA_TARGETS):
            if conv.lora_rank is not None:
                out += [conv.lora_kernel_a, conv.lora_kernel_b]
    return out


def merged_in_order(body):
    """The body's arrays in the original order as it computes with them (tensors; the variables where nothing is merged)."""
    out = [body.table()]
    for block in body.blocks:
        for a in arrays.LAYER:  # a conv1d weight as its layer computes with it (the variable itself without LoRA)
            conv = arrays.walk(block, a.path.rsplit("/", 1)[0]) if a.conv else None
            out.append(conv.merged_w() if conv is not None else arrays.walk(block, a.path))
    return out


def clear_adapters(body):
    """After merged arrays were assigned to the base variables: B zero (x A B adds nothing), special rows from the table."""
    for _, _, conv in adapted_layers(body):
        conv.lora_kernel_b.assign(np.zeros(conv.lora_kernel_b.shape, np.float32))
    body.special_rows_from_table()


def n_values(variables):
    """Values in a list of variables (trainable parameters, for a count)."""
    return sum(math.prod(v.shape) for v in variables)
