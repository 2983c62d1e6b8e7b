"""Write the bundled Story Cloze sample (`datasets/rocstories_sample/`): made-up stories, not ROCStories.

The real Story Cloze files need registration (https://cs.rochester.edu/nlp/rocstories/), so the
project ships small files with the same names, header and layout, generated from templates:
four short sentences about a named person and a plan, and two plausible endings about that person.
Three kinds of story:

- plain (70%): the right ending has the plan work out, the wrong one lets the person down ("In
  the end, the cake came out flat and burned.", "Dev took the bus to work instead.");
- twist (TWIST, 10%): the fourth sentence makes the plan go wrong ("Then the oven stopped
  working."), so the letdown is the right ending and the happy one the wrong one;
- off topic (OFF_TOPIC, 20%): the wrong ending is a happy ending of another story (the tomatoes
  in a story about a cake).

The sample must be learnable, but not at a glance: the README's first command trains a tiny
model from scratch on 100 of these stories, and its validation accuracy should not be 100% at
once. No word or ending gives the answer away on its own: happy endings are also wrong endings (off
topic) and letdowns also right ones (twist). What a tiny model learns from so few stories is the
style of the endings (letdowns are usually wrong, as negations are in the real Story Cloze Test),
which gets it to about 65-80%; the twist and off-topic stories need the story itself, which such a
model does not learn in a few epochs.

The right ending is in position 1 for exactly half of the stories.

    python datasets/make_sample.py [out_dir]
"""

import csv
import os
import random
import sys
import uuid

from gpt1_tf.data.rocstories import HEADER, TEST_FILE, VAL_FILE  # the reader's names: the sample must pass it

SEED = 20180611  # fixed, so the files are reproducible byte for byte
N_VAL = 120  # enough for a small n_valid plus a train split
N_TEST = 100
TWIST = 0.1  # share of twist stories: the plan goes wrong, the letdown is the right ending
OFF_TOPIC = 0.2  # share of stories whose wrong ending is a good ending of another story
NAMES = [
    ("Anna", "she", "her"), ("Ben", "he", "his"), ("Carla", "she", "her"), ("Dev", "he", "his"),
    ("Ellie", "she", "her"), ("Frank", "he", "his"), ("Gina", "she", "her"), ("Hugo", "he", "his"),
    ("Ivy", "she", "her"), ("Jake", "he", "his"), ("Kim", "she", "her"), ("Luis", "he", "his"),
    ("Maya", "she", "her"), ("Nate", "he", "his"), ("Olga", "she", "her"), ("Pete", "he", "his"),
]

# Each story template: its four sentences (a list of variants each), the sentences that replace the
# fourth one in a twist story, the endings of the plan working out ("good") and those of a letdown
# ("bad"). {n} name, {p} pronoun, {P} capitalised pronoun, {h} possessive, {H} capitalised possessive.
STORIES = [
    dict(story=[["{n} wanted to bake a cake for {h} mother."],
                ["{P} bought flour, eggs and sugar.", "{P} found an old cake recipe."],
                ["{P} mixed the batter carefully."],
                ["Then {p} baked it for an hour."]],
         twist=["Then the oven stopped working.", "{P} forgot the cake in the oven."],
         good=["{H} mother loved the cake.", "{n} put candles on the cake and smiled."],
         bad=["In the end, the cake came out flat and burned.", "{n} bought a cake at the bakery instead."]),
    dict(story=[["{n} wanted to run a marathon."],
                ["{P} trained every morning for months.", "{P} ran a little farther each week."],
                ["{P} bought new running shoes."],
                ["On race day, {p} felt ready."]],
         twist=["A week before the race, {p} hurt {h} knee.", "On race day, {p} woke up with a fever."],
         good=["{n} finished the marathon with a smile.", "{n} crossed the finish line of the race."],
         bad=["{n} watched the race from the road instead.", "In the end, {n} stayed in bed on race day."]),
    dict(story=[["{n} needed a new job."],
                ["{P} updated {h} resume.", "{P} asked friends about open jobs."],
                ["{P} applied to ten companies."],
                ["One company called {n} for an interview."]],
         twist=["{P} arrived an hour late to the interview.", "{P} fell asleep before the interview."],
         good=["{n} got the job and started on Monday.", "The company offered {n} the job."],
         bad=["In the end, the company gave the job to someone else.", "{n} had to look for work again."]),
    dict(story=[["{n} decided to learn the guitar."],
                ["{P} bought a used guitar online.", "{P} borrowed a guitar from a friend."],
                ["{P} practiced chords every night."],
                ["After a month, {p} could play a song."]],
         twist=["After a week, {h} fingers hurt too much.", "Then a string snapped and cut {h} finger."],
         good=["{n} played a song on the guitar for {h} friends.", "{n} played the guitar at a party."],
         bad=["{n} put the guitar away and played video games instead.",
              "In the end, {n} sold the guitar to a neighbor."]),
    dict(story=[["{n} wanted a puppy for {h} birthday."],
                ["{P} asked {h} parents every day.", "{P} read books about dogs."],
                ["{P} promised to walk the dog."],
                ["On {h} birthday, there was a box by the door."]],
         twist=["Then {h} sister turned out to be allergic to dogs.", "{H} landlord said no pets."],
         good=["{n} named the puppy Max.", "The puppy licked {n} on the nose."],
         bad=["{n} got a goldfish instead.", "In the end, {n} visited the neighbor's dog on weekends."]),
    dict(story=[["{n} wanted to grow tomatoes."],
                ["{P} planted seeds in the spring.", "{P} put tomato plants in the yard."],
                ["{P} watered the garden every day."],
                ["By summer, the plants were tall."]],
         twist=["Then rabbits got into the garden.", "A summer storm flattened the plants."],
         good=["{n} picked ripe tomatoes for dinner.", "{n} made a salad with {h} tomatoes."],
         bad=["{n} bought tomatoes at the market instead.", "In the end, only a few leaves were left in the garden."]),
    dict(story=[["{n} was hungry after school."],
                ["{P} looked in the fridge.", "{P} opened the kitchen cupboard."],
                ["{P} found bread and cheese."],
                ["{P} made a sandwich."]],
         twist=["The bread was green with mold.", "The dog jumped up and grabbed the food."],
         good=["{n} ate the sandwich and felt better.", "{n} sat down and ate {h} sandwich."],
         bad=["{n} ordered a pizza instead.", "In the end, {n} ate a bowl of cereal."]),
    dict(story=[["{n} wanted to paint {h} room blue."],
                ["{P} went to the hardware store.", "{P} bought brushes and a roller."],
                ["{P} chose a bright shade of blue."],
                ["{P} spent the weekend painting."]],
         twist=["The blue looked much darker on the walls.", "{P} spilled the paint on the carpet."],
         good=["{n} loved {h} new blue room.", "{n} hung pictures on the blue walls."],
         bad=["{n} painted the room white again.", "In the end, {n} spent the next day cleaning the carpet."]),
    dict(story=[["{n} lost {h} keys."],
                ["{P} searched the whole house.", "{P} looked in every drawer."],
                ["{P} checked every coat pocket."],
                ["Finally, {p} looked under the couch."]],
         twist=["The couch was empty.", "After two hours, {p} was late for work."],
         good=["The keys were under the couch.", "{n} found the keys and drove to work."],
         bad=["{n} took the bus to work instead.", "In the end, {n} called a locksmith."]),
    dict(story=[["{n} wanted to save money for a bike."],
                ["{P} mowed lawns all summer.", "{P} walked dogs for the neighbors."],
                ["{P} put every dollar in a jar."],
                ["By fall, the jar was full."]],
         twist=["Then the price of the bike went up.", "{P} dropped the jar and lost half the money."],
         good=["{n} bought the bike {p} wanted.", "{n} rode {h} new bike to school."],
         bad=["{n} walked to school again that fall.", "In the end, {n} kept saving for another year."]),
    dict(story=[["{n} wanted to go fishing."],
                ["{P} dug up worms in the yard.", "{P} packed a rod and a bucket."],
                ["{P} rowed a small boat onto the lake."],
                ["{P} waited quietly for a long time."]],
         twist=["Then the line got stuck on a rock.", "A thunderstorm rolled over the lake."],
         good=["{n} caught a big fish.", "{n} cooked the fish for dinner."],
         bad=["In the end, {n} went home with an empty bucket.", "{n} had fish sticks for dinner instead."]),
    dict(story=[["{n} had a math test on Friday."],
                ["{P} studied every evening that week.", "{P} did extra problems from the book."],
                ["{P} asked the teacher about fractions."],
                ["On Friday, {p} felt calm."]],
         twist=["On Friday, {p} missed the bus to school.", "The test was about a chapter {p} skipped."],
         good=["{n} got an A on the math test.", "The teacher praised {n} for the test."],
         bad=["{n} had to take the test again next week.", "In the end, {n} got a low grade on the test."]),
    dict(story=[["{n} wanted to build a birdhouse."],
                ["{P} found some wood in the garage.", "{P} drew a plan for a birdhouse."],
                ["{P} cut and nailed the boards."],
                ["Then {p} painted the roof red."]],
         twist=["A squirrel moved in the first day.", "The wind blew it out of the tree."],
         good=["Soon a bird moved into the birdhouse.", "{n} watched birds visit the birdhouse."],
         bad=["In the end, the squirrel kept the birdhouse.", "{n} had to build the birdhouse again."]),
    dict(story=[["{n} wanted to visit {h} grandmother."],
                ["{P} bought a train ticket.", "{P} packed a bag for the weekend."],
                ["{P} brought flowers for {h} grandmother."],
                ["The train arrived in the evening."]],
         twist=["Then the train was cancelled.", "Snow closed the train line."],
         good=["{n} hugged {h} grandmother at the station.", "{H} grandmother made soup for {n}."],
         bad=["{n} called {h} grandmother from home instead.", "In the end, {n} went back home and unpacked."]),
]


def story_id(rng):
    """A uuid-like story id drawn from the seeded generator."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_story(rng, right_first, kind):
    """One CSV row of a `kind` story: id, four sentences, two endings, AnswerRightEnding ('1' or '2')."""
    name, pronoun, possessive = rng.choice(NAMES)
    slots = dict(n=name, p=pronoun, P=pronoun.capitalize(), h=possessive, H=possessive.capitalize())
    which = rng.randrange(len(STORIES))
    template = STORIES[which]
    story = [rng.choice(variants) for variants in template["story"]]
    if kind == "twist":  # the plan goes wrong: the bad ending is the right one
        story[3] = rng.choice(template["twist"])
        right, wrong = rng.choice(template["bad"]), rng.choice(template["good"])
    elif kind == "off_topic":  # a good ending of another story, about the same person
        other = STORIES[rng.choice([i for i in range(len(STORIES)) if i != which])]
        right, wrong = rng.choice(template["good"]), rng.choice(other["good"])
    else:  # plain: the plan works out
        right, wrong = rng.choice(template["good"]), rng.choice(template["bad"])
    story = [s.format(**slots) for s in story]
    right, wrong = right.format(**slots), wrong.format(**slots)
    ordered = [right, wrong] if right_first else [wrong, right]
    return [story_id(rng), *story, *ordered, "1" if right_first else "2"]


def make_rows(rng, n):
    """n stories, the right ending first in exactly n // 2 of them, twist and off-topic ones in
    their shares (each in a shuffled order)."""
    right_first = [i < n // 2 for i in range(n)]
    rng.shuffle(right_first)
    n_twist, n_off = round(n * TWIST), round(n * OFF_TOPIC)
    kinds = ["twist"] * n_twist + ["off_topic"] * n_off + ["plain"] * (n - n_twist - n_off)
    rng.shuffle(kinds)
    return [make_story(rng, first, kind) for first, kind in zip(right_first, kinds)]


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
