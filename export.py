"""Convert and export GPT-1 weights: `python export.py SOURCE --to hf|shards|keras|saved_model --out PATH`.

The same as `python -m gpt1_tf.export` (see its --help and the README).
"""
import sys

from gpt1_tf.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
