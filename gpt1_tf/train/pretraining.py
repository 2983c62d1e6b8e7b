"""The paper's unsupervised stage: GPT-1's language model trained on raw text, on tf.distribute.

`pretrain(cfg)` (a `PretrainConfig`) reads top to bottom: corpus -> windows -> configs -> cluster ->
model and optimizer -> epochs of updates with held-out evaluations and checkpoints -> the
original's shards in --out. Where it runs: `gpt1_tf.train.cluster` (a TF_CONFIG cluster, several
GPUs, or one device); the corpus: `gpt1_tf.data.corpus`; the run's skeleton: `gpt1_tf.train.core`.

The step (`LMTrainer.train_step`): each replica's mean next-token loss over its windows (the
tied head over the token rows, `heads.next_token_losses`) and its gradients; the replicas'
gradients averaged (an all-reduce across workers), then, once, clipped by global norm and applied
by the original Adam, as the fine-tuning Trainer does. Dropout masks are stateless, a function of
(seed, update, the window's index in the global batch) (`ops.WindowSeed`), so the same global batch
gives the same update at any number of workers, replicas or micro-batches, with dropout on.
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
from gpt1_tf.network import ops
from gpt1_tf.network.config import ModelConfig, OptConfig
from gpt1_tf.network.heads import next_token_losses
from gpt1_tf.network.model import with_positions
from gpt1_tf.train import checkpoints, logs, throughput
from gpt1_tf.train.core import RunCore, TrainerCore
from gpt1_tf.train.interrupts import StopOnInterrupt
from gpt1_tf.train.trainer import DynamicLossScale
from gpt1_tf.weights import pretrained

@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run, as pretrain.py's flags describe it (built and checked by `gpt1_tf.cli.pretrain`).

    model: the network (`pretrain` sets n_vocab from the encoder; its compute_dtype is the mixed
    precision); n_micro: micro-batches per replica and update; opt: the optimizer, whose warmup
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
    n_micro: int
    xla: bool
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
    tokenize_workers: int

    def opt_for(self, t_total):
        """The optimizer of a run of t_total updates (the warmup a fraction of them, as OptConfig takes it)."""
        return dataclasses.replace(self.opt, t_total=t_total, lr_warmup=self.lr_warmup_updates / t_total)


class LMTrainer(TrainerCore):
    """The compiled LM step over the trainer core: the body's parameters (the classifier is not trained), Adam.

    Each replica runs its windows as `n_micro` micro-batches in sequence (gradient accumulation:
    one micro-batch's activations at a time), their gradients averaged, then averaged over the
    replicas, then clipped and applied once. Dropout masks are `ops.WindowSeed`s: a function of
    (seed, update, window's place in the global batch), so the run does not depend on the split.
    `model_cfg.compute_dtype` bfloat16 or float16 is mixed precision; float16 adds dynamic loss
    scaling (`self.loss_scale`, an overflow skips the update). `xla`: each micro-batch's loss and
    gradients compiled with XLA.
    """

    def __init__(self, model_cfg, opt_cfg, strategy, seed=42, *, n_micro=1, xla=False):
        super().__init__(model_cfg, opt_cfg, strategy, seed, trained=lambda model: model.transformer.params_in_order())
        self.n_micro = n_micro
        self.loss_scale = DynamicLossScale() if model_cfg.compute_dtype == "float16" else None
        self._micro_fn = tf.function(self._micro_grads, jit_compile=True) if xla else self._micro_grads
        self._grads_fn = tf.function(self._grads)
        self._loss_fn = tf.function(self.loss, jit_compile=xla or None)

    def loss(self, ids, seed=None):
        """Mean next-token cross-entropy of ids [B, T] (nats), dropout seeded by `seed` (a WindowSeed or None)."""
        h, we = self.model.transformer.hidden(with_positions(ids, self.cfg), seed=seed, recompute=True)
        return tf.reduce_mean(next_token_losses(h, we, ids, self.cfg.n_vocab))

    def _micro_grads(self, ids, seed, loss_scale):
        """One micro-batch's mean loss and its gradients (unscaled, float32)."""
        with tf.GradientTape() as tape:
            loss = self.loss(ids, seed)
            scaled = loss if self.loss_scale is None else loss * loss_scale
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(scaled, self.params)]
        return (grads if self.loss_scale is None else [g / loss_scale for g in grads]), loss

    def _replica(self, ids, step_seed, loss_scale):
        """This replica's windows [n, T], as n_micro micro-batches in sequence: mean gradients and loss."""
        n = tf.shape(ids)[0]
        first = tf.distribute.get_replica_context().replica_id_in_sync_group * n  # its place in the global batch

        def micro(m, size):
            seed = ops.WindowSeed(step_seed, first + m * size) if self.cfg.has_dropout else None
            return self._micro_fn(ids[m * size:(m + 1) * size], seed, loss_scale)

        if self.n_micro == 1:
            return micro(0, n)
        size = n // self.n_micro
        total, loss = [tf.zeros_like(p) for p in self.params], tf.constant(0.0)
        for m in tf.range(self.n_micro):  # a graph loop: one micro-batch's activations alive at a time
            # (not the while loop's default of 10 iterations in flight: measured, ~5 micro-batches' memory)
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            grads, micro_loss = micro(m, size)
            total, loss = [a + g for a, g in zip(total, grads)], loss + micro_loss
        return [g / self.n_micro for g in total], loss / self.n_micro

    def _grads(self, dist_ids, step_seed, loss_scale):
        grads, losses = self.strategy.run(self._replica, args=(dist_ids, step_seed, loss_scale))
        mean = tf.distribute.ReduceOp.MEAN
        grads = [self.strategy.reduce(mean, g, axis=None) for g in grads]  # all-reduce across workers
        return grads, self.strategy.reduce(mean, losses, axis=None)

    def train_step(self, dist_ids):
        """One update on a distributed global batch: (loss, gradient norm, learning rate).

        Under float16 loss scaling, gradients that overflowed (finite loss, non-finite norm) are
        not applied: the scale is halved, and the learning rate returned is None (skipped).
        """
        step_seed = tf.constant([self.seed, self.n_updates], tf.int64)
        scale = tf.constant(1.0 if self.loss_scale is None else self.loss_scale.value(), tf.float32)
        grads, loss = self._grads_fn(dist_ids, step_seed, scale)
        loss, norm = float(loss), float(tf.linalg.global_norm(grads))
        if self.loss_scale is not None and self.loss_scale.overflowed(loss, norm):
            return loss, norm, None
        if not (np.isfinite(loss) and np.isfinite(norm)):
            raise Gpt1Error(f"update {self.n_updates + 1}: the loss or gradient is not finite (loss {loss}, "
                            f"norm {norm}); lower --lr, or --resume from the last checkpoint")
        lr = self.scheduled_rate()
        self._apply_fn(grads)
        if self.loss_scale is not None:
            self.loss_scale.finite()
        return loss, norm, lr

    def evaluate(self, windows, batch=8):
        """Mean next-token loss over held-out windows [n, n_ctx] (no dropout), on this process's devices."""
        total = 0.0
        for start in range(0, len(windows), batch):
            ids = tf.constant(windows[start:start + batch])
            total += float(self._loss_fn(ids)) * len(ids)
        return total / len(windows)


# flags a --resume may change besides train.py's (checkpoints.RESUME_FREE): how often, how long to wait
# and how the corpus is tokenized or each replica's windows cut into micro-batches (the same tokens, masks, sums)
RESUME_FREE = ("eval_every", "cluster_timeout", "collective_timeout", "cache_dir", "tokenize_workers", "n_micro")
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
    """The corpus (`corpus.TokenShards`), its (training, held-out) window counts, the updates per epoch, a line.

    Under TF_CONFIG each worker tokenizes its share of the files into the shared --cache_dir and
    waits (up to --cluster_timeout) for the others' (`corpus.tokenize_corpus`).
    """
    from gpt1_tf.train.cluster import task_of
    worker, n_workers = task_of(os.environ["TF_CONFIG"]) if os.environ.get("TF_CONFIG") else (0, 1)
    tokens, cache_dir, reused = corpus.tokenize_corpus(cfg.inputs, text_encoder, cfg.cache_dir,
                                                       n_procs=cfg.tokenize_workers, worker=worker,
                                                       n_workers=n_workers, timeout=cfg.cluster_timeout)
    sources = ", ".join(cfg.inputs)
    n_train, n_valid = corpus.split_windows(len(tokens), cfg.model.n_ctx, cfg.valid_fraction, source=sources)
    n_valid = min(n_valid, cfg.max_valid_windows)
    n_batches = n_train // cfg.n_batch
    if n_batches < 1:
        raise Gpt1Error(f"{sources}: {len(tokens)} tokens, {n_train} training windows of n_ctx {cfg.model.n_ctx}: "
                        f"not one batch of --n_batch {cfg.n_batch} (add text, or lower them)")
    line = (f"corpus: {len(tokens)} tokens ({'cached in' if reused else 'tokenized into'} {cache_dir}): {n_train} "
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
    replicas = strategy.num_replicas_in_sync
    if cfg.n_batch % (replicas * cfg.n_micro):
        raise Gpt1Error(f"--n_batch {cfg.n_batch} does not split into {replicas} replicas x --n_micro {cfg.n_micro} "
                        f"micro-batches of equal size")
    from gpt1_tf.train.memory import check_pretrain_memory
    check_pretrain_memory(model_cfg, cfg.n_batch // replicas, cfg.n_micro)
    from gpt1_tf.train.cluster import describe, is_chief
    import keras
    keras.utils.set_random_seed(cfg.seed)  # the initial weights: the same at any number of workers
    trainer = LMTrainer(model_cfg, opt_cfg, strategy, cfg.seed, n_micro=cfg.n_micro, xla=cfg.xla)
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
        self.bar = self.meter = None
        self.step_started = None  # when the update now running was handed its batch (`epoch`)

    def hold(self, trainer):
        """Restore (--resume), then open the log and the TensorBoard writer (chief); a context manager.

        The chief first looks up the machine's peak for the MFU (`throughput.strategy_peak`).
        """
        peak = throughput.strategy_peak(trainer.strategy, trainer.cfg.compute_dtype) if self.chief else None
        self.meter = throughput.Meter(throughput.flops_per_token(trainer.cfg), peak)
        return super().hold(trainer, trainer.checkpoint_parts())

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
            self.step_started = time.perf_counter()  # the update's time: from here to `record`
            yield position, ids
        self.bar.close()

    def record(self, loss, norm, lr):
        """An update's loss, gradient norm and learning rate; its tokens (n_batch x n_ctx) and time to the meter.

        lr None: a float16 overflow (skipped, the scale halved), logged as such.
        """
        self.meter.update(self.cfg.n_batch * self.trainer.cfg.n_ctx, time.perf_counter() - self.step_started)
        self.bar.update(1)
        if lr is None:
            if self.chief:
                self.logger.loss_scale_overflow(n_epochs=self.n_epochs, n_updates=self.trainer.n_updates,
                                                loss_scale=self.trainer.loss_scale.value())
            return
        self.losses.append(loss)
        self.bar.set_postfix(dict(loss=f"{loss:.3f}", **self.meter.postfix()))  # a dict keeps this order
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
        The throughput is the updates' since the last evaluation (`throughput.Meter.interval`).
        """
        n = self.trainer.n_updates
        if n == self.evaluated_at:
            return
        self.evaluated_at = n
        va = self.trainer.evaluate(self.valid) if len(self.valid) else None
        tr = sum(self.losses) / len(self.losses) if self.losses else None
        ppl = None if va is None else math.exp(va)
        self.losses = []
        rate, mfu = self.meter.interval()
        if not self.chief:
            return
        self.logger.evaluation(n_epochs=self.n_epochs, n_updates=n, tr_cost=tr, va_cost=va, va_ppl=ppl,
                               tokens_per_s=rate, mfu=mfu)
        import tensorflow as tf
        with self.writer.as_default(step=n):
            for name, value in (("va_cost", va), ("va_ppl", ppl), ("tokens_per_s", rate), ("mfu", mfu)):
                if value is not None:
                    tf.summary.scalar(name, value)
        self.bar.write(f"{self.n_epochs} {n} train loss {_num(tr, '.3f')}  held-out loss {_num(va, '.3f')}  "
                       f"perplexity {_num(ppl, '.2f')}  {throughput.rate_text(rate, mfu)}".rstrip())

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
