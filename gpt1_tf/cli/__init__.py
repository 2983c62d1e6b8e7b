"""The programs: each one's flags, their validation, and its `main` (one-line errors, exit codes).

train (`train.py`), pretrain (`pretrain.py`), generate (`generate.py`), export (`export.py`,
`python -m gpt1_tf.export`). Nothing below this package sees an argparse namespace.
"""
