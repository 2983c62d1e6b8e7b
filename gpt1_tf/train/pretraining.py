"""The paper's unsupervised stage: GPT-1's language model trained on raw text, on tf.distribute.

`pretrain(cfg)` (a `PretrainConfig`) reads top to bottom: corpus -> windows -> configs -> cluster ->
model and optimizer -> epochs of updates with held-out evaluations and checkpoints -> the
original's shards in --out. Where it runs: `gpt1_tf.train.cluster` (a TF_CONFIG cluster, several
GPUs, or one device); the corpus: `gpt1_tf.data.corpus`; the run's skeleton: `gpt1_tf.train.core`.

The step (`LMTrainer.train_step`): each replica's mean next-token loss over its windows (the
tied head over the token rows, `heads.next_token_losses`) and its gradients; the replicas'
gradients averaged (an all-reduce across workers), then, once, clipped by global norm and applied
by the original Adam, as the fine-tuning Trainer does. Dropout masks are stateless, seeded by
(seed, update, replica). Without dropout the same global batch gives the same update at any number
of workers; with dropout the masks depend on the replica, so the split changes the run.
"""
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf

from gpt1_tf.data import corpus
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import atomic_folder, atomic_write, check_new_output, check_output_folder
from gpt1_tf.network.config import ModelConfig, OptConfig
from gpt1_tf.network.heads import next_token_losses
from gpt1_tf.network.model import with_positions
from gpt1_tf.train import checkpoints, logs
from gpt1_tf.train.core import RunCore, TrainerCore
from gpt1_tf.train.interrupts import StopOnInterrupt
from gpt1_tf.weights import pretrained

@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run, as pretrain.py's flags describe it (built and checked by `gpt1_tf.cli.pretrain`).

    model: the network (`pretrain` sets n_vocab from the encoder); opt: the optimizer, whose warmup
    is `lr_warmup_updates` and t_total the run's updates (`opt_for`). command_line: every flag as
    given, for the log's first record and the checkpoints. The rest are pretrain.py's flags.
    """
    model: ModelConfig
    opt: OptConfig
    command_line: dict
    inputs: tuple
    desc: str
    log_dir: str
    save_dir: str
    cache_dir: str
    out: str
    seed: int
    n_iter: int
    n_batch: int
    lr_warmup_updates: int
    valid_fraction: float
    max_valid_windows: int
    eval_every: int
    save_every: int
    resume: bool
    stop_after_updates: int | None
    cluster_timeout: float
    collective_timeout: float
    encoder_path: str | None
    bpe_path: str | None

    def opt_for(self, t_total):
        """The optimizer of a run of t_total updates (the warmup a fraction of them, as OptConfig takes it)."""
        return dataclasses.replace(self.opt, t_total=t_total, lr_warmup=self.lr_warmup_updates / t_total)


class LMTrainer(TrainerCore):
    """The compiled LM step over the trainer core: the body's parameters (the classifier is not trained), Adam."""

    def __init__(self, model_cfg, opt_cfg, strategy, seed=42):
        super().__init__(model_cfg, opt_cfg, strategy, seed, trained=lambda model: model.transformer.params_in_order())
        self._grads_fn = tf.function(self._grads)
        self._loss_fn = tf.function(self.loss)

    def loss(self, ids, seed=None):
        """Mean next-token cross-entropy of ids [B, T] (nats), dropout seeded by `seed` ([2] or None)."""
        h, we = self.model.transformer.hidden(with_positions(ids, self.cfg), seed=seed)
        return tf.reduce_mean(next_token_losses(h, we, ids, self.cfg.n_vocab))

    def _replica(self, ids, step_seed):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(step_seed, replica) if self.cfg.has_dropout else None
        with tf.GradientTape() as tape:
            loss = self.loss(ids, seed)
        return tape.gradient(loss, self.params), loss

    def _grads(self, dist_ids, step_seed):
        grads, losses = self.strategy.run(self._replica, args=(dist_ids, step_seed))
        mean = tf.distribute.ReduceOp.MEAN
        grads = [self.strategy.reduce(mean, g, axis=None) for g in grads]  # all-reduce across workers
        return grads, self.strategy.reduce(mean, losses, axis=None)

    def train_step(self, dist_ids):
        """One update on a distributed global batch; (loss, gradient norm, learning rate)."""
        step_seed = tf.constant([self.seed, self.n_updates], tf.int64)
        grads, loss = self._grads_fn(dist_ids, step_seed)
        loss, norm = float(loss), float(tf.linalg.global_norm(grads))
        if not (np.isfinite(loss) and np.isfinite(norm)):
            raise Gpt1Error(f"update {self.n_updates + 1}: the loss or gradient is not finite (loss {loss}, "
                            f"norm {norm}); lower --lr, or --resume from the last checkpoint")
        lr = self.scheduled_rate()
        self._apply_fn(grads)
        return loss, norm, lr

    def evaluate(self, windows, batch=8):
        """Mean next-token loss over held-out windows [n, n_ctx] (no dropout), on this process's devices."""
        total = 0.0
        for start in range(0, len(windows), batch):
            ids = tf.constant(windows[start:start + batch])
            total += float(self._loss_fn(ids)) * len(ids)
        return total / len(windows)


# flags a --resume may change besides train.py's (checkpoints.RESUME_FREE): how often, how long to wait
RESUME_FREE = ("eval_every", "cluster_timeout", "collective_timeout", "cache_dir")
# what --out holds after a run: the original's shards and this program's note that it wrote them (the
# marker: a folder holding it and nothing but these files is an earlier output, replaced by the next run)
OUT_MARKER = "pretrained_by_gpt1_tf.json"
OUT_FILES = (OUT_MARKER, pretrained.SHAPES_FILE, *pretrained.shard_names())


def start_cluster(cfg):
    """The strategy; under TF_CONFIG once every worker has joined (Gpt1Error after --cluster_timeout)."""
    from gpt1_tf.runtime import quiet_tensorflow
    from gpt1_tf.train import cluster
    config = os.environ.get("TF_CONFIG")
    if not config:
        with quiet_tensorflow():  # TensorFlow's device start-up lines
            return cluster.cluster_strategy()
    cluster.wait_for_cluster(config, cfg.cluster_timeout)
    with quiet_tensorflow():
        return cluster.cluster_strategy(cfg.collective_timeout)


def load_corpus(cfg, text_encoder):
    """The token array, its (training, held-out) window counts, the updates per epoch, and a line about it."""
    tokens, cache_path, reused = corpus.tokenize_corpus(cfg.inputs, text_encoder, cfg.cache_dir)
    sources = ", ".join(cfg.inputs)
    n_train, n_valid = corpus.split_windows(len(tokens), cfg.model.n_ctx, cfg.valid_fraction, source=sources)
    n_valid = min(n_valid, cfg.max_valid_windows)
    n_batches = n_train // cfg.n_batch
    if n_batches < 1:
        raise Gpt1Error(f"{sources}: {len(tokens)} tokens, {n_train} training windows of n_ctx {cfg.model.n_ctx}: "
                        f"not one batch of --n_batch {cfg.n_batch} (add text, or lower them)")
    line = (f"corpus: {len(tokens)} tokens ({'cached' if reused else 'tokenized into'} {cache_path}): {n_train} "
            f"training / {n_valid} held-out windows of {cfg.model.n_ctx}; {n_batches} updates of {cfg.n_batch} per epoch")
    return tokens, n_train, n_valid, n_batches, line


def pretrain(cfg):
    """The whole run of a PretrainConfig; raises Gpt1Error on bad input before writing anything."""
    from gpt1_tf.data.text_utils import TextEncoder
    text_encoder = TextEncoder(cfg.encoder_path, cfg.bpe_path)
    check_output_folder(cfg.log_dir, "--log_dir")
    check_output_folder(cfg.save_dir, "--save_dir")
    check_output_folder(cfg.cache_dir, "--cache_dir")
    check_new_output(cfg.out, "--out", earlier=OUT_FILES)
    tokens, n_train, n_valid, n_batches, corpus_line = load_corpus(cfg, text_encoder)
    model_cfg = dataclasses.replace(cfg.model, n_vocab=len(text_encoder.encoder))
    opt_cfg = cfg.opt_for(n_batches * cfg.n_iter)
    strategy = start_cluster(cfg)
    if cfg.n_batch % strategy.num_replicas_in_sync:
        raise Gpt1Error(f"--n_batch {cfg.n_batch} does not split into {strategy.num_replicas_in_sync} replicas")
    from gpt1_tf.train.cluster import describe, is_chief
    import keras
    keras.utils.set_random_seed(cfg.seed)  # the initial weights: the same at any number of workers
    trainer = LMTrainer(model_cfg, opt_cfg, strategy, cfg.seed)
    valid = corpus.window_ids(tokens, range(n_train, n_train + n_valid), cfg.model.n_ctx)
    run = PretrainRun(cfg, valid, chief=is_chief(strategy))
    run.say(describe(strategy))
    run.say(corpus_line)
    with run.hold(trainer), StopOnInterrupt() as stop:
        for epoch in range(run.n_epochs, cfg.n_iter):
            order = corpus.epoch_order(n_train, cfg.n_batch, cfg.seed, epoch)
            for position, ids in run.epoch(tokens, order, strategy):
                run.record(*trainer.train_step(ids))
                n = trainer.n_updates
                if n % cfg.eval_every == 0:
                    run.evaluate()
                stop_now = cfg.stop_after_updates is not None and n >= cfg.stop_after_updates
                if stop_now or stop.requested or n % cfg.save_every == 0:
                    run.checkpoint(position + 1)
                if stop_now or stop.requested:
                    return run.stop_early(stop.requested)
            run.end_epoch()
        run.write_shards()
    return trainer


class PretrainRun(RunCore):
    """What a pretraining run writes (the chief only): log, TensorBoard scalars, checkpoints, shards.

    `valid`: the held-out windows [n, n_ctx] that each evaluation scores.
    """

    def __init__(self, cfg, valid, chief):
        flags = {k: v for k, v in checkpoints.run_flags(cfg.command_line).items() if k not in RESUME_FREE}
        super().__init__(run_dir=os.path.join(cfg.save_dir, cfg.desc), log_dir=cfg.log_dir, desc=cfg.desc,
                         command_line=cfg.command_line, flags=flags, resume=cfg.resume, chief=chief,
                         what="pretraining run")
        self.cfg, self.valid, self.losses = cfg, valid, []
        self.evaluated_at = None  # the update of the latest evaluation: one evaluation per update
        self.bar = None

    def hold(self, trainer):
        """Restore (--resume), then open the log and the TensorBoard writer (chief); a context manager."""
        return super().hold(trainer, {"model": trainer.model, "optimizer": trainer.optimizer})

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()  # an error's line then starts where the bar was, not after it
        super().__exit__(*exc)

    def resumed(self, state):
        if self.resume and state is None:
            raise Gpt1Error(f"--resume: no checkpoint in {self.checkpointer.ckpt_dir}")
        if state is not None:
            super().resumed(state)
            self.evaluated_at = logs.last_evaluation_update(state["log_lines"])
            self.say(f"resumed from update {state['n_updates']} (epoch {self.n_epochs + 1}, batch {self.position})")
        return state

    def epoch(self, tokens, order, strategy):
        """(position, distributed batch) of this epoch from where the run stands, with a progress bar."""
        from tqdm import tqdm
        n_ctx, start = self.cfg.model.n_ctx, self.position
        rest = order[start:]

        def dataset(ctx):
            return corpus.batches(tokens, rest, n_ctx, pipeline=ctx.input_pipeline_id,
                                  n_pipelines=ctx.num_input_pipelines,
                                  per_replica=ctx.get_per_replica_batch_size(self.cfg.n_batch))

        batches = strategy.distribute_datasets_from_function(dataset)
        self.bar = tqdm(total=len(order), initial=start, desc=f"epoch {self.n_epochs + 1}/{self.cfg.n_iter}",
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

    def evaluate(self):
        """Held-out loss and perplexity, logged with the mean training loss since the last evaluation.

        Once per update: an evaluation that falls on an epoch's end is not repeated there. A value
        that cannot be measured (no held-out windows, no update since the last evaluation) is null.
        """
        n = self.trainer.n_updates
        if n == self.evaluated_at:
            return
        self.evaluated_at = n
        va = self.trainer.evaluate(self.valid) if len(self.valid) else None
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

    def write_shards(self):
        """The trained body as the original's shards (`params_*.npy`, `params_shapes.json`), whole or not at all."""
        if not self.chief:
            return
        note = dict(program="pretrain.py", desc=self.cfg.desc, n_updates=self.trainer.n_updates, time=time.time())
        with atomic_folder(self.cfg.out, earlier=OUT_FILES, flag="--out") as tmp:
            pretrained.export_shards(self.trainer.model, tmp)
            atomic_write(os.path.join(tmp, OUT_MARKER), lambda f: f.write(json.dumps(note).encode()))
        self.say(f"wrote {self.cfg.out} (the original's shards: train.py --model_dir {self.cfg.out})")


def _num(value, spec):
    return "-" if value is None else format(value, spec)
