"""Benchmark the batched `TextEncoder.encode` against the original one-text-at-a-time loop.

    python benchmarks/bench_encoder.py [--n_texts 4000] [--repeats 3] [--non_ascii 0.05]

Run from the repository root; without gpt1_tf installed, the script imports it from the checkout
it lies in. Prints one JSON line: both times (best of --repeats), the speed-up, and whether the ids are identical.
"""

import argparse
import importlib.util
import json
import os
import random
import sys
import time

import ftfy

if importlib.util.find_spec("gpt1_tf") is None:  # not installed: the checkout this script lies in
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpt1_tf.data.text_utils import TextEncoder, text_standardize  # noqa: E402 (after the path set-up)

# Sentence parts recombined into story-like texts, like the bundled sample (and ROCStories): plain
# ASCII, except a small fraction with typographic quotes and dashes, which go through ftfy.
NAMES = ["Tom", "Jenny", "Kelly", "Bob", "Gina", "Hugo", "Maya", "Nate"]
SENTENCES = [
    "{n} wanted to bake a cake for the party.", "{n} bought flour, eggs and sugar.",
    "{n} decided to run a marathon; training was hard!", "{n} couldn't find the keys anywhere...",
    "After the storm, {n} walked to the beach.", "{n} bought a new car (a red one).",
    "{n} asked, \"Can I borrow your bike?\"", "{n} painted the old fence blue.",
    "{n} was hungry after school.", "It was the best day of {n}'s summer.",
]
TYPOGRAPHIC = [
    "{n} said \u201cthanks\u201d and smiled.", "{n} waited \u2013 and waited.", "{n}\u2019s caf\u00e9 was full.",
]


def make_texts(n_texts, *, non_ascii=0.05, seed=0):
    """n_texts four-sentence texts from a seeded generator; about `non_ascii` of them not ASCII."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n_texts):
        name = rng.choice(NAMES)
        sentences = [rng.choice(SENTENCES) for _ in range(4)]
        if rng.random() < non_ascii:
            sentences[rng.randrange(4)] = rng.choice(TYPOGRAPHIC)
        texts.append(" ".join(sentence.format(n=name) for sentence in sentences))
    return texts


def encode_one_at_a_time(encoder, texts):
    """The original `encode`: ftfy, standardize and the full spaCy call for each text in turn."""
    texts_tokens = []
    for text in texts:
        doc = encoder.nlp(text_standardize(ftfy.fix_text(text)))
        text_tokens = []
        for token in doc:
            text_tokens.extend([encoder.encoder.get(t, 0) for t in encoder.bpe(token.text.lower()).split(" ")])
        texts_tokens.append(text_tokens)
    return texts_tokens


def timed(fn, *args):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_texts", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs of each")
    parser.add_argument("--non_ascii", type=float, default=0.05, help="fraction of texts with non-ASCII")
    args = parser.parse_args()
    texts = make_texts(args.n_texts, non_ascii=args.non_ascii)
    loop_s, batched_s = [], []
    for _ in range(args.repeats):
        # A fresh encoder (BPE cache, spaCy tokenizer cache and strings) for every run of each method,
        # so that neither profits from the other's warm caches.
        loop_ids, seconds = timed(encode_one_at_a_time, TextEncoder(), texts)
        loop_s.append(seconds)
        batched_ids, seconds = timed(TextEncoder().encode, texts, False)
        batched_s.append(seconds)
    loop_s, batched_s = min(loop_s), min(batched_s)
    print(json.dumps({
        "n_texts": len(texts),
        "non_ascii": args.non_ascii,
        "repeats": args.repeats,
        "one_at_a_time_s": round(loop_s, 3),
        "batched_s": round(batched_s, 3),
        "speedup": round(loop_s / batched_s, 2),
        "identical": loop_ids == batched_ids,
    }))


if __name__ == "__main__":
    main()
