"""Write the bundled Story Cloze sample (`datasets/rocstories_sample/`): made-up stories, not ROCStories.

The real Story Cloze files need registration (https://cs.rochester.edu/nlp/rocstories/), so the
project ships small files with the same names, header and layout, generated from templates:
four short sentences about a named person and a goal, one ending that follows from them and one
that contradicts them. The right ending is in position 1 for exactly half of the stories.

    python datasets/make_sample.py [out_dir]
"""

import csv
import os
import random
import sys
import uuid

from gpt1_tf.datasets import HEADER, TEST_FILE, VAL_FILE  # the reader's names: the sample must pass it

SEED = 20180611  # fixed, so the files are reproducible byte for byte
N_VAL = 120  # enough for a small n_valid plus a train split
N_TEST = 100
NAMES = [
    ("Anna", "she", "her"), ("Ben", "he", "his"), ("Carla", "she", "her"), ("Dev", "he", "his"),
    ("Ellie", "she", "her"), ("Frank", "he", "his"), ("Gina", "she", "her"), ("Hugo", "he", "his"),
    ("Ivy", "she", "her"), ("Jake", "he", "his"), ("Kim", "she", "her"), ("Luis", "he", "his"),
    ("Maya", "she", "her"), ("Nate", "he", "his"), ("Olga", "she", "her"), ("Pete", "he", "his"),
]

# (goal, step 1, step 2, step 3, consistent ending, contradictory ending); {n} name, {p} pronoun,
# {P} capitalised pronoun, {h} possessive.
GOALS = [
    ("{n} wanted to bake a cake for {h} mother.", "{P} bought flour, eggs and sugar.",
     "{P} mixed the batter carefully.", "Then {p} baked it for an hour.",
     "{h_cap} mother loved the cake.", "{n} had never wanted to bake anything."),
    ("{n} wanted to run a marathon.", "{P} trained every morning for months.",
     "{P} bought new running shoes.", "On race day, {p} felt ready.",
     "{n} finished the marathon with a smile.", "{n} hated running and never trained."),
    ("{n} needed a new job.", "{P} updated {h} resume.", "{P} applied to ten companies.",
     "One company called {n} for an interview.", "{n} got the job and was thrilled.",
     "{n} already had the job {p} wanted."),
    ("{n} decided to learn the guitar.", "{P} bought a used guitar online.",
     "{P} practiced chords every night.", "After a month, {p} could play a song.",
     "{n} played the song for {h} friends.", "{n} had never touched a guitar."),
    ("{n} wanted a puppy for {h} birthday.", "{P} asked {h} parents every day.",
     "{P} promised to walk the dog.", "On {h} birthday, there was a box by the door.",
     "Inside the box was a happy puppy.", "{n} was afraid of all dogs and wanted none."),
    ("{n} wanted to grow tomatoes.", "{P} planted seeds in the spring.",
     "{P} watered the garden every day.", "By summer, the plants were tall.",
     "{n} picked ripe tomatoes for dinner.", "{n} never planted any seeds."),
    ("{n} was hungry after school.", "{P} looked in the fridge.", "{P} found bread and cheese.",
     "{P} made a sandwich.", "{n} ate the sandwich and felt better.",
     "{n} was not hungry at all."),
    ("{n} wanted to paint {h} room blue.", "{P} went to the hardware store.",
     "{P} chose a bright shade of blue.", "{P} spent the weekend painting.",
     "{n} loved {h} new blue room.", "{n} painted the room green instead of blue."),
    ("{n} lost {h} keys.", "{P} searched the whole house.", "{P} checked every coat pocket.",
     "Finally, {p} looked under the couch.", "The keys were under the couch.",
     "{n} had never owned any keys."),
    ("{n} wanted to save money for a bike.", "{P} mowed lawns all summer.",
     "{P} put every dollar in a jar.", "By fall, the jar was full.",
     "{n} bought the bike {p} wanted.", "{n} spent every dollar on candy."),
]


def story_id(rng):
    """A uuid-like story id drawn from the seeded generator."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_story(rng, right_first):
    """One CSV row: id, four sentences, two endings, AnswerRightEnding ('1' or '2')."""
    name, pronoun, possessive = rng.choice(NAMES)
    slots = dict(n=name, p=pronoun, P=pronoun.capitalize(), h=possessive, h_cap=possessive.capitalize())
    sentences = [template.format(**slots) for template in rng.choice(GOALS)]
    story, right, wrong = sentences[:4], sentences[4], sentences[5]
    endings = [right, wrong] if right_first else [wrong, right]
    return [story_id(rng), *story, *endings, "1" if right_first else "2"]


def make_rows(rng, n):
    """n stories, the right ending first in exactly n // 2 of them (in a shuffled order)."""
    right_first = [i < n // 2 for i in range(n)]
    rng.shuffle(right_first)
    return [make_story(rng, first) for first in right_first]


def write_csv(path, rows):
    """Write the header and rows as the real files are laid out (comma-separated, quoted as needed)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)


def main(out_dir):
    """Write both sample files to out_dir."""
    rng = random.Random(SEED)
    os.makedirs(out_dir, exist_ok=True)
    write_csv(os.path.join(out_dir, VAL_FILE), make_rows(rng, N_VAL))
    write_csv(os.path.join(out_dir, TEST_FILE), make_rows(rng, N_TEST))


if __name__ == "__main__":
    default_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rocstories_sample")
    main(sys.argv[1] if len(sys.argv) > 1 else default_dir)
