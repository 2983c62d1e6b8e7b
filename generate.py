"""Sample from GPT-1 or score text: `python generate.py --model_dir model/ --prompt "..."` (see --help, README)."""
import sys

from gpt1_tf.cli.generate import main

if __name__ == "__main__":
    sys.exit(main())
