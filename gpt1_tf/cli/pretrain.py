"""`python pretrain.py TEXT_FILES...`: the paper's unsupervised pretraining on raw text (README: Pretraining).

The flags (the model's and optimizer's from `gpt1_tf.cli.common`, with the paper's pretraining
recipe as defaults where it differs from fine-tuning's), their checks, and `main`. The run itself
is `gpt1_tf.train.pretraining.pretrain`; the corpus `gpt1_tf.data.corpus`; the cluster `gpt1_tf.train.cluster`.
"""
import argparse
import os
import sys

from gpt1_tf.cli.common import add_flags, check_finite_floats, exits, from_flags
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.config import MAX_N_CTX, MIN_N_CTX, ModelConfig, OptConfig

# the paper's pretraining recipe, where it is not fine-tuning's (the configs' defaults): a maximum rate
# of 2.5e-4 over 2000 warmup updates, then cosine to 0
PAPER_LR, PAPER_LR_SCHEDULE, PAPER_WARMUP_UPDATES = 2.5e-4, "warmup_cosine", 2000

def build_parser():
    p = argparse.ArgumentParser(prog="pretrain.py", description="Pretrain GPT-1's language model on raw text "
                                "(the paper's unsupervised stage); writes the original's weight shards.")
    p.add_argument("inputs", nargs="+", help="UTF-8 text files or globs (quote globs), tokenized once and cached")
    p.add_argument("--desc", default="pretrain", help="run name for log/save files")
    p.add_argument("--log_dir", default="log/")
    p.add_argument("--save_dir", default="save/")
    p.add_argument("--cache_dir", default=None, help="token cache: a shard per file (default <save_dir>/token_cache/)")
    p.add_argument("--tokenize_workers", type=int, default=1, help="processes that tokenize the files not yet cached")
    p.add_argument("--out", default=None, help="the shards (default <save_dir>/<desc>/model/): a new or empty "
                   "folder, or an earlier --out of pretrain.py, which is replaced")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n_iter", type=int, default=100, help="epochs (the paper: 100)")
    p.add_argument("--n_batch", type=int, default=64, help="windows per update, over all replicas (the paper: 64)")
    p.add_argument("--n_micro", type=int, default=1,
                   help="gradient accumulation: each replica's windows of an update run as this many micro-batches "
                        "in sequence (less memory, the same update)")
    add_flags(p, "n_ctx", "n_embd", "n_head", "n_layer", "afn", "embd_pdrop", "attn_pdrop", "resid_pdrop",
              n_ctx=dict(help="tokens per window (the paper: 512)"))
    add_flags(p, "lr", lr=dict(default=PAPER_LR, help=f"maximum learning rate (the paper: {PAPER_LR})"))
    p.add_argument("--lr_warmup_updates", type=int, default=PAPER_WARMUP_UPDATES,
                   help=f"linear warmup (the paper: {PAPER_WARMUP_UPDATES} updates)")
    add_flags(p, "lr_schedule", "l2", "vector_l2", "max_grad_norm", "b1", "b2", "e",
              lr_schedule=dict(default=PAPER_LR_SCHEDULE, help="then cosine to 0"),
              l2=dict(help="the original's decoupled L2 on weight matrices"))
    p.add_argument("--valid_fraction", type=float, default=0.01, help="windows held out (the corpus' last)")
    p.add_argument("--max_valid_windows", type=int, default=256, help="at most this many held out")
    p.add_argument("--eval_every", type=int, default=500, help="held-out perplexity every this many updates")
    p.add_argument("--save_every", type=int, default=1000, help="checkpoint every this many updates (and epoch)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--stop_after_updates", type=int, default=None, help="checkpoint and stop after this many")
    p.add_argument("--cluster_timeout", type=float, default=300, help="seconds for every worker to join (TF_CONFIG)")
    p.add_argument("--collective_timeout", type=float, default=300,
                   help="seconds a gradient all-reduce may wait for the other workers before the run stops")
    add_flags(p, "xla", "mixed_precision", "encoder_path", "bpe_path")
    return p


def validate(args):
    check_finite_floats(build_parser(), args)
    for name in ("n_iter", "n_batch", "n_micro", "n_embd", "n_head", "n_layer", "eval_every", "save_every",
                 "max_valid_windows", "stop_after_updates", "lr_warmup_updates", "tokenize_workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise Gpt1Error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.n_batch % args.n_micro:
        raise Gpt1Error(f"--n_micro {args.n_micro} does not divide --n_batch {args.n_batch}"
                        + (": a micro-batch would be smaller than one window" if args.n_micro > args.n_batch else ""))
    if not MIN_N_CTX <= args.n_ctx <= MAX_N_CTX:
        raise Gpt1Error(f"--n_ctx must be in {MIN_N_CTX}..{MAX_N_CTX}, got {args.n_ctx}")
    if not 0 <= args.valid_fraction < 1:
        raise Gpt1Error(f"--valid_fraction must be in [0, 1), got {args.valid_fraction}")
    for name in ("cluster_timeout", "collective_timeout"):
        if getattr(args, name) <= 0:
            raise Gpt1Error(f"--{name} must be positive, got {getattr(args, name)}")
    if os.environ.get("TF_CONFIG"):
        from gpt1_tf.train.cluster import cluster_of
        cluster_of(os.environ["TF_CONFIG"])  # a bad cluster spec is refused before the corpus is read
    args.cache_dir = args.cache_dir or os.path.join(args.save_dir, "token_cache")
    args.out = args.out or os.path.join(args.save_dir, args.desc, "model")
    run_config(args).opt_for(t_total=1)  # each config checks its own fields


def run_config(args):
    """The PretrainConfig of checked flags (`validate` first)."""
    from gpt1_tf.train.pretraining import PretrainConfig
    model = ModelConfig(n_ctx=args.n_ctx, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer, afn=args.afn,
                        embd_pdrop=args.embd_pdrop, attn_pdrop=args.attn_pdrop, resid_pdrop=args.resid_pdrop,
                        clf_pdrop=0.0, compute_dtype=args.mixed_precision or "float32")
    opt = OptConfig(lr=args.lr, lr_schedule=args.lr_schedule, b1=args.b1, b2=args.b2, e=args.e, l2=args.l2,
                    vector_l2=args.vector_l2, max_grad_norm=args.max_grad_norm)
    return from_flags(PretrainConfig, args, model=model, opt=opt, command_line=dict(vars(args)))


@exits
def main(argv=None):
    """`pretrain.py`'s entry point: one-line errors, exit 1, no traceback."""
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import quiet_tensorflow
    with quiet_tensorflow(level=3):  # a cluster's gRPC and collective errors: the one line below says it
        import tensorflow as tf  # devices untouched: a MultiWorkerMirroredStrategy must set them up itself
    try:
        validate(args)
        tf.config.experimental.enable_op_determinism()  # same seed, same run (CPU and GPU)
        from gpt1_tf.train.pretraining import pretrain
        pretrain(run_config(args))
    except tf.errors.OpError as err:  # a collective that lost a worker, a peer that went away
        from gpt1_tf.train.cluster import cluster_failure
        raise Gpt1Error(f"the run stopped: {cluster_failure(err)}") from None
    except KeyboardInterrupt:  # before the run's own Ctrl-C handling is in place (or a second Ctrl-C)
        from gpt1_tf.train.interrupts import EXIT_INTERRUPTED, interrupted_message
        print(interrupted_message(os.path.join(args.save_dir, args.desc, "checkpoints")), file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
