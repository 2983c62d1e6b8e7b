"""`python train.py --dataset rocstories ...`: the original's flags, their validation, the configs they make, `main`.

The model and optimizer flags are `gpt1_tf.cli.common`'s (defaults from `gpt1_tf.network.config`);
each config object validates its own fields, and this module adds the rules about the run itself.
`run_config` turns the checked flags into the `RunConfig` that `gpt1_tf.train.finetune.train` runs.
"""
import argparse
import os
import sys

from gpt1_tf.cli.common import add_flags, check_finite_floats, exits, from_flags
from gpt1_tf.data.tasks import TASKS
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.arrays import LORA_DEFAULT_TARGETS, LORA_TARGETS
from gpt1_tf.network.config import (MIN_N_CTX, TASK_FORMATS, ModelConfig, OptConfig, StepConfig, TuningConfig,
                                    check_compatible)

DATASETS = ("rocstories", *TASKS, "generic")
NAN_POLICIES = ("stop", "skip")
MAX_SEED = 2 ** 32 - 1  # NumPy's seed range


def build_parser():
    p = argparse.ArgumentParser(
        prog="train.py", description="Fine-tune GPT-1 as OpenAI's original train.py: on ROCStories (Story Cloze), "
                                     "the paper's other datasets, or your own data (--dataset generic).")
    # --- the original's flags and defaults ---
    p.add_argument("--desc", type=str, default=None, help="run name for log/save files (default: the dataset)")
    p.add_argument("--dataset", type=str, default=None, help=", ".join(DATASETS))
    p.add_argument("--log_dir", type=str, default="log/")
    p.add_argument("--save_dir", type=str, default="save/")
    p.add_argument("--data_dir", type=str, default="data/")
    p.add_argument("--submission_dir", type=str, default="submission/")
    p.add_argument("--submit", action="store_true", help="save best params and write the test predictions")
    p.add_argument("--analysis", action="store_true", help="print validation and test accuracy (needs --submit)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n_iter", type=int, default=3, help="epochs")
    p.add_argument("--n_batch", type=int, default=8, help="examples per tower")
    add_flags(p, "max_grad_norm", "lr", "lr_warmup", "n_ctx", "n_embd", "n_head", "n_layer", "embd_pdrop",
              "attn_pdrop", "resid_pdrop", "clf_pdrop", "l2", "vector_l2")
    p.add_argument("--n_gpu", type=int, default=4, help="towers; the global batch is n_batch * n_gpu (one tower per GPU; with fewer GPUs, in "
                        "sequence on one device, gradients averaged)")
    p.add_argument("--opt", type=str, default="adam", choices=["adam"])
    add_flags(p, "afn", "lr_schedule", "encoder_path", "bpe_path")
    p.add_argument("--n_transfer", type=int, default=12, help="pretrained layers to load; -1: train from scratch")
    p.add_argument("--lm_coef", type=float, default=0.5)
    add_flags(p, "b1", "b2", "e")
    # --- added ---
    p.add_argument("--model_dir", type=str, default="model/", help="the pretrained weights: OpenAI's params_*.npy + params_shapes.json, or a HuggingFace "
                        "openai-gpt folder (config.json + model.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--save_every", type=int, default=1000, help="checkpoint every this many updates (and every epoch)")
    p.add_argument("--n_valid", type=int, default=374,
                   help="validation examples split off: ROCStories' val file, or a generic train file without a dev file")
    p.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism on GPUs too (always on for CPU runs)")
    p.add_argument("--nan_policy", choices=NAN_POLICIES, default="stop",
                   help="on a non-finite loss or gradient: stop (exit 1) or skip that update")
    add_flags(p, "xla", "mixed_precision",
              xla=dict(help="compile the train/eval steps with XLA (static shapes: batches trimmed to a multiple "
                            "of 8, no packing; for GPUs)"))
    p.add_argument("--no_trim", action="store_true", help="do not trim batches to their longest sequence")
    p.add_argument("--exact", action="store_true",
                   help="the original's arithmetic (padded batches, full LM head, no XLA): slower")
    p.add_argument("--stop_after_updates", type=int, default=None,
                   help="checkpoint and stop after this many updates (continue later with --resume)")
    add_tuning_flags(p)
    g = p.add_argument_group("--dataset generic: your own train/dev/test.{csv,tsv,jsonl} in --data_dir")
    g.add_argument("--task_format", choices=TASK_FORMATS, default=None, help="the input transformation and head")
    g.add_argument("--text_columns", type=_names, default=None,
                   help="comma-separated text columns: 1 (classification), 2 (entailment, similarity), "
                        "the context's (multiple_choice)")
    g.add_argument("--choice_columns", type=_names, default=None, help="multiple_choice: the answers' columns")
    g.add_argument("--label_column", type=str, default="label")
    g.add_argument("--labels", type=_names, default=None,
                   help="comma-separated label values, class id = position (default: the sorted values of train; "
                        "multiple_choice: 0..K-1; similarity without --labels: a real-valued score)")
    return p


def add_tuning_flags(p):
    """LoRA and partial fine-tuning (`TuningConfig`): which parameters train."""
    g = p.add_argument_group("LoRA and partial fine-tuning (default: every parameter trains, as the original)")
    g.add_argument("--lora_rank", type=int, default=None,
                   help="LoRA of this rank: the pretrained weights and table frozen, A [n_in, r] and B [r, n_out] beside "
                        "each target weight train (B starts at zero), with the head and the 3 special-token rows")
    g.add_argument("--lora_alpha", type=float, default=None, help="LoRA's alpha: x W + alpha/r x A B (default: the rank)")
    g.add_argument("--lora_targets", type=_names, default=None,
                   help=f"comma-separated weights to adapt, of {', '.join(LORA_TARGETS)} (c_proj is attention's; "
                        f"default {','.join(LORA_DEFAULT_TARGETS)})")
    g.add_argument("--train_layers", type=int, default=None,
                   help="train only the top K blocks (with LoRA: adapt only them), the head and the special-token rows")
    g.add_argument("--freeze_embeddings", action="store_true",
                   help="freeze the embedding table, its special-token rows too")
    g.add_argument("--lora_from", type=str, default=None,
                   help="a LoRA adapter folder (adapter_config.json + adapter_model.safetensors, PEFT's format, as "
                        "train.py writes beside best_params.jl) loaded onto the base before the first update: to go on "
                        "training, or to evaluate it (--lr 0); its layout is the run's (--lora_rank etc. may be left out)")


def tuning_config(args):
    """The TuningConfig of the flags (`validate_tuning` first)."""
    return TuningConfig(lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                        lora_targets=tuple(args.lora_targets or LORA_DEFAULT_TARGETS),
                        train_layers=args.train_layers, freeze_embeddings=args.freeze_embeddings)


def validate_tuning(args):
    """Refuse impossible LoRA and partial fine-tuning flags; --lora_from's layout becomes the run's where the flags leave it."""
    if args.lora_rank is not None and args.lora_rank < 1:
        raise Gpt1Error(f"--lora_rank must be at least 1, got {args.lora_rank}")
    if args.lora_rank is None and (args.lora_alpha is not None or args.lora_targets is not None) and not args.lora_from:
        raise Gpt1Error("--lora_alpha and --lora_targets need --lora_rank")
    if args.train_layers is not None and not 1 <= args.train_layers <= args.n_layer:
        raise Gpt1Error(f"--train_layers must be in 1..{args.n_layer} (--n_layer), got {args.train_layers}")
    if args.lora_from:
        from gpt1_tf.weights import peft
        adapter = peft.read_tuning(args.lora_from, args.n_layer)
        if args.lora_rank is None:  # the folder's layout, where the flags leave it (those given are compared below)
            args.lora_rank = adapter.lora_rank
            args.lora_alpha = adapter.alpha if args.lora_alpha is None else args.lora_alpha
            args.lora_targets = list(adapter.lora_targets) if args.lora_targets is None else args.lora_targets
            args.train_layers = adapter.train_layers if args.train_layers is None else args.train_layers
    tuning = tuning_config(args)  # a ConfigError is a Gpt1Error: one line
    if args.lora_from and adapter.lora_layout != tuning.lora_layout:
        raise Gpt1Error(f"--lora_from {args.lora_from}: its adapters are {adapter.describe_lora()}, this run's "
                        f"flags ask for {tuning.describe_lora()}")
    tuning.check(model_config(args))


def _names(value):
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {value!r}")
    return names


def model_config(args):
    """The network of the flags; the run sets n_vocab, n_ctx and the head from its data."""
    return ModelConfig(n_ctx=args.n_ctx, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer, afn=args.afn,
                       embd_pdrop=args.embd_pdrop, attn_pdrop=args.attn_pdrop, resid_pdrop=args.resid_pdrop,
                       clf_pdrop=args.clf_pdrop, compute_dtype=args.mixed_precision or "float32")


def opt_config(args):
    """The optimizer of the flags; the run sets t_total from its data."""
    return OptConfig(lr=args.lr, lr_schedule=args.lr_schedule, lr_warmup=args.lr_warmup,
                     b1=args.b1, b2=args.b2, e=args.e, l2=args.l2, vector_l2=args.vector_l2,
                     max_grad_norm=args.max_grad_norm)


def step_config(args):
    return StepConfig(exact=args.exact, xla=args.xla, trim=False if args.no_trim else None)


def _validate_generic(args):
    """The generic dataset's flags: given where needed, and only there."""
    flags = ("task_format", "text_columns", "choice_columns", "labels")
    if args.dataset != "generic":
        given = [f"--{f}" for f in flags if getattr(args, f) is not None]
        if given:
            raise Gpt1Error(f"{', '.join(given)}: only for --dataset generic ({args.dataset} has its own format)")
        return
    if args.task_format is None or args.text_columns is None:
        raise Gpt1Error("--dataset generic needs --task_format and --text_columns")
    n_texts = {"classification": 1, "entailment": 2, "similarity": 2}.get(args.task_format)
    if n_texts and len(args.text_columns) != n_texts:
        raise Gpt1Error(f"--task_format {args.task_format} reads {n_texts} text column(s), "
                        f"--text_columns names {len(args.text_columns)}")
    if (args.task_format == "multiple_choice") != (args.choice_columns is not None):
        raise Gpt1Error("--choice_columns are for (and needed by) --task_format multiple_choice")
    if args.choice_columns is not None and len(args.choice_columns) < 2:
        raise Gpt1Error("--choice_columns: a multiple-choice task needs at least 2 answers")
    if args.labels is not None and args.task_format == "multiple_choice" and len(args.labels) != len(args.choice_columns):
        raise Gpt1Error(f"--labels names {len(args.labels)} values for {len(args.choice_columns)} choices")


def validate_args(args):
    """Refuse impossible flags with one line, before anything is read or written."""
    if args.dataset is None:
        raise Gpt1Error(f"--dataset is required ({', '.join(DATASETS)})")
    if args.dataset not in DATASETS:
        raise Gpt1Error(f"--dataset {args.dataset!r} is not supported; use one of: {', '.join(DATASETS)}")
    for name in ("n_iter", "n_batch", "n_gpu", "save_every", "n_valid", "stop_after_updates"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise Gpt1Error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.seed <= MAX_SEED:
        raise Gpt1Error(f"--seed must be in 0..{MAX_SEED}, got {args.seed}")
    check_finite_floats(build_parser(), args)
    if args.n_transfer < -1:
        raise Gpt1Error(f"--n_transfer must be -1 (no weights), 0 (the embeddings) or a number of layers, "
                        f"got {args.n_transfer}")
    if args.n_ctx < MIN_N_CTX:
        raise Gpt1Error(f"--n_ctx {args.n_ctx} is too small (at least {MIN_N_CTX})")
    if args.analysis and not args.submit:
        raise Gpt1Error("--analysis reads the submission file: add --submit")
    _validate_generic(args)
    validate_tuning(args)
    check_compatible(model_config(args), step_config(args))  # each config validates its own fields
    opt_config(args)
    if args.desc is None:
        args.desc = args.dataset


def data_config(args):
    from gpt1_tf.data.inputs import DataConfig
    return from_flags(DataConfig, args)


def run_config(args):
    """The RunConfig of checked flags (`validate_args` first)."""
    from gpt1_tf.train.finetune import RunConfig
    return from_flags(RunConfig, args, model=model_config(args), opt=opt_config(args), step=step_config(args),
                      data=data_config(args), tuning=tuning_config(args), command_line=dict(vars(args)))


@exits
def main(argv=None):
    """`train.py`'s entry point: one-line errors and a non-zero exit, no traceback, for bad input."""
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import prefer_system_allocator
    prefer_system_allocator()  # before TensorFlow starts
    try:
        validate_args(args)
        from gpt1_tf.train.finetune import train
        train(run_config(args))
    except KeyboardInterrupt:  # before the run's own Ctrl-C handling is in place (or a second Ctrl-C)
        from gpt1_tf.train.interrupts import EXIT_INTERRUPTED, interrupted_message
        print(interrupted_message(os.path.join(args.save_dir, args.desc or args.dataset or "", "checkpoints")),
              file=sys.stderr)
        return EXIT_INTERRUPTED
