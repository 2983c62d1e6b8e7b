"""The programs: each one's flags, their validation, the configs they make, and its `main`.

train (`train.py`), pretrain (`pretrain.py`), generate (`generate.py`), export (`export.py`,
`python -m gpt1_tf.export`), analysis (`python analysis.py LOG`: the learning curves); common: the
model and optimizer flags they share (defaults from the config dataclasses), the float checks and
the one error exit (`exits`). Nothing below this package
sees an argparse namespace: the programs hand the library configs and keyword arguments.
"""
