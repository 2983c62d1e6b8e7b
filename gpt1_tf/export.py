"""`python -m gpt1_tf.export`: the export program of `gpt1_tf.cli.export`, under the name the README gives."""
import sys

from gpt1_tf.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
