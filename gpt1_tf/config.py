"""Configuration objects, built once from the command line and passed explicitly.

Nothing in the package reads argparse or module globals: the original's
`globals().update(args.__dict__)` is replaced by these two frozen dataclasses.
"""
import dataclasses

from gpt1_tf.errors import Gpt1Error

N_SPECIAL = 3  # _start_, _delimiter_, _classify_ (appended after the BPE vocabulary)
MAX_N_CTX = 512  # rows of the pretrained position table
ACTIVATIONS = ("gelu", "swish", "relu")
LR_SCHEDULES = ("warmup_cosine", "warmup_linear", "warmup_constant")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of the network (the original `n_*`, `afn` and `*_pdrop` flags)."""

    n_vocab: int = 40478
    n_special: int = N_SPECIAL
    n_ctx: int = 512
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

    def __post_init__(self):
        for name in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer"):
            if getattr(self, name) < 1:
                raise Gpt1Error(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_special < 3:
            raise Gpt1Error(f"n_special must be at least 3 (_start_, _delimiter_, _classify_), got {self.n_special}")
        if self.n_embd % self.n_head:
            raise Gpt1Error(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.afn not in ACTIVATIONS:
            raise Gpt1Error(f"afn must be one of {', '.join(ACTIVATIONS)}, got {self.afn!r}")
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop", "clf_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise Gpt1Error(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise Gpt1Error(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {self.compute_dtype!r}")

    @property
    def n_table(self):
        """Rows of the single embedding matrix `we`: tokens | specials | positions."""
        return self.n_vocab + self.n_special + self.n_ctx

    @property
    def clf_token(self):
        """Id of `_classify_`: the original appended _start_, _delimiter_, _classify_ to the encoder."""
        return self.n_vocab + 2

    @property
    def n_params_arrays(self):
        """3 + 12 * n_layer arrays in the original variable order (we, layers, clf/w, clf/b)."""
        return 3 + 12 * self.n_layer


@dataclasses.dataclass(frozen=True)
class OptConfig:
    """Optimizer settings of the original `adam` (with the decoupled weight-decay fix)."""

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
        if self.lr_schedule not in LR_SCHEDULES:
            raise Gpt1Error(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.t_total < 1:
            raise Gpt1Error(f"t_total must be at least 1, got {self.t_total} (is the training set smaller than one batch?)")
        if self.lr_warmup <= 0:
            raise Gpt1Error(f"lr_warmup must be positive, got {self.lr_warmup}")
