"""Configuration objects, built once from the command line and passed explicitly.

Nothing in the package reads argparse or module globals: the original's
`globals().update(args.__dict__)` is replaced by these frozen dataclasses. They are the one owner
of the choices (activations, schedules, dtypes, LM heads), the defaults (the command line takes
its defaults from them) and the validation of what they hold.
"""
import dataclasses
import math
import numbers

from gpt1_tf.network import arrays, tokens
from gpt1_tf.errors import ConfigError

MAX_N_CTX = 512  # rows of the pretrained position table
MIN_N_CTX = 8  # _start_, a token, _delimiter_, a token, _classify_ and a little room
ACTIVATIONS = ("gelu", "swish", "relu")
# those whose backward pass may recompute them instead of keeping them (StepConfig.recompute)
RECOMPUTED_ACTIVATIONS = ("gelu",)
LR_SCHEDULES = ("warmup_cosine", "warmup_linear", "warmup_constant")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
LM_HEADS = ("masked", "full")
TASK_FORMATS = ("classification", "entailment", "similarity", "multiple_choice")  # the paper's Figure 1 (right)


def _finite(config, names):
    """Refuse NaN and infinity in these float fields (every comparison with NaN is false: ranges alone let it in)."""
    for name in names:
        if not math.isfinite(getattr(config, name)):
            raise ConfigError(f"{name} must be a finite number, got {getattr(config, name)}")


def _choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of the network (the original `n_*`, `afn` and `*_pdrop` flags)."""

    n_vocab: int = 40478
    n_special: int = tokens.N_SPECIAL
    n_ctx: int = MAX_N_CTX
    n_embd: int = 768
    n_head: int = 12
    n_layer: int = 12
    afn: str = "gelu"
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    clf_pdrop: float = 0.1
    # dtype of the transformer's matmuls and activations; parameters, layer norms, softmaxes,
    # losses and the classifier stay float32 (mixed precision, `--mixed_precision`)
    compute_dtype: str = "float32"
    # the classifier head: the input format it reads (`gpt1_tf.network.heads`) and its number of classes;
    # n_classes 0 for multiple choice (a softmax over the choices) and a real-valued similarity score
    task_format: str = "multiple_choice"
    n_classes: int = 0

    def __post_init__(self):
        for name in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer"):
            if getattr(self, name) < 1:
                raise ConfigError(f"n_{name[2:]} must be positive, got {getattr(self, name)}")
        if self.n_ctx > MAX_N_CTX:
            raise ConfigError(f"n_ctx {self.n_ctx} > {MAX_N_CTX}: GPT-1's position table has {MAX_N_CTX} rows")
        if self.n_special < tokens.N_SPECIAL:
            raise ConfigError(f"n_special must be at least {tokens.N_SPECIAL} "
                              f"({', '.join(tokens.SPECIAL_TOKENS)}), got {self.n_special}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        _choice("afn", self.afn, ACTIVATIONS)
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop", "clf_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        _choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        self._check_head()

    def _check_head(self):
        _choice("task_format", self.task_format, TASK_FORMATS)
        if self.task_format == "multiple_choice" and self.n_classes != 0:
            raise ConfigError(f"the multiple_choice head scores each choice (n_classes 0), got n_classes {self.n_classes}")
        if self.task_format in ("classification", "entailment") and self.n_classes < 2:
            raise ConfigError(f"a {self.task_format} head needs at least 2 classes, got n_classes {self.n_classes}")
        if self.task_format == "similarity" and (self.n_classes < 0 or self.n_classes == 1):
            raise ConfigError(f"a similarity head has 2 or more classes, or 0 for a real-valued score; "
                              f"got n_classes {self.n_classes}")

    @property
    def regression(self):
        """Whether the head predicts a real-valued score (a similarity task without classes, e.g. STS-B)."""
        return self.task_format == "similarity" and self.n_classes == 0

    @property
    def n_clf_out(self):
        """Outputs of the linear layer `clf`: 1 per choice, 1 score, or one per class."""
        return 1 if self.task_format == "multiple_choice" or self.regression else self.n_classes

    @property
    def n_table(self):
        """Rows of the single embedding matrix `we`: tokens | specials | positions."""
        return tokens.n_table(self.n_vocab, self.n_ctx, self.n_special)

    @property
    def clf_token(self):
        """Id of `_classify_`, where the classifier reads the hidden state."""
        return tokens.clf_id(self.n_vocab)

    @property
    def n_params_arrays(self):
        """3 + 12 * n_layer arrays in the original variable order (we, layers, clf/w, clf/b; `network.arrays`)."""
        return arrays.n_model_arrays(self.n_layer)

    @property
    def has_dropout(self):
        return any(p > 0 for p in (self.embd_pdrop, self.attn_pdrop, self.resid_pdrop, self.clf_pdrop))


@dataclasses.dataclass(frozen=True)
class OptConfig:
    """Settings of the original `adam` (with the decoupled weight-decay fix); defaults are the original's."""

    lr: float = 6.25e-5
    lr_schedule: str = "warmup_linear"
    lr_warmup: float = 0.002
    t_total: int = 1
    b1: float = 0.9
    b2: float = 0.999
    e: float = 1e-8
    l2: float = 0.01
    vector_l2: bool = False
    max_grad_norm: float = 1.0

    def __post_init__(self):
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _finite(self, ("lr", "lr_warmup", "b1", "b2", "e", "l2", "max_grad_norm"))
        for name in ("b1", "b2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("lr", "l2"):  # max_grad_norm <= 0: no clipping, as the original
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.e <= 0:
            raise ConfigError(f"e must be positive, got {self.e}")
        if self.t_total < 1:
            raise ConfigError(f"t_total must be at least 1, got {self.t_total} (is the training set smaller than one batch?)")
        if self.lr_warmup <= 0:
            raise ConfigError(f"lr_warmup must be positive, got {self.lr_warmup}")


# the options each mode fixes; None fields of a StepConfig take these, then the defaults below
_MODE_FIXES = {
    "exact": dict(trim=False, packed=False, lm_head="full", pool_only_eval=False, fused_apply=False,
                  recompute=False),
    "xla": dict(packed=False, lm_head="full"),
    "default": {},
}
_STEP_DEFAULTS = dict(trim=True, packed=True, lm_head="masked", pool_only_eval=True, recompute=True)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """How the train and eval steps compute. Every option changes the work done, not the outputs.

    Modes: the default (`trim` each batch to its longest sequence, `packed` dense layers, the
    `masked` LM head, `pool_only_eval`: the last block of an evaluation only where the classifier
    reads, `fused_apply`: the Adam update compiled with XLA, and `recompute`: the MLP's
    GELU recomputed in the backward pass instead of kept, ~0.5 GB less for a full-size Story
    Cloze tower, the same gradients up to rounding); `exact`, the original's
    arithmetic (padded batches, the full LM head, nothing fused); `xla`, static shapes for XLA
    (batches trimmed to a multiple of 8, the padded layout, the full LM head). A field left None
    takes its mode's value (`fused_apply` None: on with one tower, decided by the Trainer); a value
    that contradicts the mode raises ConfigError instead of being silently overridden.
    """

    exact: bool = False
    xla: bool = False
    trim: bool | None = None
    packed: bool | None = None
    lm_head: str | None = None
    pool_only_eval: bool | None = None
    fused_apply: bool | None = None
    recompute: bool | None = None

    def __post_init__(self):
        if self.exact and self.xla:
            raise ConfigError("exact (the original's arithmetic) and xla (static shapes) exclude each other")
        for name, value in _MODE_FIXES[self.mode].items():
            given = getattr(self, name)
            if given is not None and given != value:
                raise ConfigError(f"the {self.mode} step computes with {name}={value!r}; "
                                  f"{name}={given!r} contradicts it")
            object.__setattr__(self, name, value)
        for name, value in _STEP_DEFAULTS.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _choice("lm_head", self.lm_head, LM_HEADS)

    @property
    def mode(self):
        return "exact" if self.exact else "xla" if self.xla else "default"

    @property
    def trim_multiple(self):
        """Trimmed lengths are multiples of this: few distinct shapes, one XLA compilation each."""
        return 8 if self.xla else 1


@dataclasses.dataclass(frozen=True)
class TuningConfig:
    """Which parameters fine-tuning trains (`gpt1_tf.network.lora`); the default trains them all, as the original.

    lora_rank: LoRA (None: off): the body's table and weights are frozen and each target weight W
    [n_in, n_out] gets A [n_in, r] and B [r, n_out], the layer computing x W + (lora_alpha / r) x A B.
    lora_alpha: None is the rank (keras-hub's default). lora_targets: names of `arrays.LORA_TARGETS`.
    train_layers: only the top K blocks train (with LoRA: only they get adapters); the table is
    frozen. freeze_embeddings: the table is frozen. The classifier always trains, and so do the
    special-token rows of a frozen table (new, randomly drawn rows: the task's tokens) unless
    freeze_embeddings.
    """

    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_targets: tuple = arrays.LORA_DEFAULT_TARGETS
    train_layers: int | None = None
    freeze_embeddings: bool = False

    def __post_init__(self):
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        for name in ("lora_rank", "train_layers"):  # sizes of variables and ranges: 2.5 would fail far from here
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ConfigError(f"the LoRA rank must be at least 1, got {self.lora_rank}")
        if self.lora_rank is None and self.lora_alpha is not None:
            raise ConfigError("a LoRA alpha needs a LoRA rank")
        if self.lora_alpha is not None:
            _finite(self, ("lora_alpha",))
            if self.lora_alpha <= 0:
                raise ConfigError(f"the LoRA alpha must be positive, got {self.lora_alpha}")
        unknown = [t for t in self.lora_targets if t not in arrays.LORA_TARGETS]
        if unknown or not self.lora_targets:
            raise ConfigError(f"unknown LoRA target {', '.join(map(repr, unknown)) or '(none given)'}: "
                              f"the targets are {', '.join(arrays.LORA_TARGETS)}")
        if len(set(self.lora_targets)) != len(self.lora_targets):
            raise ConfigError(f"LoRA targets named twice: {', '.join(self.lora_targets)}")
        if self.train_layers is not None and self.train_layers < 1:
            raise ConfigError(f"train_layers must be at least 1, got {self.train_layers}")

    @property
    def lora(self):
        return self.lora_rank is not None

    @property
    def alpha(self):
        return self.lora_rank if self.lora_alpha is None else self.lora_alpha

    @property
    def scale(self):
        """alpha / r: what multiplies x A B."""
        return self.alpha / self.lora_rank

    @property
    def full(self):
        """Everything trains: the original's fine-tuning."""
        return not self.frozen_table

    @property
    def frozen_table(self):
        """Whether the table is frozen: whatever freezes anything freezes it."""
        return self.lora or self.train_layers is not None or self.freeze_embeddings

    @property
    def special_rows(self):
        """Whether a frozen table's special-token rows train (as a variable of their own)."""
        return self.frozen_table and not self.freeze_embeddings

    @property
    def lora_layout(self):
        """What adapters must agree on to load into a model: rank, alpha, targets, adapted layers."""
        return self.lora_rank, self.alpha, self.lora_targets, self.train_layers

    def describe_lora(self):
        layers = "every layer" if self.train_layers is None else f"the top {self.train_layers} layers"
        return f"rank {self.lora_rank} (alpha {self.alpha:g}) on {', '.join(self.lora_targets)} of {layers}"

    def n_trained(self, cfg):
        """Values fine-tuning trains under this tuning on a model of `cfg` (a ModelConfig): what has gradients and Adam state."""
        if self.full:
            return arrays.n_model_values(cfg)
        sizes = {"n_embd": cfg.n_embd, "n_table": cfg.n_table, "n_clf_out": cfg.n_clf_out}
        head = sum(math.prod(a.shape(sizes)) for a in arrays.MODEL_LAST)
        table = 0 if self.frozen_table else cfg.n_table * cfg.n_embd
        special = cfg.n_special * cfg.n_embd if self.special_rows else 0
        if self.lora:  # A [n_in, r] and B [r, n_out] of each target
            per_layer = sum(self.lora_rank * sum(arrays.lora_target(t).shape(sizes)[1:]) for t in self.lora_targets)
        else:
            per_layer = sum(math.prod(shape) for shape in arrays.layer_shapes(cfg.n_embd))
        return table + special + len(self.trained_layers(cfg.n_layer)) * per_layer + head

    def trained_layers(self, n_layer):
        """The blocks that train (with LoRA: that get adapters), bottom first."""
        return range(n_layer - (self.train_layers or n_layer), n_layer)

    def check(self, cfg):
        """Refuse what the network of `cfg` (a ModelConfig) cannot take: more layers than it has, a rank above a weight's side."""
        if self.train_layers is not None and self.train_layers > cfg.n_layer:
            raise ConfigError(f"train_layers {self.train_layers} is more than the model's {cfg.n_layer} layers")
        for name in self.lora_targets if self.lora else ():
            side = min(arrays.lora_target(name).shape({"n_embd": cfg.n_embd})[1:])
            if self.lora_rank > side:
                raise ConfigError(f"LoRA rank {self.lora_rank} is larger than {name}'s smaller side ({side}: "
                                  f"n_embd {cfg.n_embd})")


def check_compatible(model_cfg, step_cfg):
    """Refuse a model and step configuration that contradict each other."""
    if step_cfg.exact and model_cfg.compute_dtype != "float32":
        raise ConfigError(f"--exact (StepConfig.exact) is the original's float32 arithmetic, not mixed precision: "
                          f"drop --mixed_precision (compute_dtype {model_cfg.compute_dtype})")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy (temperature 0), or sampled after temperature, top-k, top-p."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False

    def __post_init__(self):
        _finite(self, ("temperature", "top_p"))
        if self.temperature <= 0 and not self.greedy:
            raise ConfigError(f"--temperature must be positive, got {self.temperature} (use --greedy for argmax)")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"--top_k must be 0 (off) or positive, got {self.top_k}")
