"""What every program shares: the model and optimizer flags (defaults from the configs), float checks, the error exit.

`add_flags(parser, "n_embd", "lr", ...)` adds shared flags in the caller's order (train.py keeps the
original's), each defined once here, its default the config dataclass's unless the program has its
own recipe (pretrain.py's paper defaults). `exits` wraps a program's body: a Gpt1Error is one line
`error: ...` on stderr and exit 1; an interrupted run's line and exit 130.
"""
import dataclasses
import functools
import math
import sys

from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.config import ACTIVATIONS, COMPUTE_DTYPES, LR_SCHEDULES, ModelConfig, OptConfig

MODEL, OPT = ModelConfig(), OptConfig()

# each shared flag once: its argparse keywords (the default is the config's field of the same name)
FLAGS = {
    "n_ctx": dict(type=int, default=MODEL.n_ctx), "n_embd": dict(type=int, default=MODEL.n_embd),
    "n_head": dict(type=int, default=MODEL.n_head), "n_layer": dict(type=int, default=MODEL.n_layer),
    "afn": dict(type=str, default=MODEL.afn, choices=ACTIVATIONS),
    "embd_pdrop": dict(type=float, default=MODEL.embd_pdrop), "attn_pdrop": dict(type=float, default=MODEL.attn_pdrop),
    "resid_pdrop": dict(type=float, default=MODEL.resid_pdrop), "clf_pdrop": dict(type=float, default=MODEL.clf_pdrop),
    "lr": dict(type=float, default=OPT.lr), "lr_schedule": dict(type=str, default=OPT.lr_schedule, choices=LR_SCHEDULES),
    "lr_warmup": dict(type=float, default=OPT.lr_warmup), "l2": dict(type=float, default=OPT.l2),
    "vector_l2": dict(action="store_true"), "max_grad_norm": dict(type=float, default=OPT.max_grad_norm),
    "b1": dict(type=float, default=OPT.b1), "b2": dict(type=float, default=OPT.b2), "e": dict(type=float, default=OPT.e),
    "encoder_path": dict(type=str, default=None, help="default: the packaged encoder_bpe_40000.json"),
    "bpe_path": dict(type=str, default=None, help="default: the packaged vocab_40000.bpe"),
    "xla": dict(action="store_true", help="compile the train/eval steps with XLA (for GPUs)"),
    "mixed_precision": dict(
        nargs="?", const="bfloat16", choices=COMPUTE_DTYPES[1:], default=None,
        help="matmuls in bfloat16 (the default when given without a value) or float16 with dynamic "
             "loss scaling; parameters, layer norms, softmaxes and losses stay float32. For GPUs, and "
             "for CPUs with native bfloat16 (avx512_bf16 or amx_bf16 in /proc/cpuinfo), where bfloat16 "
             "made the full model's train step 1.4x faster on an AMD EPYC but pretraining 2.8x slower on "
             "an Intel Xeon without AMX (BENCHMARKS.md, runs G and I): measure on yours; on other CPUs it "
             "is ~2x slower than float32"),
}


def add_flags(parser, *names, **overrides):
    """Add the shared flags `names` to `parser`, in that order; `overrides` {name: {keyword: value}} a program's own."""
    for name in names:
        parser.add_argument(f"--{name}", **{**FLAGS[name], **overrides.get(name, {})})


def from_flags(config_class, args, **given):
    """A `config_class` dataclass of the `given` fields, the others the flags of the same names."""
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if f.name not in given}
    return config_class(**given, **flags)


def check_finite_floats(parser, args):
    """Refuse NaN and infinity in every float flag of a program's `parser` (Python's float() takes 'nan', 'inf')."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.type is float and value is not None and not math.isfinite(value):
            raise Gpt1Error(f"{action.option_strings[0]} must be a finite number, got {value}")


def exits(body):
    """A program's `main(argv=None)` from its body: one-line errors, exit 1 (130 for an interrupted run), no traceback."""
    from gpt1_tf.train.interrupts import EXIT_INTERRUPTED, Interrupted

    @functools.wraps(body)
    def main(argv=None):
        try:
            return body(argv) or 0
        except Gpt1Error as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except Interrupted as stop:
            print(stop, file=sys.stderr)
            return EXIT_INTERRUPTED
    return main
