"""gpt1_tf: OpenAI's GPT-1 fine-tuning code (finetune-transformer-lm) on TensorFlow 2 / Keras 3.

The parts, each a sub-package whose docstring lists its modules, each standing on those below it:
- cli: the programs (train.py, pretrain.py, generate.py, export.py): flags, checks, `main`;
- train: the tower trainer, the fine-tuning and pretraining runs, checkpoints, the log;
- lm: the language model: KV-cache generation and scoring;
- weights: every weight format in and out (the original's shards, best_params.jl, HuggingFace,
  .keras, SavedModel);
- data: readers (files -> examples), the BPE encoder, input transformations (examples -> X, M);
- network: the configs, the token layout, the table of arrays, the layers, the body and heads, Adam;
- and errors, files, metrics, runtime, shared by all.
Importing the package imports no TensorFlow.
"""
__version__ = "0.1.0"
