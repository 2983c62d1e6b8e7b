"""A GPT-1's weights whatever file they came from, and their checks against a run's flags.

`Weights` holds the original shard list (positions, tokens, then 12 arrays per layer in the
original's shapes: the table of `gpt1_tf.network.arrays`) and what a fine-tuned model adds: the
special-token rows and the classifier.
Every reader returns one and every writer takes one, so each conversion is a reader plus a writer:

    original shards  (params_shapes.json + params_0..9.npy)      pretrained.load_shards / save_shards
    HuggingFace      (config.json + model.safetensors)            gpt1_tf.weights.hf
    best_params.jl   (the original's fine-tuned list, + flags)    pretrained.load_params / save_params
    .keras           (a saved TransformerModel)                   keras.saving

Which format a path holds, and reading or writing any of them: `gpt1_tf.weights.formats`.
"""
import dataclasses

import numpy as np

from gpt1_tf.network import tokens
from gpt1_tf.network.arrays import MODEL_LAYERS, N_PER_LAYER, SHARD_LAYERS, model_layers
from gpt1_tf.weights import pretrained
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.errors import DataError, Gpt1Error

N_VOCAB = ModelConfig.n_vocab  # the BPE vocabulary of encoder_bpe_40000.json


@dataclasses.dataclass
class Weights:
    """The arrays of a GPT-1, in the original shard order and shapes.

    shards: positions [n_pos, nx], tokens [n_vocab, nx], then per layer c_attn w [1, nx, 3nx], b,
    c_proj w, b, ln_1 g, b, c_fc w, b, c_proj w, b, ln_2 g, b (`gpt1_tf.network.arrays.LAYER`).
    special_rows [n_special, nx] and clf (w [nx, n_out], b [n_out]) with its head
    ({"task_format", "n_classes"}) when the source was fine-tuned; n_head and afn when it says them.
    """

    shards: list
    special_rows: np.ndarray | None = None
    clf: tuple | None = None
    head: dict | None = None
    n_head: int | None = None
    afn: str | None = None

    @property
    def positions(self):
        return self.shards[0]

    @property
    def tokens(self):
        return self.shards[1]

    @property
    def n_embd(self):
        return self.tokens.shape[1]

    @property
    def n_layer(self):
        return pretrained.shard_layers(self.shards)

    @property
    def layers(self):
        return self.shards[SHARD_LAYERS]


def check_flags(weights, said, **flags):
    """Refuse a flag (n_embd=768, ...) that disagrees with what the weights say, naming `said` and the first.

    A flag that is None, or a value the weights do not say (None), is not checked.
    """
    for name, value in flags.items():
        found = getattr(weights, name)
        if value is not None and found is not None and value != found:
            raise DataError(said, f"{name} is {found}, --{name} says {value}: pass --{name} {found} "
                                  "(or other weights)")


def with_flags(weights, said, *, n_embd=None, n_head=None, n_layer=None, afn=None):
    """`weights` checked against the flags given (None: not given), n_head and afn filled where unsaid.

    What neither says takes ModelConfig's default (12 heads, gelu).
    """
    check_flags(weights, said, n_embd=n_embd, n_head=n_head, n_layer=n_layer, afn=afn)
    for name, flag in (("n_head", n_head), ("afn", afn)):
        if getattr(weights, name) is None:
            setattr(weights, name, flag or getattr(ModelConfig, name))
    if weights.n_embd % weights.n_head:
        raise Gpt1Error(f"{said}: n_head {weights.n_head} does not divide n_embd {weights.n_embd}")
    return weights


def from_params(arrays, cfg):
    """Weights of a model's parameter list (original order: we, layers, clf/w, clf/b) for `cfg`."""
    weights = from_body(arrays[:MODEL_LAYERS.stop], cfg)
    weights.clf, weights.head = (arrays[-2], arrays[-1]), pretrained.head_of(cfg)
    return weights


def from_body(arrays, cfg):
    """Weights of a body's parameter list (we, then each layer's arrays: `Transformer.params_in_order`): no head."""
    we = np.asarray(arrays[0])
    first_position = tokens.position_id(cfg.n_vocab, 0, cfg.n_special)
    shards = [we[first_position:], we[:cfg.n_vocab]] + [np.asarray(a) for a in arrays[MODEL_LAYERS.start:]]
    return Weights(shards, special_rows=we[cfg.n_vocab:first_position], n_head=cfg.n_head, afn=cfg.afn)


def to_params(weights, cfg):
    """The parameter list of a `cfg` model holding `weights` (whose positions cover cfg.n_ctx).

    Without special rows or a classifier in `weights`, those are zeros: a model for its language
    model, whose task head is untrained.
    """
    nx = weights.n_embd
    specials = weights.special_rows if weights.special_rows is not None else np.zeros((cfg.n_special, nx), np.float32)
    if weights.clf is not None:
        clf = list(weights.clf)
    else:
        clf = [np.zeros((nx, cfg.n_clf_out), np.float32), np.zeros((cfg.n_clf_out,), np.float32)]
    we = np.concatenate([weights.tokens, specials, weights.positions[:cfg.n_ctx]], 0)
    return [we] + list(weights.layers) + clf


def model_config(weights, *, n_ctx=None, **kwargs):
    """The ModelConfig of a model holding `weights` (n_head and afn: the weights', else ModelConfig's defaults).

    n_ctx defaults to the rows of the position table; the head is the weights' (multiple choice,
    the original's, when they have none). The dropouts are the original's unless given.
    """
    head = weights.head or {"task_format": "multiple_choice", "n_classes": 0}
    return ModelConfig(n_vocab=weights.tokens.shape[0], n_ctx=n_ctx or weights.positions.shape[0],
                       n_embd=weights.n_embd, n_head=weights.n_head or ModelConfig.n_head, n_layer=weights.n_layer,
                       afn=weights.afn or ModelConfig.afn, **head, **kwargs)


def config_of_params(arrays, path, n_vocab=N_VOCAB):
    """The ModelConfig a `best_params.jl`'s arrays imply (n_embd, n_layer, n_ctx; its recorded head).

    n_head and afn are not in the file: the config has n_head 1 and gelu, for the caller to replace.
    Raises a one-line DataError for a file that is not a list of GPT-1 arrays.
    """
    n_rows = tokens.n_table(n_vocab, 0)
    we = arrays[0] if isinstance(arrays, (list, tuple)) and arrays else None
    n_layer = model_layers(len(arrays)) if we is not None else None
    if we is None or np.ndim(we) != 2 or we.shape[0] <= n_rows or not n_layer:
        raise DataError(path, f"not a GPT-1 params list (we [n_vocab + 3 + n_ctx, n_embd], {N_PER_LAYER} arrays "
                              "per layer, clf/w, clf/b)")
    head = pretrained.recorded_head(path) or {"task_format": "multiple_choice", "n_classes": 0}
    try:
        return ModelConfig(n_vocab=n_vocab, n_ctx=we.shape[0] - n_rows, n_embd=we.shape[1], n_head=1,
                           n_layer=n_layer, **head)
    except Gpt1Error as err:
        raise DataError(path, str(err)) from None
