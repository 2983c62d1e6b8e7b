"""gpt1_tf: OpenAI's GPT-1 fine-tuning code (finetune-transformer-lm) on TensorFlow 2 / Keras 3.

The network: config (ModelConfig, OptConfig, StepConfig), tokens (the token layout), ops, layers,
packing, model (the body `Transformer` and `TransformerModel`), heads (LM and multiple choice),
opt (the original Adam), pretrained (weight files), trainer (the tower step).
The data path: text_utils (BPE), datasets (readers: files -> examples), transforms (examples -> X, M).
The run: cli (train.py's command line), finetune (the loop), checkpoints, logs, evaluate, memory,
devices, runtime (process-wide settings), files, analysis.
Importing the package imports no TensorFlow.
"""
__version__ = "0.1.0"
