"""`python pretrain.py TEXT_FILES...`: the paper's unsupervised pretraining on raw text (README: Pretraining).

`pretrain(args)` reads top to bottom: corpus -> windows -> configs -> cluster -> model and optimizer
-> epochs of updates with held-out evaluations and checkpoints -> the original's shards. The
library parts: `gpt1_tf.data.corpus` (text -> cached tokens -> tf.data windows) and
`gpt1_tf.train.pretraining` (strategies, the LM step). The defaults are the paper's recipe.
"""
import argparse
import json
import math
import os
import sys
import time

from gpt1_tf.cli import train as cli
from gpt1_tf.data import corpus
from gpt1_tf.train import checkpoints, logs
from gpt1_tf.weights import pretrained
from gpt1_tf.network.config import ACTIVATIONS, LR_SCHEDULES, MAX_N_CTX, MIN_N_CTX, ModelConfig, OptConfig
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import FolderLock, atomic_folder, atomic_write, check_new_output, check_output_folder
from gpt1_tf.train.interrupts import EXIT_INTERRUPTED, Interrupted, StopOnInterrupt, interrupted_message
from gpt1_tf.train.logs import HeldRun, ResultLogger

# flags a --resume may change besides train.py's (checkpoints.RESUME_FREE): how often, how long to wait
RESUME_FREE = ("eval_every", "cluster_timeout", "collective_timeout", "cache_dir")
# what --out holds after a run: the original's shards and this program's note that it wrote them (the
# marker: a folder holding it and nothing but these files is an earlier output, replaced by the next run)
OUT_MARKER = "pretrained_by_gpt1_tf.json"
OUT_FILES = (OUT_MARKER, pretrained.SHAPES_FILE, *pretrained.shard_names())


def build_parser():
    p = argparse.ArgumentParser(prog="pretrain.py", description="Pretrain GPT-1's language model on raw text "
                                "(the paper's unsupervised stage); writes the original's weight shards.")
    p.add_argument("inputs", nargs="+", help="UTF-8 text files or globs (quote globs), tokenized once and cached")
    p.add_argument("--desc", default="pretrain", help="run name for log/save files")
    p.add_argument("--log_dir", default="log/")
    p.add_argument("--save_dir", default="save/")
    p.add_argument("--cache_dir", default=None, help="token cache (default <save_dir>/token_cache/)")
    p.add_argument("--out", default=None, help="the shards (default <save_dir>/<desc>/model/): a new or empty "
                   "folder, or an earlier --out of pretrain.py, which is replaced")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n_iter", type=int, default=100, help="epochs (the paper: 100)")
    p.add_argument("--n_batch", type=int, default=64, help="windows per update, over all replicas (the paper: 64)")
    p.add_argument("--n_ctx", type=int, default=512, help="tokens per window (the paper: 512)")
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--afn", choices=ACTIVATIONS, default="gelu")
    p.add_argument("--embd_pdrop", type=float, default=0.1)
    p.add_argument("--attn_pdrop", type=float, default=0.1)
    p.add_argument("--resid_pdrop", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=2.5e-4, help="maximum learning rate (the paper: 2.5e-4)")
    p.add_argument("--lr_warmup_updates", type=int, default=2000, help="linear warmup (the paper: 2000 updates)")
    p.add_argument("--lr_schedule", choices=LR_SCHEDULES, default="warmup_cosine", help="then cosine to 0")
    p.add_argument("--l2", type=float, default=0.01, help="the original's decoupled L2 on weight matrices")
    p.add_argument("--vector_l2", action="store_true")
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--b1", type=float, default=0.9)
    p.add_argument("--b2", type=float, default=0.999)
    p.add_argument("--e", type=float, default=1e-8)
    p.add_argument("--valid_fraction", type=float, default=0.01, help="windows held out (the corpus' last)")
    p.add_argument("--max_valid_windows", type=int, default=256, help="at most this many held out")
    p.add_argument("--eval_every", type=int, default=500, help="held-out perplexity every this many updates")
    p.add_argument("--save_every", type=int, default=1000, help="checkpoint every this many updates (and epoch)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--stop_after_updates", type=int, default=None, help="checkpoint and stop after this many")
    p.add_argument("--cluster_timeout", type=float, default=300, help="seconds for every worker to join (TF_CONFIG)")
    p.add_argument("--collective_timeout", type=float, default=300,
                   help="seconds a gradient all-reduce may wait for the other workers before the run stops")
    p.add_argument("--encoder_path", default=None)
    p.add_argument("--bpe_path", default=None)
    return p


def validate(args):
    cli.check_finite_floats(build_parser(), args)
    for name in ("n_iter", "n_batch", "n_embd", "n_head", "n_layer", "eval_every", "save_every", "max_valid_windows",
                 "stop_after_updates", "lr_warmup_updates"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise Gpt1Error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not MIN_N_CTX <= args.n_ctx <= MAX_N_CTX:
        raise Gpt1Error(f"--n_ctx must be in {MIN_N_CTX}..{MAX_N_CTX}, got {args.n_ctx}")
    if not 0 <= args.valid_fraction < 1:
        raise Gpt1Error(f"--valid_fraction must be in [0, 1), got {args.valid_fraction}")
    for name in ("cluster_timeout", "collective_timeout"):
        if getattr(args, name) <= 0:
            raise Gpt1Error(f"--{name} must be positive, got {getattr(args, name)}")
    if os.environ.get("TF_CONFIG"):
        from gpt1_tf.train.pretraining import cluster_of
        cluster_of(os.environ["TF_CONFIG"])  # a bad cluster spec is refused before the corpus is read
    args.cache_dir = args.cache_dir or os.path.join(args.save_dir, "token_cache")
    args.out = args.out or os.path.join(args.save_dir, args.desc, "model")
    model_config(args, n_vocab=ModelConfig.n_vocab)  # each config checks its own fields
    opt_config(args, t_total=1)


def model_config(args, n_vocab):
    return ModelConfig(n_vocab=n_vocab, n_ctx=args.n_ctx, n_embd=args.n_embd, n_head=args.n_head,
                       n_layer=args.n_layer, afn=args.afn, embd_pdrop=args.embd_pdrop, attn_pdrop=args.attn_pdrop,
                       resid_pdrop=args.resid_pdrop, clf_pdrop=0.0)


def opt_config(args, t_total):
    return OptConfig(lr=args.lr, lr_schedule=args.lr_schedule, lr_warmup=args.lr_warmup_updates / t_total,
                     t_total=t_total, b1=args.b1, b2=args.b2, e=args.e, l2=args.l2, vector_l2=args.vector_l2,
                     max_grad_norm=args.max_grad_norm)


def start_cluster(args):
    """The strategy; under TF_CONFIG once every worker has joined (Gpt1Error after --cluster_timeout)."""
    from gpt1_tf.train.pretraining import make_strategy, wait_for_cluster
    from gpt1_tf.runtime import quiet_tensorflow
    config = os.environ.get("TF_CONFIG")
    if not config:
        with quiet_tensorflow():  # TensorFlow's device start-up lines
            return make_strategy()
    wait_for_cluster(config, args.cluster_timeout)
    with quiet_tensorflow():
        return make_strategy(args.collective_timeout)


def load_corpus(args, text_encoder):
    """The token array, its (training, held-out) window counts, the updates per epoch, and a line about it."""
    tokens, cache_path, reused = corpus.tokenize_corpus(args.inputs, text_encoder, args.cache_dir)
    sources = ", ".join(args.inputs)
    n_train, n_valid = corpus.split_windows(len(tokens), args.n_ctx, args.valid_fraction, source=sources)
    n_valid = min(n_valid, args.max_valid_windows)
    n_batches = n_train // args.n_batch
    if n_batches < 1:
        raise Gpt1Error(f"{sources}: {len(tokens)} tokens, {n_train} training windows of n_ctx {args.n_ctx}: "
                        f"not one batch of --n_batch {args.n_batch} (add text, or lower them)")
    line = (f"corpus: {len(tokens)} tokens ({'cached' if reused else 'tokenized into'} {cache_path}): {n_train} "
            f"training / {n_valid} held-out windows of {args.n_ctx}; {n_batches} updates of {args.n_batch} per epoch")
    return tokens, n_train, n_valid, n_batches, line


def pretrain(args):
    """The whole run (args validated); raises Gpt1Error on bad input before writing anything."""
    from gpt1_tf.data.text_utils import TextEncoder
    text_encoder = TextEncoder(args.encoder_path, args.bpe_path)
    check_output_folder(args.log_dir, "--log_dir")
    check_output_folder(args.save_dir, "--save_dir")
    check_output_folder(args.cache_dir, "--cache_dir")
    check_new_output(args.out, "--out", earlier=OUT_FILES)
    tokens, n_train, n_valid, n_batches, corpus_line = load_corpus(args, text_encoder)
    model_cfg = model_config(args, len(text_encoder.encoder))
    opt_cfg = opt_config(args, n_batches * args.n_iter)
    strategy = start_cluster(args)
    if args.n_batch % strategy.num_replicas_in_sync:
        raise Gpt1Error(f"--n_batch {args.n_batch} does not split into {strategy.num_replicas_in_sync} replicas")
    from gpt1_tf.train.pretraining import LMTrainer, describe, is_chief
    import keras
    keras.utils.set_random_seed(args.seed)  # the initial weights: the same at any number of workers
    trainer = LMTrainer(model_cfg, opt_cfg, strategy, args.seed)
    run = PretrainRun(args, trainer, chief=is_chief(strategy))
    run.say(describe(strategy))
    run.say(corpus_line)
    valid = corpus.window_ids(tokens, range(n_train, n_train + n_valid), args.n_ctx)
    with run.hold(), StopOnInterrupt() as stop:
        for epoch in range(run.n_epochs, args.n_iter):
            order = corpus.epoch_order(n_train, args.n_batch, args.seed, epoch)
            for position, ids in run.epoch(tokens, order, strategy):
                run.record(*trainer.train_step(ids))
                n = trainer.n_updates
                if n % args.eval_every == 0:
                    run.evaluate(valid)
                stop_now = args.stop_after_updates is not None and n >= args.stop_after_updates
                if stop_now or stop.requested or n % args.save_every == 0:
                    run.checkpoint(position + 1)
                if stop.requested:
                    raise Interrupted(n)
                if stop_now:
                    run.say(f"stopped after update {n}: continue with --resume")
                    return trainer
            run.end_epoch(valid)
        run.write_shards()
    return trainer


class PretrainRun(HeldRun):
    """What a pretraining run writes (the chief only): log, TensorBoard scalars, checkpoints, shards."""

    def __init__(self, args, trainer, chief):
        self.args, self.trainer, self.chief = args, trainer, chief
        self.n_epochs, self.position, self.losses = 0, 0, []
        self.evaluated_at = None  # the update of the latest evaluation: one evaluation per update
        self.log_path = os.path.join(args.log_dir, f"{args.desc}.jsonl")
        ckpt_dir = os.path.join(args.save_dir, args.desc, "checkpoints")
        parts = {"model": trainer.model, "optimizer": trainer.optimizer}
        flags = {k: v for k, v in checkpoints.run_flags(args).items() if k not in RESUME_FREE}
        self.checkpointer = checkpoints.Checkpointer(ckpt_dir, parts, flags, n_updates_fn=lambda: trainer.n_updates)
        self.logger = self.writer = self.lock = self.bar = None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()  # an error's line then starts where the bar was, not after it
        super().__exit__(*exc)

    def say(self, line):
        if self.chief:
            print(line, flush=True)

    def hold(self):
        """Restore (--resume), then open the log and the TensorBoard writer (chief); a context manager."""
        import contextlib
        state = self._restore()
        if not self.chief:
            return contextlib.nullcontext()
        import tensorflow as tf
        self.lock = FolderLock(os.path.join(self.args.save_dir, self.args.desc), "pretraining run").acquire()
        if state is None:
            self.checkpointer.start_fresh()
        lines = state["log_lines"] if state else None
        self.logger = ResultLogger(self.log_path, lines, **({} if lines else vars(self.args)))
        self.writer = tf.summary.create_file_writer(os.path.join(self.args.log_dir, self.args.desc))
        return self

    def _restore(self):
        if not self.args.resume:
            return None
        state = self.checkpointer.restore_latest()
        if state is None:
            raise Gpt1Error(f"--resume: no checkpoint in {self.checkpointer.ckpt_dir}")
        self.n_epochs, self.position = state["n_epochs"], state["position"]
        self.evaluated_at = logs.last_evaluation_update(state["log_lines"])
        self.say(f"resumed from update {state['n_updates']} (epoch {self.n_epochs + 1}, batch {self.position})")
        return state

    def epoch(self, tokens, order, strategy):
        """(position, distributed batch) of this epoch from where the run stands, with a progress bar."""
        from tqdm import tqdm
        n_ctx, start = self.args.n_ctx, self.position
        rest = order[start:]

        def dataset(ctx):
            return corpus.batches(tokens, rest, n_ctx, pipeline=ctx.input_pipeline_id,
                                  n_pipelines=ctx.num_input_pipelines,
                                  per_replica=ctx.get_per_replica_batch_size(self.args.n_batch))

        batches = strategy.distribute_datasets_from_function(dataset)
        self.bar = tqdm(total=len(order), initial=start, desc=f"epoch {self.n_epochs + 1}/{self.args.n_iter}",
                        ncols=100, leave=False, file=sys.stderr, disable=not self.chief)
        for position, ids in enumerate(batches, start):
            yield position, ids
        self.bar.close()

    def record(self, loss, norm, lr):
        self.losses.append(loss)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}")
        if self.chief:
            import tensorflow as tf
            with self.writer.as_default(step=self.trainer.n_updates):
                tf.summary.scalar("train_loss", loss)
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("grad_norm", norm)

    def evaluate(self, valid):
        """Held-out loss and perplexity, logged with the mean training loss since the last evaluation.

        Once per update: an evaluation that falls on an epoch's end is not repeated there. A value
        that cannot be measured (no held-out windows, no update since the last evaluation) is null.
        """
        n = self.trainer.n_updates
        if n == self.evaluated_at:
            return
        self.evaluated_at = n
        va = self.trainer.evaluate(valid) if len(valid) else None
        tr = sum(self.losses) / len(self.losses) if self.losses else None
        ppl = None if va is None else math.exp(va)
        self.losses = []
        if not self.chief:
            return
        self.logger.evaluation(n_epochs=self.n_epochs, n_updates=n, tr_cost=tr, va_cost=va, va_ppl=ppl)
        import tensorflow as tf
        with self.writer.as_default(step=n):
            for name, value in (("va_cost", va), ("va_ppl", ppl)):
                if value is not None:
                    tf.summary.scalar(name, value)
        self.bar.write(f"{self.n_epochs} {n} train loss {_num(tr, '.3f')}  held-out loss {_num(va, '.3f')}  "
                       f"perplexity {_num(ppl, '.2f')}")

    def checkpoint(self, position):
        if self.chief:
            self.checkpointer.write(dict(n_updates=self.trainer.n_updates, n_epochs=self.n_epochs, position=position,
                                         log_lines=self.logger.lines))

    def end_epoch(self, valid):
        self.position = 0
        self.n_epochs += 1
        self.evaluate(valid)
        self.checkpoint(0)

    def write_shards(self):
        """The trained body as the original's shards (`params_*.npy`, `params_shapes.json`), whole or not at all."""
        if not self.chief:
            return
        note = dict(program="pretrain.py", desc=self.args.desc, n_updates=self.trainer.n_updates, time=time.time())
        with atomic_folder(self.args.out, earlier=OUT_FILES, flag="--out") as tmp:
            pretrained.export_shards(self.trainer.model, tmp)
            atomic_write(os.path.join(tmp, OUT_MARKER), lambda f: f.write(json.dumps(note).encode()))
        self.say(f"wrote {self.args.out} (the original's shards: train.py --model_dir {self.args.out})")


def _num(value, spec):
    return "-" if value is None else format(value, spec)


def cluster_failure(err):
    """One line for a TensorFlow error of a distributed run: which worker stopped, where TensorFlow says it."""
    import re
    text = str(getattr(err, "message", err))
    tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", text.split("unhealthy", 1)[-1])))
    if "unhealthy" in text or "heartbeat" in text:
        return f"a worker of the cluster stopped ({', '.join(tasks) or 'unknown'} stopped sending heartbeats)"
    first = re.sub(r"\{\{[^}]*\}\}", "", text).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''} (a worker of the cluster stopped or is unreachable?)"


def main(argv=None):
    """`pretrain.py`'s entry point: one-line errors, exit 1, no traceback."""
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import quiet_tensorflow
    with quiet_tensorflow(level=3):  # a cluster's gRPC and collective errors: the one line below says it
        import tensorflow as tf  # devices untouched: a MultiWorkerMirroredStrategy must set them up itself
    try:
        validate(args)
        tf.config.experimental.enable_op_determinism()  # same seed, same run (CPU and GPU)
        pretrain(args)
    except Gpt1Error as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except tf.errors.OpError as err:  # a collective that lost a worker, a peer that went away
        print(f"error: the run stopped: {cluster_failure(err)}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(interrupted_message(os.path.join(args.save_dir, args.desc, "checkpoints")), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
