"""The original's top-level `analysis` module; the report lives in `gpt1_tf.analysis`."""

from gpt1_tf.analysis import rocstories  # noqa: F401
