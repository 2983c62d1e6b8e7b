"""The original fine-tuning procedure on TensorFlow 2, for any task (`python train.py`: `gpt1_tf.cli.train`).

`train(cfg)` reads top to bottom as the original: inputs -> configs -> towers -> model and
optimizer -> pretrained weights -> epochs of updates with evaluations -> best params ->
submission -> analysis. The data is `gpt1_tf.data.inputs`, checkpoints `gpt1_tf.train.checkpoints`,
the log `gpt1_tf.train.logs`, the step `gpt1_tf.train.trainer`, the metrics `gpt1_tf.metrics`.
"""
import dataclasses
import os
import random
import sys
import time

import numpy as np

from gpt1_tf.data.inputs import DataConfig
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import atomic_write, check_output_folder
from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig, TuningConfig
from gpt1_tf.train import checkpoints, logs, throughput
from gpt1_tf.train.core import RunCore
from gpt1_tf.train.interrupts import StopOnInterrupt
from gpt1_tf.weights import pretrained

EVAL_UPDATES = (1000, 2000, 4000, 8000, 16000, 32000)  # first-epoch evaluations of the original


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One fine-tuning run, as train.py's flags describe it (built and checked by `gpt1_tf.cli.train`).

    model: the network (its n_vocab, n_ctx and head are the data's: `train` sets them); opt: the
    optimizer (`train` sets t_total); step: the tower step; data: what is read; tuning: which
    parameters train (LoRA, partial fine-tuning; lora_from: adapters to start from). command_line: every
    flag as given, which the log's first record and the checkpoints keep (a --resume must repeat
    them). The rest are train.py's flags of the same names (README: Flags).
    """
    model: ModelConfig
    opt: OptConfig
    step: StepConfig
    data: DataConfig
    tuning: TuningConfig
    command_line: dict
    desc: str
    model_dir: str
    encoder_path: str
    bpe_path: str
    save_dir: str
    log_dir: str
    submission_dir: str
    submit: bool
    analysis: bool
    n_iter: int
    n_batch: int
    n_gpu: int
    seed: int
    n_transfer: int
    lm_coef: float
    resume: bool
    save_every: int
    stop_after_updates: int | None
    nan_policy: str
    deterministic: bool
    lora_from: str | None = None


def train(cfg):
    """The whole run of a RunConfig; raises Gpt1Error on bad input before writing."""
    from gpt1_tf.runtime import prepare_bfloat16
    bf16_note = prepare_bfloat16() if cfg.model.compute_dtype == "bfloat16" else None  # before TensorFlow starts
    data, weights, text_encoder = load_inputs(cfg)
    train_split, n_batch_train = data.train, cfg.n_batch * cfg.n_gpu
    n_batches = len(train_split.Y) // n_batch_train
    if n_batches < 1:
        raise Gpt1Error(f"{len(train_split.Y)} training examples make no full batch of n_batch * n_gpu = {n_batch_train}")
    model_cfg = dataclasses.replace(cfg.model, n_vocab=len(text_encoder.encoder), n_ctx=data.n_ctx,
                                    task_format=data.task_format, n_classes=data.n_classes)
    opt_cfg = dataclasses.replace(cfg.opt, t_total=n_batches * cfg.n_iter)
    from gpt1_tf.train.memory import check_memory
    check_memory(model_cfg, cfg.n_batch, cfg.n_gpu, n_seqs=train_split.X.shape[1],
                 recompute=cfg.step.recompute, n_trained=cfg.tuning.n_trained(model_cfg))
    run = Run(cfg, data)  # output locations checked, nothing written yet
    init = initial_params(cfg, weights, model_cfg)
    trainer, towers_note = build_trainer(cfg, model_cfg, opt_cfg)
    for p, a in zip(trainer.model.params_in_order(), init):
        p.assign(a)
    trainer.model.transformer.special_rows_from_table()  # LoRA's trained special rows: the ones just assigned
    del init, weights  # the pretrained arrays (~0.5 GB each) are in the variables now
    if cfg.lora_from and not cfg.resume:  # resumed: the checkpoint holds them
        from gpt1_tf.weights import peft
        peft.load(trainer.model, cfg.lora_from, base=run.base_fingerprint(trainer.model))
    print(towers_note)
    if not cfg.tuning.full:
        print(tuning_note(cfg.tuning, trainer))
    if bf16_note and "GPU" not in trainer.strategy.extended.worker_devices[0].upper():
        print(bf16_note)
    print(f"{data.task} ({data.task_format}), n_ctx {model_cfg.n_ctx}, {len(train_split.Y)} train / "
          f"{len(data.valid.Y)} valid / {sum(len(t.X) for t in data.tests)} test examples, "
          f"{opt_cfg.t_total} updates of {n_batch_train}")

    with run.hold(trainer), StopOnInterrupt() as stop:
        from sklearn.utils import shuffle
        from tqdm import tqdm
        from gpt1_tf.train.trainer import APPLIED
        from gpt1_tf.data.batching import iter_data
        for _ in range(run.n_epochs, cfg.n_iter):
            rng_state = np.random.get_state()
            trX, trM, trY = shuffle(train_split.X, train_split.M, train_split.Y, random_state=np.random.mtrand._rand)
            # closed on the way out, an error's too: its line then starts where the bar was
            with tqdm(iter_data(trX, trM, trY, n_batch=n_batch_train, truncate=True), total=n_batches,
                      desc=f"epoch {run.n_epochs + 1}/{cfg.n_iter}", ncols=100, leave=False, file=sys.stderr) as bar:
                for position, (xmb, mmb, ymb) in enumerate(bar):
                    if position < run.position:
                        continue
                    started = time.perf_counter()
                    result = trainer.train_step(xmb, mmb, ymb, trainer.n_updates)
                    run.record_step(result, bar, tokens=int(mmb.sum()), seconds=time.perf_counter() - started)
                    n_updates, applied = trainer.n_updates, result.status == APPLIED
                    evaluate = applied and n_updates in EVAL_UPDATES and run.n_epochs == 0
                    stop_now = cfg.stop_after_updates is not None and n_updates >= cfg.stop_after_updates
                    if evaluate:
                        run.evaluate()
                    if evaluate or stop_now or stop.requested or (applied and n_updates % cfg.save_every == 0):
                        run.checkpoint(position + 1, rng_state=checkpoints.rng_to_json(rng_state))
                    if stop_now or stop.requested:
                        bar.close()
                        return run.stop_early(stop.requested)
            run.end_epoch()

    if cfg.submit:
        run.load_best_params()
        paths = run.predict()
        for path in paths:
            print(f"wrote {path}")
        if cfg.analysis:
            from gpt1_tf.train import analysis
            analysis.analyse(cfg.data.data_dir, data, paths, run.log_path)
            draw_curves(run.log_path)
    return trainer


def draw_curves(log_path):
    """--analysis's picture of the log's learning curves (`gpt1_tf.train.curves`), beside the log.

    The run's outputs are all written by then: a picture that cannot be drawn (no evaluation yet,
    matplotlib missing or failing) is one line, never a failed run.
    """
    try:
        from gpt1_tf.train import curves
        print(f"wrote {curves.write_curves(log_path)}")
    except Exception as err:  # noqa: BLE001 -- whatever it is, a picture must not fail a finished run
        print(f"learning curves not drawn: {(str(err).strip() or type(err).__name__).splitlines()[0]}")


def load_inputs(cfg):
    """The run's data (`inputs.RunData`), the pretrained `Weights` (or None) and the text encoder; nothing written.

    `--model_dir` holds the original's shards or a HuggingFace `openai-gpt` folder, whose
    config.json must agree with the run's --n_embd, --n_head, --n_layer and --afn.
    """
    from gpt1_tf.data import inputs
    from gpt1_tf.data.text_utils import TextEncoder
    from gpt1_tf.weights.formats import read_pretrained, said_by
    text_encoder = TextEncoder(cfg.encoder_path, cfg.bpe_path)
    data = inputs.load(cfg.data, text_encoder)
    if cfg.n_transfer < 0 or cfg.resume:
        return data, None, text_encoder
    weights = read_pretrained(cfg.model_dir)
    if weights.n_head is not None:  # a HuggingFace folder: its config.json says what the model is
        from gpt1_tf.weights.convert import check_flags
        check_flags(weights, said_by(cfg.model_dir, "hf"), n_embd=cfg.model.n_embd, n_head=cfg.model.n_head,
                    n_layer=cfg.model.n_layer, afn=cfg.model.afn)
    return data, weights, text_encoder


def initial_params(cfg, weights, model_cfg):
    """Seed the original's RNGs and build the pretrained arrays for the first variables (or []).

    The special rows are drawn as the original drew them, unless the weights bring trained ones
    (a HuggingFace double-heads checkpoint).
    """
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    # the original draws the 3 special rows from the global NumPy RNG whatever n_transfer is
    special_rows = (np.random.randn(model_cfg.n_special, model_cfg.n_embd) * 0.02).astype(np.float32)
    if weights is None:
        return []
    if weights.special_rows is not None:
        special_rows = weights.special_rows
    return pretrained.init_from_pretrained(weights.shards, model_cfg, special_rows, cfg.n_transfer,
                                           source=cfg.model_dir)


def build_trainer(cfg, model_cfg, opt_cfg):
    """Towers, seeds and the Trainer; returns it with the line that says how the towers run."""
    from gpt1_tf.runtime import quiet_tensorflow, tune_malloc
    with quiet_tensorflow():  # logical devices must be configured before TensorFlow initialises them
        from gpt1_tf.train.devices import make_strategy, setup_towers
        devices, towers_note = setup_towers(cfg.n_gpu)
        import keras
        import tensorflow as tf
        strategy = make_strategy(devices)
    from gpt1_tf.train.trainer import Trainer
    if cfg.deterministic or not (tf.config.list_physical_devices("GPU") or cfg.step.exact):
        # same seed -> same run: always on CPU (cheap there), on request on GPUs. Not with --exact on
        # CPU: determinism swaps in other kernels (e.g. for sparse softmax cross-entropy) whose float
        # path is not the original's; --exact's own CPU kernels are deterministic already.
        tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(cfg.seed)
    state = np.random.get_state()
    keras.utils.set_random_seed(cfg.seed)  # initialisers of a fresh model
    np.random.set_state(state)  # ... without touching the NumPy stream the original uses
    if not cfg.step.exact:
        tune_malloc()
    trainer = Trainer(model_cfg, opt_cfg, cfg.step, strategy=strategy, lm_coef=cfg.lm_coef,
                      seed=cfg.seed, n_towers=cfg.n_gpu, tuning=cfg.tuning)
    return trainer, towers_note


def tuning_note(tuning, trainer):
    """The line that says what trains under LoRA or partial fine-tuning, and how much of the model that is."""
    from gpt1_tf.network import lora
    n_trained, n_all = lora.n_values(trainer.params), lora.n_values(trainer.model.params_in_order())
    layers = tuning.trained_layers(trainer.cfg.n_layer)
    where = f"h{layers[0]}..h{layers[-1]}" if len(layers) > 1 else f"h{layers[0]}"
    what = [f"LoRA rank {tuning.lora_rank} (alpha {tuning.alpha:g}) on {', '.join(tuning.lora_targets)} of {where}"
            if tuning.lora else f"layers {where}", *(["the table"] if not tuning.frozen_table else []),
            *(["the special-token rows"] if tuning.special_rows else []), "the head"]
    return f"training {', '.join(what)}: {n_trained:,} of {n_all:,} parameters ({100 * n_trained / n_all:.2f}%)"


class Run(RunCore):
    """The outputs of one run: log, TensorBoard, checkpoints, best params, submission; and the loop's state."""

    def __init__(self, cfg, data):
        run_dir = os.path.join(cfg.save_dir, cfg.desc)
        super().__init__(run_dir=run_dir, log_dir=cfg.log_dir, desc=cfg.desc, command_line=cfg.command_line,
                         flags=checkpoints.run_flags(cfg.command_line), resume=cfg.resume)
        self.cfg, self.data = cfg, data
        self.n_batch_train = cfg.n_batch * cfg.n_gpu
        self.params_path = os.path.join(run_dir, "best_params.jl")
        self.submission_paths = [os.path.join(cfg.submission_dir, t.submission) for t in data.tests]
        for path, flag in ((run_dir, "--save_dir"), (self.tensorboard_dir, "--log_dir")) + (
                ((cfg.submission_dir, "--submission_dir"),) if cfg.submit else ()):
            check_output_folder(path, flag)
        from gpt1_tf.weights import peft
        self.adapter_paths = [os.path.join(run_dir, name) for name in peft.FILES] if cfg.tuning.lora else []
        for path in (self.log_path, self.params_path, *self.submission_paths, *self.adapter_paths):
            if os.path.isdir(path):
                raise Gpt1Error(f"{path}: is a folder; the run writes a file there")
        self.best_score, self.n_skipped = 0.0, 0
        self._base = None
        self.last_scores = {}  # the latest evaluation's validation scores, for the progress bar
        self.meter = None

    def hold(self, trainer):
        """Lock the run folder, then resume from the newest checkpoint (--resume) or start afresh.

        First the throughput meter, with the machine's peak for the MFU (`throughput.strategy_peak`).
        """
        fpt = throughput.flops_per_token(trainer.cfg, lm_head=trainer.lm_coef > 0)
        self.meter = throughput.Meter(fpt, throughput.strategy_peak(trainer.strategy, trainer.cfg.compute_dtype))
        return super().hold(trainer, trainer.checkpoint_parts())

    def resumed(self, state):
        if state is None and self.resume:
            if self.cfg.n_transfer >= 0:
                raise Gpt1Error("--resume found no checkpoint and the pretrained weights were not loaded; "
                                "run again without --resume")
            print("no checkpoint to resume from: starting a new run", file=sys.stderr)
        self.remove_stale_temp_files()
        if state is not None:
            super().resumed(state)
            np.random.set_state(checkpoints.rng_from_json(state["rng_state"]))
            self.best_score, self.n_skipped = state["best_score"], state.get("n_skipped", 0)
            print(f"resumed at update {state['n_updates']} (epoch {state['n_epochs']}, batch {self.position})")
        return state

    def started_fresh(self):
        if self.cfg.submit:
            self.save_params()

    def record_step(self, result, bar, *, tokens, seconds):
        """Log what became of a step: an update (TensorBoard), a skipped one, or stop on a divergence.

        `tokens`, `seconds`: the step's for the meter, applied or skipped (it did the work): the
        ones of the batch's mask M, the positions the model computes, and the step's time.
        """
        import tensorflow as tf
        from tqdm import tqdm
        from gpt1_tf.train.trainer import LOSS_SCALE_OVERFLOW, NONFINITE
        self.meter.update(tokens, seconds)
        n_update = self.trainer.n_updates
        if result.status == LOSS_SCALE_OVERFLOW:  # float16 loss scaling: skipped, scale halved
            self.logger.loss_scale_overflow(n_epochs=self.n_epochs, n_updates=n_update,
                                            loss_scale=self.trainer.loss_scale.value())
        elif result.status == NONFINITE:
            if self.cfg.nan_policy == "stop":
                raise Gpt1Error(f"non-finite loss ({result.loss}) or gradient norm ({result.norm}) at update "
                                f"{n_update + 1}; stopped. Last checkpoint and best params are kept; "
                                "lower --lr or use --nan_policy skip")
            self.n_skipped += 1
            self.logger.skipped_update(n_epochs=self.n_epochs, n_updates=n_update, n_skipped=self.n_skipped)
            tqdm.write(f"warning: non-finite loss or gradient norm at update {n_update + 1}: skipped "
                       f"({self.n_skipped} so far)", file=sys.stderr)
        else:
            bar.set_postfix(dict(loss=f"{result.loss:.3f}", **self.last_scores, **self.meter.postfix()))  # in this order
            with self.writer.as_default(step=n_update):
                tf.summary.scalar("train_clf_loss", result.loss)
                tf.summary.scalar("learning_rate", result.lr)

    def evaluate(self):
        """The original `log()`: costs and metrics of train[:n_valid] and valid; best params on improvement.

        Story Cloze logs the original's record (tr_cost, va_cost, tr_acc, va_acc); another task logs
        tr_/va_ of each of its metrics, and the cost and metrics of its further dev splits; then the
        training steps' throughput since the previous evaluation (`throughput.Meter.interval`).
        """
        from tqdm import tqdm
        d, names = self.data, self.data.metrics
        n = len(d.valid.Y)
        tr_cost, tr_scores = self.score_split(d.train, n, "eval train")
        va_cost, va_scores = self.score_split(d.valid, n, "eval valid")
        record = dict(n_epochs=self.n_epochs, n_updates=self.trainer.n_updates, tr_cost=tr_cost, va_cost=va_cost)
        for name in names:
            record[f"tr_{name}"], record[f"va_{name}"] = tr_scores[name], va_scores[name]
        record.update({f"va_{k}": v for k, v in va_scores.items() if k not in names})  # by group (RACE)
        for split in d.extra_valid:
            cost, scores = self.score_split(split, len(split.Y), f"eval {split.name}")
            record[f"{split.name}_cost"] = cost
            record.update({f"{split.name}_{k}": v for k, v in scores.items()})
        extra = [f"{k} {v:.2f}" for k, v in record.items() if k not in logs.ORIGINAL_KEYS and k[3:] not in names]
        rate, mfu = self.meter.interval()
        record.update(tokens_per_s=rate, mfu=mfu)
        self.logger.evaluation(**record)
        line = "%d %d %.3f %.3f" % (record["n_epochs"], record["n_updates"], tr_cost, va_cost)
        line += "".join(" %.2f %.2f" % (tr_scores[name], va_scores[name]) for name in names)
        tqdm.write(line + ("  (" + ", ".join(extra) + ")" if extra else ""))  # the original's line: no rates
        self.write_scalars(record)
        self.last_scores = {f"va_{name}": f"{va_scores[name]:.2f}" for name in names}
        score = va_scores[names[0]]  # the task's own metric decides
        if self.cfg.submit and score > self.best_score:
            self.best_score = score
            self.save_params()

    def score_split(self, split, n, desc):
        """(mean clf cost, {metric: value}) of the first n rows of a split; by group too where it has groups."""
        from gpt1_tf import metrics
        from gpt1_tf.train.evaluate import iter_apply
        logits, cost = iter_apply(self.trainer, split.X[:n], split.M[:n], split.Y[:n],
                                  n_batch=self.n_batch_train, desc=desc)
        preds, y = metrics.predictions(logits, self.data.regression), split.Y[:n]
        scores = metrics.scores(self.data.metrics, y, preds)
        if split.groups is not None:
            for group in dict.fromkeys(split.groups[:n]):  # in file order: RACE-m, then RACE-h
                at = split.groups[:n] == group
                scores.update({f"{group}_{k}": v for k, v in metrics.scores(self.data.metrics, y[at], preds[at]).items()})
        return cost / len(y), scores

    def write_scalars(self, record):
        import tensorflow as tf
        with self.writer.as_default(step=record["n_updates"]):
            for k, v in record.items():
                if k not in ("n_epochs", "n_updates") and v is not None:
                    tf.summary.scalar(k, v)

    def checkpoint_state(self):
        # rng_state: the NumPy RNG at the start of the epoch a resumed run goes on with (now, at an
        # epoch's end; mid-epoch the loop passes the state it shuffled with, which replays the shuffle)
        return dict(best_score=self.best_score, n_skipped=self.n_skipped,
                    rng_state=checkpoints.rng_to_json(np.random.get_state()))

    def save_params(self):
        """best_params.jl, merged (LoRA's W + alpha/r A B); with LoRA the adapters alone beside it, in PEFT's format."""
        # views, not copies: writing the file adds no memory at the run's peak
        model = self.trainer.model
        pretrained.save_params(self.params_path, pretrained.get_params(model, copy=False), model.cfg)
        if self.adapter_paths:
            from gpt1_tf.weights import peft
            peft.write(self.run_dir, model, self.cfg.tuning, base=self.base_fingerprint(),
                       base_path=self.cfg.model_dir if self.cfg.n_transfer >= 0 else None)

    def base_fingerprint(self, model=None):
        """The fingerprint of the base weights LoRA adapts (`weights.peft`), taken once, before any merge."""
        if self._base is None:
            from gpt1_tf.weights import peft
            self._base = peft.fingerprint(model or self.trainer.model)
        return self._base

    def load_best_params(self):
        pretrained.restore_params(self.trainer.model, self.params_path)

    def predict(self):
        """Write each test split's predictions (`index\tprediction`, labels as the benchmark spells them)."""
        from gpt1_tf import metrics
        from gpt1_tf.train.evaluate import iter_predict
        d = self.data
        for split, path in zip(d.tests, self.submission_paths):
            logits = iter_predict(self.trainer, split.X, split.M, n_batch=self.n_batch_train,
                                  desc=f"predict {split.name}")
            predictions = metrics.predictions(logits, d.regression)
            values = [f"{p:.3f}" for p in predictions] if d.regression else [d.labels[p] for p in predictions]
            text = "index\tprediction\n" + "".join(f"{i}\t{v}\n" for i, v in zip(split.index, values))
            atomic_write(path, lambda f, text=text: f.write(text.encode()))
        return self.submission_paths

    def remove_stale_temp_files(self):
        """`.tmp` files a killed atomic write left next to this run's outputs (never read)."""
        for path in (self.log_path, self.params_path, pretrained.head_path(self.params_path), *self.submission_paths,
                     *self.adapter_paths):
            directory, base = os.path.split(path)
            if os.path.isdir(directory or "."):
                for name in os.listdir(directory or "."):
                    if name.startswith(f".{base}.") and name.endswith(".tmp"):
                        os.unlink(os.path.join(directory, name))
