"""The original's top-level `datasets` module, kept for its layout; the readers live in `gpt1_tf.data.rocstories`.

`rocstories_sample/` holds small made-up files in the Story Cloze format (see `make_sample.py`);
`sst2_sample/`, `snli_sample/`, `stsb_sample/`, `race_sample/` and `generic_sample/` made-up files in
the formats of GLUE, SNLI and RACE and a generic CSV, one per task format (see `make_task_samples.py`).
"""

from gpt1_tf.data.rocstories import rocstories  # noqa: F401
