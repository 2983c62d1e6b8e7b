"""gpt1_tf: OpenAI's GPT-1 fine-tuning code (finetune-transformer-lm) on TensorFlow 2 / Keras 3.

The parts, each a sub-package whose docstring lists its modules, each standing on those below it:
- cli: the programs (train.py, pretrain.py, generate.py, export.py): flags, checks, `main`;
- models: GPT-1 as keras-hub-style objects: `GPT1Backbone` (from_preset, save_to_preset, embed), `GPT1Tokenizer`,
  `GPT1Preprocessor`, `GPT1CausalLM` (generate, score), the task models (compile, fit, predict);
- train: the tower trainer, the fine-tuning and pretraining runs, checkpoints, the log;
- lm: the language model: KV-cache generation and scoring;
- weights: every weight format in and out (the original's shards, best_params.jl, HuggingFace,
  .keras, SavedModel);
- data: readers (files -> examples), the BPE encoder, input transformations (examples -> X, M);
- network: the configs, the token layout, the table of arrays, the layers, the body and heads, Adam;
- and errors, files, metrics, runtime, shared by all.
Importing the package imports no TensorFlow: `gpt1_tf.GPT1Backbone` and the other Keras objects
(`KERAS_OBJECTS`) import their module on first use.
"""
__version__ = "0.1.0"


# the Keras objects at the package's top, each with the module of gpt1_tf.models that holds it
KERAS_OBJECTS = {"GPT1Backbone": "backbone", "GPT1Tokenizer": "tokenizer", "GPT1Preprocessor": "preprocessor",
                 "GPT1CausalLM": "causal_lm", "GPT1Classifier": "tasks", "GPT1Regressor": "tasks",
                 "GPT1MultipleChoice": "tasks"}


def __getattr__(name):
    """The Keras objects at the top (`gpt1_tf.GPT1Backbone`), their module imported when first asked for."""
    if name not in KERAS_OBJECTS:
        raise AttributeError(f"module 'gpt1_tf' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"gpt1_tf.models.{KERAS_OBJECTS[name]}"), name)


def __dir__():
    return sorted([*globals(), *KERAS_OBJECTS])
