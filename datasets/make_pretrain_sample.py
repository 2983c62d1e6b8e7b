"""Write the bundled pretraining corpus (`datasets/pretrain_sample/`): made-up stories, plain text.

The stories come from the templates of `make_sample.py` (the Story Cloze sample), with another
seed: four sentences and the ending that fits (a happy one, or a letdown after a twist), one story
per line. Text the project writes itself, so it may be redistributed. A tiny model pretrained on
it (the README's command) then fine-tunes on the Story Cloze sample and generates stories of its kind.

    python datasets/make_pretrain_sample.py [out_dir]
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_sample  # noqa: E402  (the templates and the story maker, beside this file)

SEED = 20180612  # not the Story Cloze sample's: other stories of the same kind
N_FILES, N_PER_FILE = 2, 1500


def story_text(rng):
    """One story: the four sentences and the right ending, as a line of text."""
    kind = "twist" if rng.random() < make_sample.TWIST else "plain"
    row = make_sample.make_story(rng, right_first=True, kind=kind)
    return " ".join(row[1:6])


def main(out_dir):
    rng = random.Random(SEED)
    os.makedirs(out_dir, exist_ok=True)
    for i in range(N_FILES):
        with open(os.path.join(out_dir, f"stories_{i}.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(story_text(rng) + "\n" for _ in range(N_PER_FILE))


if __name__ == "__main__":
    default_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrain_sample")
    main(sys.argv[1] if len(sys.argv) > 1 else default_dir)
