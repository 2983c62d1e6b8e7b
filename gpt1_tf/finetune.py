"""`python train.py --dataset rocstories ...`: the original fine-tuning procedure on TensorFlow 2.

`train(args)` reads top to bottom as the original: inputs -> configs -> towers -> model and
optimizer -> pretrained weights -> epochs of updates with evaluations -> best params ->
submission -> analysis. The command line is `gpt1_tf.cli`, checkpoints `gpt1_tf.checkpoints`, the
log `gpt1_tf.logs`, the step `gpt1_tf.trainer`.
"""
import os
import random
import signal
import sys
import threading

import numpy as np

from gpt1_tf import checkpoints, cli, logs, pretrained
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import FolderLock, atomic_write, check_output_folder

EVAL_UPDATES = (1000, 2000, 4000, 8000, 16000, 32000)  # first-epoch evaluations of the original
SUBMISSION_FILE = "ROCStories.tsv"


class Interrupted(Exception):
    """Ctrl-C stopped the run between two updates, after a checkpoint; the message says how to go on."""


def train(args):
    """The whole run (args validated by `cli.validate_args`); raises Gpt1Error on bad input before writing."""
    data, shards, text_encoder = load_inputs(args)
    n_batch_train = args.n_batch * args.n_gpu
    n_batches = len(data["trY"]) // n_batch_train
    if n_batches < 1:
        raise Gpt1Error(f"{len(data['trY'])} training stories make no full batch of n_batch * n_gpu = {n_batch_train}")
    model_cfg = cli.model_config(args, n_vocab=len(text_encoder.encoder), n_ctx=data["n_ctx"])
    opt_cfg = cli.opt_config(args, t_total=n_batches * args.n_iter)
    from gpt1_tf.memory import check_memory
    check_memory(model_cfg, args.n_batch, args.n_gpu)
    run = Run(args)  # output locations checked, nothing written yet
    init = initial_params(args, shards, model_cfg)
    trainer, towers_note = build_trainer(args, model_cfg, opt_cfg)
    for p, a in zip(trainer.params, init):
        p.assign(a)
    print(towers_note)
    print(f"n_ctx {model_cfg.n_ctx}, {len(data['trY'])} train / {len(data['vaY'])} valid / {len(data['teX'])} "
          f"test stories, {opt_cfg.t_total} updates of {n_batch_train}")

    with run.hold(trainer, data), StopOnInterrupt() as stop:
        from sklearn.utils import shuffle
        from tqdm import tqdm
        from gpt1_tf.trainer import APPLIED
        from gpt1_tf.transforms import iter_data
        for _ in range(run.n_epochs, args.n_iter):
            rng_state = np.random.get_state()
            trX, trM, trY = shuffle(data["trX"], data["trM"], data["trY"], random_state=np.random.mtrand._rand)
            bar = tqdm(iter_data(trX, trM, trY, n_batch=n_batch_train, truncate=True), total=n_batches,
                       desc=f"epoch {run.n_epochs + 1}/{args.n_iter}", ncols=100, leave=False, file=sys.stderr)
            for position, (xmb, mmb, ymb) in enumerate(bar):
                if position < run.start_position:
                    continue
                result = trainer.train_step(xmb, mmb, ymb, trainer.n_updates)
                run.record_step(result, bar)
                n_updates, applied = trainer.n_updates, result.status == APPLIED
                evaluate = applied and n_updates in EVAL_UPDATES and run.n_epochs == 0
                stop_now = args.stop_after_updates is not None and n_updates >= args.stop_after_updates
                if evaluate:
                    run.evaluate()
                if evaluate or stop_now or stop.requested or (applied and n_updates % args.save_every == 0):
                    run.checkpoint(position + 1, rng_state)
                if stop_now or stop.requested:
                    bar.close()
                    return run.stop_early(stop.requested)
            bar.close()
            run.end_epoch()

    if args.submit:
        run.load_best_params()
        path = run.predict()
        print(f"wrote {path}")
        if args.analysis:
            from gpt1_tf.analysis import rocstories as rocstories_analysis
            rocstories_analysis(args.data_dir, path, run.log_path)
    return trainer


def load_inputs(args):
    """Encoded and transformed data, the pretrained shards (or None) and the text encoder; nothing written."""
    from gpt1_tf.text_utils import TextEncoder
    text_encoder = TextEncoder(args.encoder_path, args.bpe_path)
    data = load_data(args, text_encoder)
    shards = pretrained.load_shards(args.model_dir) if args.n_transfer >= 0 and not args.resume else None
    return data, shards, text_encoder


def load_data(args, text_encoder):
    """Read, encode and transform the Story Cloze files; returns a dict of arrays and n_ctx."""
    from gpt1_tf import datasets, transforms
    splits = datasets.rocstories(args.data_dir, n_valid=args.n_valid)
    (trX1, trX2, trX3, trY), (vaX1, vaX2, vaX3, vaY), (teX1, teX2, teX3) = transforms.encode_dataset(
        splits, encoder=text_encoder)
    n_vocab = len(text_encoder.encoder)
    max_len = transforms.max_len_for(args.n_ctx)
    n_ctx = transforms.compute_n_ctx([(trX1, trX2, trX3), (vaX1, vaX2, vaX3), (teX1, teX2, teX3)], args.n_ctx)

    def transform(X1, X2, X3):
        return transforms.transform_roc(X1, X2, X3, n_ctx=n_ctx, max_len=max_len, n_vocab=n_vocab)

    trX, trM = transform(trX1, trX2, trX3)
    vaX, vaM = transform(vaX1, vaX2, vaX3)
    teX, teM = transform(teX1, teX2, teX3)
    return dict(trX=trX, trM=trM, trY=trY, vaX=vaX, vaM=vaM, vaY=vaY, teX=teX, teM=teM, n_ctx=n_ctx)


def initial_params(args, shards, model_cfg):
    """Seed the original's RNGs and build the pretrained arrays for the first variables (or [])."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    # the original draws the 3 special rows from the global NumPy RNG whatever n_transfer is
    special_rows = (np.random.randn(model_cfg.n_special, args.n_embd) * 0.02).astype(np.float32)
    if shards is None:
        return []
    return pretrained.init_from_pretrained(shards, model_cfg, special_rows, args.n_transfer, source=args.model_dir)


def build_trainer(args, model_cfg, opt_cfg):
    """Towers, seeds and the Trainer; returns it with the line that says how the towers run."""
    from gpt1_tf.runtime import quiet_tensorflow, tune_malloc
    with quiet_tensorflow():  # logical devices must be configured before TensorFlow initialises them
        from gpt1_tf.devices import make_strategy, setup_towers
        devices, towers_note = setup_towers(args.n_gpu)
        import keras
        import tensorflow as tf
        strategy = make_strategy(devices)
    from gpt1_tf.trainer import Trainer
    if args.deterministic or not (tf.config.list_physical_devices("GPU") or args.exact):
        # same seed -> same run: always on CPU (cheap there), on request on GPUs. Not with --exact on
        # CPU: determinism swaps in other kernels (e.g. for sparse softmax cross-entropy) whose float
        # path is not the original's; --exact's own CPU kernels are deterministic already.
        tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(args.seed)
    state = np.random.get_state()
    keras.utils.set_random_seed(args.seed)  # initialisers of a fresh model
    np.random.set_state(state)  # ... without touching the NumPy stream the original uses
    if not args.exact:
        tune_malloc()
    trainer = Trainer(model_cfg, opt_cfg, cli.step_config(args), strategy=strategy, lm_coef=args.lm_coef,
                      seed=args.seed)
    return trainer, towers_note


class StopOnInterrupt:
    """The first Ctrl-C asks the loop to stop after the current update (with a checkpoint); a second stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: stopping after this update with a checkpoint (Ctrl-C again to stop at once)",
              file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Run:
    """The outputs of one run: log, TensorBoard, checkpoints, best params, submission; and the loop's state."""

    def __init__(self, args):
        self.args = args
        self.n_batch_train = args.n_batch * args.n_gpu
        run_dir = os.path.join(args.save_dir, args.desc)
        self.params_path = os.path.join(run_dir, "best_params.jl")
        self.log_path = os.path.join(args.log_dir, f"{args.desc}.jsonl")
        self.submission_path = os.path.join(args.submission_dir, SUBMISSION_FILE)
        self.tensorboard_dir = os.path.join(args.log_dir, args.desc)
        for path, flag in ((run_dir, "--save_dir"), (self.tensorboard_dir, "--log_dir")) + (
                ((args.submission_dir, "--submission_dir"),) if args.submit else ()):
            check_output_folder(path, flag)
        for path in (self.log_path, self.params_path, self.submission_path):
            if os.path.isdir(path):
                raise Gpt1Error(f"{path}: is a folder; the run writes a file there")
        self.lock = FolderLock(run_dir)
        self.n_epochs, self.best_score, self.n_skipped, self.start_position = 0, 0.0, 0, 0

    def hold(self, trainer, data):
        """Lock the run folder, then resume from the newest checkpoint (--resume) or start afresh."""
        self.trainer, self.data = trainer, data
        self.lock.acquire()
        try:
            self._start()
        except BaseException:
            self.lock.release()
            raise
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.writer.flush()
        self.lock.release()

    def _start(self):
        import tensorflow as tf
        args, trainer = self.args, self.trainer
        parts = dict(model=trainer.model, optimizer=trainer.optimizer)
        if trainer.loss_scale is not None:
            parts["loss_scale"] = trainer.loss_scale
        self.checkpointer = checkpoints.Checkpointer(
            os.path.join(args.save_dir, args.desc, "checkpoints"), parts, checkpoints.run_flags(args),
            n_updates_fn=lambda: trainer.n_updates)
        state = self.checkpointer.restore_latest() if args.resume else None
        if args.resume and state is None:
            if args.n_transfer >= 0:
                raise Gpt1Error("--resume found no checkpoint and the pretrained weights were not loaded; "
                                "run again without --resume")
            print("no checkpoint to resume from: starting a new run", file=sys.stderr)
        self.remove_stale_temp_files()
        if state is not None:
            self.logger = logs.ResultLogger(self.log_path, lines=state["log_lines"])
            np.random.set_state(checkpoints.rng_from_json(state["rng_state"]))
            self.n_epochs, self.best_score = state["n_epochs"], state["best_score"]
            self.start_position, self.n_skipped = state["position"], state.get("n_skipped", 0)
            print(f"resumed at update {state['n_updates']} (epoch {state['n_epochs']}, batch {self.start_position})")
        else:
            self.checkpointer.start_fresh()
            self.logger = logs.ResultLogger(self.log_path, **vars(args))
            if args.submit:
                self.save_params()
        self.writer = tf.summary.create_file_writer(self.tensorboard_dir)

    def record_step(self, result, bar):
        """Log what became of a step: an update (TensorBoard), a skipped one, or stop on a divergence."""
        import tensorflow as tf
        from tqdm import tqdm
        from gpt1_tf.trainer import LOSS_SCALE_OVERFLOW, NONFINITE
        n_update = self.trainer.n_updates
        if result.status == LOSS_SCALE_OVERFLOW:  # float16 loss scaling: skipped, scale halved
            self.logger.loss_scale_overflow(n_epochs=self.n_epochs, n_updates=n_update,
                                            loss_scale=self.trainer.loss_scale.value())
        elif result.status == NONFINITE:
            if self.args.nan_policy == "stop":
                raise Gpt1Error(f"non-finite loss ({result.loss}) or gradient norm ({result.norm}) at update "
                                f"{n_update + 1}; stopped. Last checkpoint and best params are kept; "
                                "lower --lr or use --nan_policy skip")
            self.n_skipped += 1
            self.logger.skipped_update(n_epochs=self.n_epochs, n_updates=n_update, n_skipped=self.n_skipped)
            tqdm.write(f"warning: non-finite loss or gradient norm at update {n_update + 1}: skipped "
                       f"({self.n_skipped} so far)", file=sys.stderr)
        else:
            bar.set_postfix(loss=f"{result.loss:.3f}")
            with self.writer.as_default(step=n_update):
                tf.summary.scalar("train_clf_loss", result.loss)
                tf.summary.scalar("lr", result.lr)

    def evaluate(self):
        """The original `log()`: costs and accuracies of train[:n_valid] and valid; best params on improvement."""
        import tensorflow as tf
        from sklearn.metrics import accuracy_score
        from tqdm import tqdm
        from gpt1_tf.evaluate import iter_apply
        d, n = self.data, len(self.data["vaY"])
        tr_logits, tr_cost = iter_apply(self.trainer, d["trX"][:n], d["trM"][:n], d["trY"][:n],
                                        n_batch=self.n_batch_train, desc="eval train")
        va_logits, va_cost = iter_apply(self.trainer, d["vaX"], d["vaM"], d["vaY"],
                                        n_batch=self.n_batch_train, desc="eval valid")
        tr_cost, va_cost = tr_cost / len(d["trY"][:n]), va_cost / n
        tr_acc = accuracy_score(d["trY"][:n], np.argmax(tr_logits, 1)) * 100.
        va_acc = accuracy_score(d["vaY"], np.argmax(va_logits, 1)) * 100.
        n_updates = self.trainer.n_updates
        self.logger.evaluation(n_epochs=self.n_epochs, n_updates=n_updates, tr_cost=tr_cost, va_cost=va_cost,
                               tr_acc=tr_acc, va_acc=va_acc)
        tqdm.write('%d %d %.3f %.3f %.2f %.2f' % (self.n_epochs, n_updates, tr_cost, va_cost, tr_acc, va_acc))
        with self.writer.as_default(step=n_updates):
            for k, v in dict(tr_cost=tr_cost, va_cost=va_cost, tr_acc=tr_acc, va_acc=va_acc).items():
                tf.summary.scalar(k, v)
        if self.args.submit and va_acc > self.best_score:
            self.best_score = va_acc
            self.save_params()

    def checkpoint(self, position, rng_state):
        self.checkpointer.write(dict(
            n_updates=self.trainer.n_updates, n_epochs=self.n_epochs, position=position, best_score=self.best_score,
            n_skipped=self.n_skipped, rng_state=checkpoints.rng_to_json(rng_state), log_lines=self.logger.lines))

    def end_epoch(self):
        self.start_position = 0
        self.n_epochs += 1
        self.evaluate()
        self.checkpoint(0, np.random.get_state())

    def stop_early(self, interrupted):
        n = self.trainer.n_updates
        if interrupted:
            raise Interrupted(f"interrupted: checkpoint written at update {n}; continue with --resume")
        print(f"stopped after update {n} (--stop_after_updates); continue with --resume")
        return self.trainer

    def save_params(self):
        pretrained.save_params(self.params_path, pretrained.get_params(self.trainer.model))

    def load_best_params(self):
        model = self.trainer.model
        pretrained.set_params(model, pretrained.load_params(self.params_path, model.cfg), self.params_path)

    def predict(self):
        from gpt1_tf.evaluate import iter_predict
        logits = iter_predict(self.trainer, self.data["teX"], self.data["teM"], n_batch=self.n_batch_train)
        predictions = np.argmax(logits, 1)
        text = "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(predictions))
        atomic_write(self.submission_path, lambda f: f.write(text.encode()))
        return self.submission_path

    def remove_stale_temp_files(self):
        """`.tmp` files a killed atomic write left next to this run's outputs (never read)."""
        for path in (self.log_path, self.params_path, self.submission_path):
            directory, base = os.path.split(path)
            if os.path.isdir(directory or "."):
                for name in os.listdir(directory or "."):
                    if name.startswith(f".{base}.") and name.endswith(".tmp"):
                        os.unlink(os.path.join(directory, name))


def interrupted_message(args):
    """What to do after a Ctrl-C that stopped the run at once: the truth about what can be resumed."""
    ckpt_dir = os.path.join(args.save_dir, args.desc or args.dataset or "", "checkpoints")
    n = checkpoints.newest_checkpoint_update(ckpt_dir)
    if n is None:
        return "interrupted before the first checkpoint: nothing to resume; run again without --resume"
    return f"interrupted: the newest checkpoint is at update {n}; continue from it with --resume"


def main(argv=None):
    """`train.py`'s entry point: one-line errors and a non-zero exit, no traceback, for bad input."""
    args = cli.build_parser().parse_args(argv)
    try:
        cli.validate_args(args)
        train(args)
    except Gpt1Error as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(interrupted_message(args), file=sys.stderr)
        return 130
    return 0
