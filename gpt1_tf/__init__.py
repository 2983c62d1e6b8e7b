"""gpt1_tf: OpenAI's GPT-1 fine-tuning code (finetune-transformer-lm) on TensorFlow 2 / Keras 3.

Modules: config, ops, layers, model, opt, pretrained, trainer, finetune (the train.py CLI),
text_utils, datasets, analysis, bench. Importing the package imports no TensorFlow.
"""
__version__ = "0.1.0"
