"""The original's top-level `datasets` module, kept for its layout; the readers live in `gpt1_tf.datasets`.

`rocstories_sample/` holds small made-up files in the Story Cloze format (see `make_sample.py`).
"""

from gpt1_tf.datasets import _rocstories, rocstories  # noqa: F401
