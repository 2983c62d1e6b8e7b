"""Pretrain GPT-1 on raw text: `python pretrain.py corpus/*.txt` (see --help and the README)."""
import sys

from gpt1_tf.cli.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
