"""The network: configs, the token layout, tensor ops, Keras layers, the body and its heads, the original Adam.

config (ModelConfig, OptConfig, StepConfig, Sampling), tokens (where special tokens and positions
sit), arrays (the one table of GPT-1's arrays: order, shapes, HuggingFace names), ops (pure tensor
helpers), packing (dense layers on real tokens only), layers (the original's variable scopes as
Keras layers; attention and the block take a key/value cache), model (the body `Transformer`,
`hidden` and `hidden_with_cache`, and `TransformerModel`), heads (the tied LM head and the
classifier of each task format), opt (the original Adam and its schedules).
"""
