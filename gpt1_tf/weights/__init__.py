"""GPT-1's weights in and out of every format.

pretrained: the arrays in the original's order (get/set/check), OpenAI's shards and
`best_params.jl`; convert: `Weights`, the format-free form, and its checks against a run's flags;
formats: every format by name (which one a path holds, reading and writing any, `build_model`);
hf: HuggingFace `openai-gpt` folders; saved_model: TensorFlow SavedModels for serving. The order,
shapes and names of the arrays are `gpt1_tf.network.arrays`.
"""
