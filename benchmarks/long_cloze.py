"""Longer-than-real Story Cloze files, for measuring a whole `train.py --dataset rocstories` run.

The real Story Cloze files are not on these machines. The memory of a full-size run depends on
the number of stories and on their length (n_ctx is the longest story plus ending, plus the three
special tokens), so this writes a validation file and a test file in the real format whose stories
are longer than the real ones (the real mean is 52.3 tokens, the real n_ctx 77): each sentence is
two of the bundled sample's sentences joined, and a story is kept only if its longer ending gives
at most `--n_ctx` positions. The stories' mean is printed; BENCHMARKS.md (runs H and J) used
480 validation and 400 test stories of mean ~69 tokens at n_ctx 77.

    python benchmarks/long_cloze.py /tmp/long_cloze [--n_val 480] [--n_test 400] [--n_ctx 77] [--seed 0]
    /usr/bin/time -f %M python train.py --dataset rocstories --data_dir /tmp/long_cloze --n_transfer -1 --n_iter 1 --submit
"""
import argparse
import csv
import os
import random
import sys

try:
    import gpt1_tf  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gpt1_tf.data import rocstories
from gpt1_tf.data.text_utils import TextEncoder

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "datasets", "rocstories_sample")
N_SPECIALS = 3  # _start_, _delimiter_, _classify_


def sample_sentences():
    """The bundled sample's story sentences and endings, each list in file order."""
    sentences, endings = [], []
    for name in (rocstories.VAL_FILE, rocstories.TEST_FILE):
        with open(os.path.join(SAMPLE, name), encoding="utf-8", newline="") as f:
            for row in list(csv.reader(f))[1:]:
                sentences += row[1:5]
                endings += row[5:7]
    return sentences, endings


def long_stories(n, n_ctx, rng, encoder):
    """n rows [id, 4 sentences, 2 endings, label] whose story + longer ending fit n_ctx - 3 tokens; their mean length."""
    sentences, endings = sample_sentences()
    rows, lengths = [], []
    while len(rows) < n:
        story = [f"{rng.choice(sentences)} {rng.choice(sentences)}" for _ in range(4)]
        ends = [f"{rng.choice(endings)} {rng.choice(endings)}" for _ in range(2)]
        ids = encoder.encode([" ".join(story)] + ends)
        length = len(ids[0]) + max(len(ids[1]), len(ids[2]))
        if length + N_SPECIALS <= n_ctx:
            rows.append([f"long-{len(rows)}", *story, *ends, str(rng.randint(1, 2))])
            lengths.append(length)
    return rows, sum(lengths) / n


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(rocstories.HEADER)
        writer.writerows(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="a new folder for the two files")
    p.add_argument("--n_val", type=int, default=480)
    p.add_argument("--n_test", type=int, default=400)
    p.add_argument("--n_ctx", type=int, default=77, help="the longest story + ending + 3 special tokens")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=False)
    rng, encoder = random.Random(args.seed), TextEncoder()
    for name, n in ((rocstories.VAL_FILE, args.n_val), (rocstories.TEST_FILE, args.n_test)):
        rows, mean = long_stories(n, args.n_ctx, rng, encoder)
        write(os.path.join(args.out, name), rows)
        print(f"{name}: {n} stories, mean {mean:.1f} tokens (story + longer ending)")


if __name__ == "__main__":
    main()
