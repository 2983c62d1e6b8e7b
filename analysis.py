"""The original's top-level `analysis` module (the report lives in `gpt1_tf.train.analysis`), and a program:
`python analysis.py LOG` draws a run log's learning curves as a PNG (`gpt1_tf.cli.analysis`, see --help)."""
import sys

from gpt1_tf.train.analysis import rocstories  # noqa: F401

if __name__ == "__main__":
    from gpt1_tf.cli.analysis import main
    sys.exit(main())
