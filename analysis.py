"""The original's top-level `analysis` module; the report lives in `gpt1_tf.train.analysis`."""

from gpt1_tf.train.analysis import rocstories  # noqa: F401
