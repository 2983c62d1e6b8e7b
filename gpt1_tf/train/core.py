"""What the fine-tuning run and the pretraining run share: the trainer core and the run skeleton.

`TrainerCore`: the model and the original Adam, built under the strategy's scope; the one update
(`_apply_fn`: clip by global norm, then Adam); the update count. `trainer.Trainer` (the towers of
the original's `mgpu_train`) and `pretraining.LMTrainer` (the LM step) add their steps to it.

`RunCore`: what a run holds while it writes: its folder's lock, the checkpointer (the newest
checkpoint restored on --resume, or a fresh start), the log, the TensorBoard writer; the epoch and
position counters, a checkpoint, the end of an epoch. `finetune.Run` and `pretraining.PretrainRun`
add what they evaluate and what they write. A pretraining worker that is not the chief restores
and counts, and writes nothing.
"""
import os

from gpt1_tf.errors import ConfigError
from gpt1_tf.files import FolderLock
from gpt1_tf.train import checkpoints, logs
from gpt1_tf.train.interrupts import Interrupted


class TrainerCore:
    """A model of `model_cfg` and `OpenAIAdam(opt_cfg)` over the parameters `trained(model)` picks, on `strategy`."""

    def __init__(self, model_cfg, opt_cfg, strategy, seed, *, trained, jit_apply=None, model=None):
        """`model`: a network of `model_cfg` already built under `strategy` (a task model's); None: a new one."""
        import tensorflow as tf
        from gpt1_tf.network.model import TransformerModel
        from gpt1_tf.network.opt import OpenAIAdam
        self.cfg, self.opt_cfg, self.strategy, self.seed = model_cfg, opt_cfg, strategy, seed
        if model is not None and model.cfg != model_cfg:
            raise ConfigError(f"the model's config {model.cfg} is not the trainer's {model_cfg}")
        with strategy.scope():
            self.model = TransformerModel(model_cfg) if model is None else model
            self.params = trained(self.model)
            self.optimizer = OpenAIAdam(opt_cfg)
            self.optimizer.build(self.params)
        self._apply_fn = tf.function(self._apply, jit_compile=jit_apply)
        self.loss_scale = None  # a subclass's `DynamicLossScale` under float16

    def checkpoint_parts(self):
        """What a checkpoint holds of the trainer: the model, the optimizer, and the loss scale if there is one."""
        parts = {"model": self.model, "optimizer": self.optimizer}
        if self.loss_scale is not None:
            parts["loss_scale"] = self.loss_scale
        return parts

    def _apply(self, grads, norm=None):
        """Clip by global norm (`norm` when the caller has it), then the original Adam: one update."""
        self.optimizer.apply(grads, self.params, global_norm=norm)

    def scheduled_rate(self):
        """The coming update's learning rate as scheduled (read before the update counts)."""
        return float(self.optimizer.scheduled_rate())

    @property
    def n_updates(self):
        return int(self.optimizer.iterations.numpy())


class RunCore:
    """The skeleton of a run writing under `run_dir` and `log_dir/desc`; `with run.hold(trainer, parts):`.

    `command_line` (every flag) is the log's first record; `flags` the checkpoints' (what a
    --resume must repeat). A subclass says what a restored state means (`resumed`), what a fresh
    start writes (`started_fresh`), what it evaluates (`evaluate`) and what its checkpoints add
    (`checkpoint_state`).
    """

    def __init__(self, *, run_dir, log_dir, desc, command_line, flags, resume, chief=True, what="run"):
        self.run_dir, self.command_line, self.flags, self.resume, self.chief = (
            run_dir, command_line, flags, resume, chief)
        self.log_path = os.path.join(log_dir, f"{desc}.jsonl")
        self.tensorboard_dir = os.path.join(log_dir, desc)
        self.lock = FolderLock(run_dir, what)
        self.n_epochs, self.position = 0, 0
        self.trainer = self.checkpointer = self.logger = self.writer = None

    def hold(self, trainer, parts):
        """Lock the run folder (the chief), restore the newest checkpoint (--resume) or start afresh; open the log."""
        self.trainer = trainer
        self.checkpointer = checkpoints.Checkpointer(os.path.join(self.run_dir, "checkpoints"), parts, self.flags,
                                                     n_updates_fn=lambda: trainer.n_updates)
        if self.chief:
            self.lock.acquire()
        try:
            state = self.resumed(self.checkpointer.restore_latest() if self.resume else None)
            if self.chief:
                self._open(state)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self, state):
        import tensorflow as tf
        if state is None:
            self.checkpointer.start_fresh()
            self.logger = logs.ResultLogger(self.log_path, **self.command_line)
            self.started_fresh()
        else:
            self.logger = logs.ResultLogger(self.log_path, lines=state["log_lines"])
        self.writer = tf.summary.create_file_writer(self.tensorboard_dir)

    def resumed(self, state):
        """A subclass takes its fields from a restored checkpoint's `state` (None: none was restored); returns it."""
        if state is not None:
            self.n_epochs, self.position = state["n_epochs"], state["position"]
        return state

    def started_fresh(self):
        """What a subclass writes at a fresh start, once the log is open."""

    def evaluate(self):
        raise NotImplementedError

    def checkpoint_state(self):
        """What a subclass's checkpoints hold besides the counters and the log."""
        return {}

    def checkpoint(self, position, **state):
        """A checkpoint at `position` (batches done in this epoch), written by the chief; `state` overrides `checkpoint_state`'s."""
        if self.chief:
            self.checkpointer.write(dict(n_updates=self.trainer.n_updates, n_epochs=self.n_epochs, position=position,
                                         log_lines=self.logger.lines, **{**self.checkpoint_state(), **state}))

    def say(self, line):
        """A line on stdout, from the chief only."""
        if self.chief:
            print(line, flush=True)

    def stop_early(self, interrupted):
        """Ctrl-C: raise Interrupted (the program's line and exit 130); --stop_after_updates: say so. Returns the trainer."""
        n = self.trainer.n_updates
        if interrupted:
            raise Interrupted(n)
        self.say(f"stopped after update {n} (--stop_after_updates); continue with --resume")
        return self.trainer

    def end_epoch(self):
        self.position = 0
        self.n_epochs += 1
        self.evaluate()
        self.checkpoint(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """Flush the TensorBoard writer and release the lock (a no-op for a lock not held)."""
        if self.writer is not None:
            self.writer.flush()
        self.lock.release()
