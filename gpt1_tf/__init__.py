"""gpt1_tf: OpenAI's GPT-1 fine-tuning code (finetune-transformer-lm) on TensorFlow 2 / Keras 3.

The parts, each a sub-package whose docstring lists its modules, each standing on those below it:
- cli: the programs (train.py, pretrain.py, generate.py, export.py): flags, checks, `main`;
- models: GPT-1 as keras-hub-style objects: `GPT1Backbone` (from_preset, save_to_preset, embed), `GPT1Tokenizer`,
  `GPT1Preprocessor`;
- train: the tower trainer, the fine-tuning and pretraining runs, checkpoints, the log;
- lm: the language model: KV-cache generation and scoring;
- weights: every weight format in and out (the original's shards, best_params.jl, HuggingFace,
  .keras, SavedModel);
- data: readers (files -> examples), the BPE encoder, input transformations (examples -> X, M);
- network: the configs, the token layout, the table of arrays, the layers, the body and heads, Adam;
- and errors, files, metrics, runtime, shared by all.
Importing the package imports no TensorFlow: `gpt1_tf.GPT1Backbone`, `gpt1_tf.GPT1Tokenizer` and
`gpt1_tf.GPT1Preprocessor` import their module on first use; so do the task models `gpt1_tf.GPT1Classifier`,
`gpt1_tf.GPT1Regressor` and `gpt1_tf.GPT1MultipleChoice`.
"""
__version__ = "0.1.0"


TASKS = ("GPT1Classifier", "GPT1Regressor", "GPT1MultipleChoice")  # gpt1_tf.models.tasks


def __getattr__(name):
    """The Keras objects at the top (`gpt1_tf.GPT1Backbone`), imported when first asked for."""
    if name == "GPT1Backbone":
        from gpt1_tf.models.backbone import GPT1Backbone
        return GPT1Backbone
    if name == "GPT1Tokenizer":
        from gpt1_tf.models.tokenizer import GPT1Tokenizer
        return GPT1Tokenizer
    if name == "GPT1Preprocessor":
        from gpt1_tf.models.preprocessor import GPT1Preprocessor
        return GPT1Preprocessor
    if name in TASKS:
        from gpt1_tf.models import tasks
        return getattr(tasks, name)
    raise AttributeError(f"module 'gpt1_tf' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "GPT1Backbone", "GPT1Tokenizer", "GPT1Preprocessor", *TASKS])
