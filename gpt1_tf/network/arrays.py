"""The layout of GPT-1's arrays: which, in which order, of which shapes, under which names.

This table is the one owner of that knowledge; every list of GPT-1 arrays is read off it:

- the model's parameters in the original order (`Transformer.params_in_order`, the original's
  `best_params.jl`, `pretrained.expected_shapes`): MODEL_FIRST (`we`), LAYER for each layer h0,
  h1, ..., then MODEL_LAST (`clf/w`, `clf/b`);
- the original's shards (`params_shapes.json` + `params_*.npy`, `pretrained.load_shards`):
  SHARD_FIRST (the position table, the token table), then LAYER for each layer;
- HuggingFace's `openai-gpt` tensors (`gpt1_tf.weights.hf`): the `hf` names, a layer's under
  `h.{i}.`, in `hf_shape`.

An entry's `path` is the original's variable under its scope (`model/h0/attn/c_attn/w`) and also
the attribute path on the Keras layer that holds it (`block.attn.c_attn.w`). Shapes are written in
the dimensions below (NX is n_embd). The original's conv1d weights are [rf = 1, nx, nf];
HuggingFace's Conv1D keeps them as [nx, nf] (`conv=True`: the same values without the leading
axis). The classifier is not a HuggingFace tensor of the table: `hf` writes it transposed under
its head's key. Plain Python: no NumPy, no TensorFlow, nothing of the package.
"""
import dataclasses
import functools
import math


@dataclasses.dataclass(frozen=True)
class Dim:
    """A dimension of the table: `factor` times the size called `name` (3 * NX: three times n_embd)."""

    name: str
    factor: int = 1

    def __rmul__(self, k):
        return Dim(self.name, k * self.factor)

    def size(self, sizes):
        return self.factor * sizes[self.name]

    def __repr__(self):
        return self.name if self.factor == 1 else f"{self.factor}*{self.name}"


NX = Dim("n_embd")
N_POSITIONS = Dim("n_positions")  # rows of the original's position table (512 in GPT-1)
N_VOCAB = Dim("n_vocab")  # the BPE vocabulary
N_TABLE = Dim("n_table")  # rows of the model's one embedding matrix: tokens | specials | positions
N_CLF_OUT = Dim("n_clf_out")  # outputs of the classifier (ModelConfig.n_clf_out)


@dataclasses.dataclass(frozen=True)
class Array:
    """One array: its original path, its shape in the table's dimensions, its HuggingFace name."""

    path: str
    dims: tuple
    hf: str | None = None
    conv: bool = False  # a conv1d weight [1, nx, nf]: HuggingFace's is [nx, nf]

    def shape(self, sizes):
        """The original's shape, for `sizes` ({"n_embd": 768, ...})."""
        return tuple(d if isinstance(d, int) else d.size(sizes) for d in self.dims)

    def hf_shape(self, sizes):
        """HuggingFace's shape: the original's, less the leading rf axis of a conv1d weight."""
        shape = self.shape(sizes)
        return shape[1:] if self.conv else shape

    def to_hf(self, a):
        """An array of the original's shape as HuggingFace holds it."""
        return a[0] if self.conv and a.ndim == 3 else a

    def from_hf(self, a, sizes):
        """A HuggingFace tensor (of `hf_shape`) in the original's shape."""
        return a.reshape(self.shape(sizes))


# the arrays of one transformer layer (scope h{i}), in the original order
LAYER = (
    Array("attn/c_attn/w", (1, NX, 3 * NX), "attn.c_attn.weight", conv=True),
    Array("attn/c_attn/b", (3 * NX,), "attn.c_attn.bias"),
    Array("attn/c_proj/w", (1, NX, NX), "attn.c_proj.weight", conv=True),
    Array("attn/c_proj/b", (NX,), "attn.c_proj.bias"),
    Array("ln_1/g", (NX,), "ln_1.weight"),
    Array("ln_1/b", (NX,), "ln_1.bias"),
    Array("mlp/c_fc/w", (1, NX, 4 * NX), "mlp.c_fc.weight", conv=True),
    Array("mlp/c_fc/b", (4 * NX,), "mlp.c_fc.bias"),
    Array("mlp/c_proj/w", (1, 4 * NX, NX), "mlp.c_proj.weight", conv=True),
    Array("mlp/c_proj/b", (NX,), "mlp.c_proj.bias"),
    Array("ln_2/g", (NX,), "ln_2.weight"),
    Array("ln_2/b", (NX,), "ln_2.bias"),
)
N_PER_LAYER = len(LAYER)

# the weights LoRA may adapt (`gpt1_tf.network.lora`), by the names users give them: the layer's
# scope in a block (keras-hub's and PEFT's `c_attn`, `c_proj` are attention's; the MLP's c_proj is
# `mlp/c_proj`). Each is a conv1d weight of LAYER: `<scope>/w`; HuggingFace's module `<scope>` with / as .
LORA_TARGETS = {"c_attn": "attn/c_attn", "c_proj": "attn/c_proj", "c_fc": "mlp/c_fc", "mlp/c_proj": "mlp/c_proj"}
LORA_DEFAULT_TARGETS = ("c_attn", "c_proj")


def lora_target(name):
    """The LAYER entry of a LoRA target's weight ("c_fc": mlp/c_fc/w)."""
    return next(a for a in LAYER if a.path == f"{LORA_TARGETS[name]}/w")

# the original's shards open with the two embedding tables (the model joins them in `we`)
POSITIONS = Array("positions", (N_POSITIONS, NX), "positions_embed.weight")
TOKENS = Array("tokens", (N_VOCAB, NX), "tokens_embed.weight")
SHARD_FIRST = (POSITIONS, TOKENS)

# the model's parameters around the layers: the embedding matrix (on the body), the classifier (on the model)
MODEL_FIRST = (Array("we", (N_TABLE, NX)),)
MODEL_LAST = (Array("clf/w", (NX, N_CLF_OUT)), Array("clf/b", (N_CLF_OUT,)))

# the layers' arrays in a shard list and in a model's parameter list
SHARD_LAYERS = slice(len(SHARD_FIRST), None)
MODEL_LAYERS = slice(len(MODEL_FIRST), -len(MODEL_LAST))


def layer_scope(i):
    """The original's scope of layer i (and the Keras name of its block): h0, h1, ..."""
    return f"h{i}"


def walk(obj, path):
    """The attribute at `path` ("attn/c_attn/w": obj.attn.c_attn.w)."""
    return functools.reduce(getattr, path.split("/"), obj)


def layer_params(block):
    """A block's variables in LAYER order."""
    return [walk(block, a.path) for a in LAYER]


def layer_shapes(n_embd):
    """The original's shapes of one layer's arrays, in LAYER order."""
    return [a.shape({"n_embd": n_embd}) for a in LAYER]


def _model_sizes(cfg):
    return {"n_embd": cfg.n_embd, "n_table": cfg.n_table, "n_clf_out": cfg.n_clf_out}


def model_shapes(cfg):
    """Shapes of a model's parameters in the original order, for a `ModelConfig`."""
    sizes = _model_sizes(cfg)
    return ([a.shape(sizes) for a in MODEL_FIRST] + layer_shapes(cfg.n_embd) * cfg.n_layer
            + [a.shape(sizes) for a in MODEL_LAST])


def n_model_arrays(n_layer):
    """Arrays in a model's parameter list: 3 + 12 * n_layer."""
    return len(MODEL_FIRST) + N_PER_LAYER * n_layer + len(MODEL_LAST)


def n_model_values(cfg):
    """Parameters of a `ModelConfig` model: the sum of its arrays' sizes."""
    return sum(math.prod(shape) for shape in model_shapes(cfg))


def model_layers(n_arrays):
    """Layers of a model's parameter list of n_arrays arrays; None when that is no whole number of layers."""
    n, rest = divmod(n_arrays - len(MODEL_FIRST) - len(MODEL_LAST), N_PER_LAYER)
    return None if rest or n < 0 else n


def shard_layers(n_arrays):
    """Layers of a shard list of n_arrays arrays (the rest of a partial layer not counted)."""
    return (n_arrays - len(SHARD_FIRST)) // N_PER_LAYER
