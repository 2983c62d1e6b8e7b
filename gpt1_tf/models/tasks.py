"""Task models: GPT-1 fine-tuned on the paper's task formats as `keras.Model`s that compile, fit, evaluate, predict.

One class per kind of output, named as keras-hub names its task models (`<Model>Classifier`, ...):
- `GPT1Classifier(backbone, num_classes, task_format=...)`: classes of one text ("classification":
  SST-2, CoLA), of a (premise, hypothesis) pair ("entailment": MNLI, SNLI, RTE, ...) or of an
  (a, b) pair read in both orders ("similarity" with classes: MRPC, QQP); `predict` -> [N, num_classes];
- `GPT1Regressor(backbone)`: a real-valued similarity score of an (a, b) pair (STS-B), the
  squared error; `predict` -> [N];
- `GPT1MultipleChoice(backbone)`: (context, [choice_1..choice_K]) (Story Cloze, RACE), a
  softmax over the K choices; `predict` -> [N, K].

Each wraps a `GPT1Backbone`: its body (`backbone.transformer`, the variables themselves, not a
copy) under the network's head for the format (`network.model.TransformerModel(cfg, transformer=...)`,
`self.network`, the original's parameter list), with a `GPT1Preprocessor` attached (`self.preprocessor`).
`fit`, `evaluate` and `predict` take raw examples (a list, or a `tf.data.Dataset`, of texts,
pairs or (context, choices)) and labels, run the preprocessor once on the whole input (its cache
encodes each text once), and hand the arrays to Keras's own loops, callbacks included.

`compile()` with no arguments is the paper's recipe, train.py's defaults (`Recipe`): the original
Adam (`network.opt.OpenAIAdam`), lr 6.25e-5, `warmup_linear` with warmup 0.002, l2 0.01, the
global-norm clip at 1 after the towers' gradients are averaged, lm_coef 0.5 on the auxiliary LM
loss, dropout 0.1 (the backbone's), seed 42. The schedule runs over the run's updates, which only
`fit` knows: t_total = epochs x (len(x) // batch_size), each epoch's full batches (train.py's
`n_batches * n_iter`: the last partial batch of an epoch is left out, as train.py's `iter_data(truncate=True)`).
Each `fit` is one run of the recipe: a new Adam (moments and update count from zero) over that t_total.

Keras's fit calls `train_step`, which is train.py's step itself: `train.trainer.Trainer.train_step`
on the model's network, seeded as train.py seeds it (dropout masks from (seed, update count, tower));
the loss (clf + lm_coef x LM), gradients, clipping after the cross-replica sum and Adam's update
are the Trainer's. Its tower loop runs from Python (its gradients and update are compiled
`tf.function`s of their own), so the step is not wrapped in another tf.function. Under a
`tf.distribute.MirroredStrategy` scope (the model built in it) each replica is a tower, as with
train.py's --n_gpu on as many GPUs. `evaluate` and `predict` run the network's evaluation forward
(no dropout, no LM head) in Keras's compiled loops, on the whole input padded to its longest example.

Keras's callbacks see a Keras model: `model.optimizer` is the Trainer's Adam, so `save_weights`
(ModelCheckpoint(save_weights_only=True), BackupAndRestore) holds the weights and every variable
of the original Adam: its update count (hence the schedule's place, the dropout seeds and the
epoch's batch order) and its moments m and v. BackupAndRestore (save_freq="epoch") therefore
resumes an interrupted fit at its last finished epoch and ends with the uninterrupted run's
weights; with an integer save_freq Keras restarts the saved epoch from its first batch on weights
saved mid-epoch (Keras's behaviour), which is not the uninterrupted run. A whole-model `.keras`
save (ModelCheckpoint without save_weights_only) is not supported: the task models have no
`get_config`; save the backbone (`save_to_preset`) and the weights instead.

LoRA (keras-hub's): after `backbone.enable_lora(rank)` (`network.lora.adapt` on the shared body),
the Trainer's variables are the network's `trained_in_order()`: A and B of each adapted weight,
the special-token rows and the head. `save_lora_weights` writes them as a PEFT adapter folder
(`weights.peft`), `load_lora_weights` reads one back onto the same base and LoRA layout. A Keras
weights file (`save_weights`, the checkpoint callbacks) holds the merged weights, and the base
weights and adapters apart, which a LoRA model loads back as they were (`layers.Conv1D`).
"""
import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from gpt1_tf.errors import ConfigError, DataError, Gpt1Error
from gpt1_tf.files import atomic_folder
from gpt1_tf.models import presets
from gpt1_tf.models.backbone import GPT1Backbone
from gpt1_tf.models.preprocessor import GPT1Preprocessor
from gpt1_tf.network.config import OptConfig, StepConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.train.trainer import APPLIED, Trainer
from gpt1_tf.weights import peft, pretrained

BATCH_SIZE = 32  # fit's default: Keras's, and the paper's global batch (train.py's 4 towers x 8)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How `fit` trains; train.py's flags of the same names, and their defaults (the paper's recipe).

    opt: the original Adam's settings (`OptConfig`; its t_total is set by `fit`); step: how the
    step computes (`StepConfig`: train.py's default path); lm_coef: the auxiliary LM loss's weight;
    seed: the dropout masks' (and the shuffle's); n_towers: train.py's --n_gpu, the towers a
    batch is split into (None: one per replica of the model's strategy; more run in sequence).
    """
    opt: OptConfig = OptConfig()
    step: StepConfig = StepConfig()
    lm_coef: float = 0.5
    seed: int = 42
    n_towers: int | None = None

    def __post_init__(self):
        if not isinstance(self.opt, OptConfig) or not isinstance(self.step, StepConfig):
            raise ConfigError("compile takes an OptConfig (opt) and a StepConfig (step): gpt1_tf.network.config; "
                              f"got {type(self.opt).__name__}, {type(self.step).__name__}")
        if not (math.isfinite(self.lm_coef) and self.lm_coef >= 0):
            raise ConfigError(f"lm_coef must be a finite number >= 0, got {self.lm_coef}")
        if not 0 <= self.seed < 2 ** 32:
            raise ConfigError(f"seed must be in 0..2^32-1, got {self.seed}")
        if self.n_towers is not None and self.n_towers < 1:
            raise ConfigError(f"n_towers must be at least 1, got {self.n_towers}")


def global_batch(strategy, value):
    """A batch Keras's distributed dataset split over the replicas, whole again in replica order (NumPy)."""
    parts = strategy.experimental_local_results(value)
    return np.concatenate([np.asarray(p) for p in parts]) if len(parts) > 1 else np.asarray(parts[0])


class GPT1Task(keras.Model):
    """A backbone, the head of `task_format` and a preprocessor; subclasses say which formats and outputs.

    `num_classes` 0: the head's own outputs (a score, or one per choice). `preprocessor` None: one
    with the packaged tokenizer and the backbone's positions.
    """

    task_formats = ()

    def __init__(self, backbone, preprocessor=None, *, task_format, num_classes=0, **kwargs):
        if task_format not in self.task_formats:
            raise ConfigError(f"{type(self).__name__} reads {' or '.join(self.task_formats)}, not {task_format!r}")
        cfg = dataclasses.replace(backbone.cfg, task_format=task_format, n_classes=num_classes)  # head checked
        super().__init__(**kwargs)
        if backbone.distribute_strategy is not self.distribute_strategy:  # Keras's: the one each was built under
            raise ConfigError("the backbone was built under another distribution strategy than its task model: "
                              "build both (from_preset) inside the same `with strategy.scope():`")
        self.backbone = backbone
        self.preprocessor = preprocessor or GPT1Preprocessor(task_format=task_format,
                                                             max_sequence_length=backbone.cfg.n_ctx)
        check_preprocessor(self.preprocessor, cfg)
        self.network = TransformerModel(cfg, transformer=backbone.transformer, name="network")
        self.accuracy = None if cfg.regression else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.recipe = self.trainer = None
        self.jit_compile = False  # train.py compiles with XLA only on request (StepConfig(xla=True))
        self.built = True

    @property
    def cfg(self):
        """The network's ModelConfig: the backbone's, with the head's task_format and n_classes."""
        return self.network.cfg

    # --- from a preset ------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, preset, **kwargs):
        """The task model on `GPT1Backbone.from_preset(preset)`, with the preset's tokenizer.

        `kwargs`: the task's arguments (num_classes, task_format), the rest the backbone's. A
        `best_params.jl` whose head file (`best_params.head.json`) records this task's head (task
        format and classes) loads its classifier too; any other source's head is left out, and the
        head starts fresh (as train.py's --n_transfer).
        """
        task = {k: kwargs.pop(k) for k in ("num_classes", "task_format") if k in kwargs}
        backbone = GPT1Backbone.from_preset(preset, **kwargs)
        fmt = task.get("task_format", cls.task_formats[0])
        preprocessor = GPT1Preprocessor.from_preset(preset, task_format=fmt, max_sequence_length=backbone.cfg.n_ctx)
        model = cls(backbone, preprocessor=preprocessor, **task)
        model.load_head(preset)
        return model

    def load_head(self, preset):
        """The classifier `clf` of a best_params.jl recorded as this task's head; else nothing. Returns whether loaded."""
        if presets.kind_of(preset) != "params" or pretrained.recorded_head(preset) != pretrained.head_of(self.cfg):
            return False
        w, b = pretrained.read_params_file(preset, mmap=True)[-2:]  # the original's order ends clf/w, clf/b
        for variable, array in ((self.network.clf.w, w), (self.network.clf.b, b)):
            if tuple(array.shape) != tuple(variable.shape):
                raise DataError(preset, f"its classifier has shape {array.shape}, this model's {tuple(variable.shape)}")
            variable.assign(np.asarray(array, np.float32))
        return True

    # --- LoRA adapters alone (PEFT's folder) ---------------------------------------------------
    def _lora_tuning(self):
        """The backbone's LoRA (`TuningConfig`, after `backbone.enable_lora`); ConfigError without one."""
        tuning = self.backbone.transformer.tuning
        if tuning is None or not tuning.lora:
            raise ConfigError("this model has no LoRA adapters: call backbone.enable_lora(rank) first")
        return tuning

    def save_lora_weights(self, folder):
        """The adapters alone as a PEFT adapter folder (`weights.peft`): A and B, the special-token rows, the head.

        `folder` must be new, empty or an earlier adapter folder; written whole or not at all.
        `peft.PeftModel.from_pretrained` reads it onto `OpenAIGPTDoubleHeadsModel` (embeddings resized
        to n_vocab + 3 first); `load_lora_weights` onto this base with the same LoRA.
        """
        tuning = self._lora_tuning()
        with atomic_folder(folder, earlier=peft.FILES, flag="save_lora_weights") as tmp:
            peft.write(tmp, self.network, tuning, base=peft.fingerprint(self.network))

    def load_lora_weights(self, folder):
        """A folder of `save_lora_weights` (or PEFT's) into this model: its LoRA layout and base must be this model's.

        The layout (rank, alpha, targets, adapted layers: `backbone.enable_lora`'s arguments) and the
        base weights it was trained on (a fingerprint) are checked before anything is assigned: one line.
        """
        tuning, adapter = self._lora_tuning(), peft.read_tuning(folder, self.cfg.n_layer)
        if adapter.lora_layout != tuning.lora_layout:
            raise ConfigError(f"{folder}: its adapters are {adapter.describe_lora()}, this model's "
                              f"{tuning.describe_lora()}")
        peft.load(self.network, folder, base=peft.fingerprint(self.network))

    # --- the recipe and the step --------------------------------------------------------------
    def compile(self, opt=None, *, step=None, lm_coef=0.5, seed=42, n_towers=None):
        """The paper's recipe (`Recipe`), train.py's defaults; `fit` builds the step over its run's updates."""
        self.recipe = Recipe(opt or OptConfig(), step or StepConfig(), lm_coef, seed, n_towers)
        super().compile(optimizer=None, loss=None, metrics=None, jit_compile=False)

    def make_trainer(self, t_total):
        """train.py's Trainer on this model's network and strategy, its Adam over t_total updates."""
        r, strategy = self.recipe, self.distribute_strategy
        return Trainer(self.cfg, dataclasses.replace(r.opt, t_total=t_total), r.step, strategy=strategy,
                       lm_coef=r.lm_coef, seed=r.seed, n_towers=r.n_towers, model=self.network)

    def make_train_function(self, force=False):
        """Keras's fit calls this function on its iterator once a step: `train_step` of the next batch, eagerly."""
        if self.train_function is None or force:
            self.train_function = lambda iterator: self.train_step(next(iterator))
        return self.train_function

    def train_step(self, data):
        """train.py's update on one global batch: `Trainer.train_step`, the update count seeding its dropout masks."""
        x, Y = data
        strategy = self.distribute_strategy
        X, M, Y = (global_batch(strategy, v) for v in (x["X"], x["M"], Y))
        n_update = self.trainer.n_updates
        result = self.trainer.train_step(X, M, Y, n_update)
        if result.status != APPLIED:  # train.py's --nan_policy stop: nothing applied
            raise Gpt1Error(f"non-finite loss ({result.loss}) or gradient norm ({result.norm}) at update "
                            f"{n_update + 1}; stopped (lower the learning rate)")
        self._loss_tracker.update_state(result.loss, sample_weight=len(Y))
        return {"loss": self._loss_tracker.result(), "learning_rate": result.lr}

    def test_step(self, data):
        """The mean clf loss (train.py's cost) and, with classes or choices, the accuracy of one batch."""
        x, Y = data
        logits, losses, _ = self.forward(x, Y)
        self._loss_tracker.update_state(tf.reduce_mean(losses), sample_weight=tf.shape(Y)[0])
        if self.accuracy is not None:
            self.accuracy.update_state(Y, logits)
        return self.get_metrics_result()

    def forward(self, x, Y=None):
        """The network's evaluation forward (no dropout, no LM head) on the preprocessor's arrays, as the Trainer's."""
        step = self.recipe.step if self.recipe else StepConfig()
        return self.network(x["X"], x["M"], Y, training=False, compute_lm=False, packed=step.packed,
                            pool_only=step.pool_only_eval)

    def call(self, inputs, training=False):
        """{"X": int32 [B, K, T, 2], "M": float32 [B, K, T]} -> what `predict` gives; no dropout (`fit` trains)."""
        return self.outputs_of(self.forward(inputs)[0])

    def outputs_of(self, logits):
        """Probabilities over the classes or choices (a regressor: its scores)."""
        return tf.nn.softmax(logits)

    # --- raw examples in ---------------------------------------------------------------------
    def arrays(self, x, y):
        """The preprocessor's X, M and Y of examples `x` and labels `y` (labels checked against the classes)."""
        if y is None:
            raise DataError("the labels", "none given: fit and evaluate need one label per example (y)")
        classes = None if self.cfg.task_format == "multiple_choice" else self.cfg.n_classes
        return self.preprocessor(x, y, num_classes=classes)

    def batches(self, X, M, Y, batch_size, shuffle):
        """An epoch's full batches as a Dataset for Keras's fit; the order a function of the seed and the epoch.

        The epoch is the one the update count is in (restored by BackupAndRestore with the optimizer),
        so a resumed run goes on with the batches the uninterrupted run had. shuffle=False: file order.
        """
        steps, seed = len(Y) // batch_size, self.recipe.seed

        def epoch():
            order = np.arange(len(Y))
            if shuffle:
                order = np.random.RandomState([seed, self.trainer.n_updates // steps]).permutation(len(Y))
            for b in range(steps):
                at = order[b * batch_size:(b + 1) * batch_size]
                yield {"X": X[at], "M": M[at]}, Y[at]

        spec = ({"X": tf.TensorSpec((batch_size,) + X.shape[1:], tf.int32),
                 "M": tf.TensorSpec((batch_size,) + M.shape[1:], tf.float32)},
                tf.TensorSpec((batch_size,), tf.as_dtype(Y.dtype)))
        dataset = tf.data.Dataset.from_generator(epoch, output_signature=spec)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_data=None,
            shuffle=True, initial_epoch=0, validation_batch_size=None, validation_freq=1):
        """Fine-tune on examples `x` and labels `y` for `epochs`, as train.py does (one run of the recipe).

        batch_size (default 32) is the global batch (train.py's n_batch x n_gpu), split into the
        recipe's towers; validation_data: (examples, labels). shuffle: each epoch's order drawn from
        (seed, epoch) (`batches`); False: the examples' order. Returns Keras's History.
        """
        self._assert_compile_called("fit")
        X, M, Y = self.arrays(x, y)
        batch_size = batch_size or BATCH_SIZE
        steps = len(Y) // batch_size
        if steps < 1:
            raise Gpt1Error(f"{len(Y)} training examples make no full batch of batch_size {batch_size}")
        self.trainer = self.make_trainer(t_total=epochs * steps)
        if batch_size % self.trainer.n_towers:
            raise ConfigError(f"batch_size {batch_size} does not split into {self.trainer.n_towers} towers")
        self.optimizer = self.trainer.optimizer  # what Keras's callbacks save and restore
        if validation_data is not None:
            Xv, Mv, Yv = self.arrays(*validation_data)
            validation_data = ({"X": Xv, "M": Mv}, Yv)
        # shuffled (or not) by `batches`, as a function of the epoch: Keras's own shuffle left off
        return super().fit(self.batches(X, M, Y, batch_size, shuffle), epochs=epochs, verbose=verbose, shuffle=False,
                           callbacks=callbacks, validation_data=validation_data, initial_epoch=initial_epoch,
                           validation_batch_size=validation_batch_size or batch_size, validation_freq=validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", callbacks=None, return_dict=False, **kwargs):
        """The mean clf loss (and accuracy) of examples `x` with labels `y`; Keras's evaluate on their arrays."""
        if not isinstance(x, dict):  # fit's validation hands its arrays back here
            X, M, y = self.arrays(x, y)
            x = {"X": X, "M": M}
        return super().evaluate(x, y, batch_size=batch_size, verbose=verbose, callbacks=callbacks,
                                return_dict=return_dict, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Probabilities [N, classes] or [N, K] (a regressor: scores [N]) of examples `x`."""
        if not isinstance(x, dict):
            X, M = self.preprocessor(x)
            x = {"X": X, "M": M}
        return super().predict(x, batch_size=batch_size, verbose=verbose, callbacks=callbacks)


def check_preprocessor(preprocessor, cfg):
    """A preprocessor that fits the network: the same task format, vocabulary, and no more positions."""
    if preprocessor.task_format != cfg.task_format:
        raise ConfigError(f"the preprocessor reads {preprocessor.task_format}, the model {cfg.task_format}")
    if preprocessor.tokenizer.vocabulary_size != cfg.n_vocab:
        raise ConfigError(f"the tokenizer has {preprocessor.tokenizer.vocabulary_size} tokens, the backbone "
                          f"{cfg.n_vocab}")
    n = preprocessor.sequence_length or preprocessor.max_sequence_length
    if n > cfg.n_ctx:
        raise ConfigError(f"the preprocessor makes sequences of up to {n} tokens, the backbone has {cfg.n_ctx} "
                          "positions: give it max_sequence_length (or sequence_length) <= that")


class GPT1Classifier(GPT1Task):
    """Classes of a text, a (premise, hypothesis) pair or an (a, b) pair in both orders: probabilities [N, num_classes]."""

    task_formats = ("classification", "entailment", "similarity")

    def __init__(self, backbone, num_classes, preprocessor=None, *, task_format="classification", **kwargs):
        if num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got num_classes {num_classes} "
                              "(a real-valued similarity score: GPT1Regressor)")
        super().__init__(backbone, preprocessor, task_format=task_format, num_classes=num_classes, **kwargs)


class GPT1Regressor(GPT1Task):
    """A real-valued similarity score of an (a, b) pair (STS-B), trained on the squared error: scores [N]."""

    task_formats = ("similarity",)

    def __init__(self, backbone, preprocessor=None, **kwargs):
        kwargs.setdefault("task_format", "similarity")
        super().__init__(backbone, preprocessor, num_classes=0, **kwargs)

    def outputs_of(self, logits):
        return logits[:, 0]


class GPT1MultipleChoice(GPT1Task):
    """(context, [choice_1..choice_K]) -> probabilities over the K choices [N, K] (Story Cloze, RACE)."""

    task_formats = ("multiple_choice",)

    def __init__(self, backbone, preprocessor=None, **kwargs):
        kwargs.setdefault("task_format", "multiple_choice")
        super().__init__(backbone, preprocessor, num_classes=0, **kwargs)
