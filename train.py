"""Fine-tune GPT-1 on ROCStories: `python train.py --dataset rocstories --n_gpu 4` (see README)."""
import sys

from gpt1_tf.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
