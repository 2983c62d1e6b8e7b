"""GPT-1 as Keras objects, named as keras-hub names its own: a backbone, a tokenizer, presets.

backbone (`GPT1Backbone`: the body, the token table and the blocks, as a `keras.Model` taking
keras-hub's inputs `token_ids` and `padding_mask`; `from_preset`, `save_to_preset`), tokenizer
(`GPT1Tokenizer`: the original's ftfy + spaCy + BPE encoder with its two vocabulary files),
preprocessor (`GPT1Preprocessor`: raw examples of a task format -> the trainer's X, M and labels,
by the project's input transformations), embeddings (`embed`: one vector per text, `GPT1Backbone.embed`), presets
(every source the project reads, by one path, and the folder `save_to_preset` writes: a HuggingFace
folder that transformers loads, the tokenizer files and a description of the preset).
causal_lm (`GPT1CausalLM`: backbone + tokenizer + the tied LM head; `generate` on raw text with
keras-hub's samplers, `score`, by `gpt1_tf.lm`'s decoding and scoring).
They wire the network, the weight formats and the encoder together; they own none of them.
`gpt1_tf.GPT1Backbone`, `gpt1_tf.GPT1Tokenizer` and `gpt1_tf.GPT1Preprocessor` reach them from the package's top.
tasks (`GPT1Classifier`, `GPT1Regressor`, `GPT1MultipleChoice`: keras.Models that compile, fit, evaluate
and predict on raw examples, fit running train.py's step) also, as `gpt1_tf.GPT1Classifier` and so on.
"""
