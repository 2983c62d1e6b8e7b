"""Write the bundled samples of the paper's other task formats: made-up data, laid out as the publishers' files.

The real datasets are large (and GLUE's test labels are private), so the project ships one small
invented sample per input format of the GPT-1 paper, with the publisher's file names, headers and
layout, for a quick from-scratch run and for the readers' tests (`gpt1_tf.data.tasks`):

- `sst2_sample/`    classification, GLUE SST-2: train.tsv, dev.tsv (sentence, label), test.tsv (index, sentence)
- `snli_sample/`    entailment, Stanford's SNLI 1.0: snli_1.0_{train,dev,test}.jsonl, about 2% of the
                    rows with gold_label "-" (no majority among the annotators), which readers skip
- `stsb_sample/`    similarity, GLUE STS-B: the ten columns, a score from 0 to 5 (test.tsv: no score)
- `race_sample/`    multiple choice, CMU's RACE: RACE/{train,dev,test}/{middle,high}/<n>.txt, one
                    JSON object (article, questions, options, answers) per file
- `generic_sample/` a user's own CSV for the generic reader: text,label (topics sports, food, weather)

Every text is a template filled with words drawn by a seeded generator. The signal is lexical, so
that a tiny transformer trained from scratch can learn it: cue words (sentiment, topic), the overlap
of the two sentences (SNLI), the synonyms that a second caption of the same action uses (STS-B),
values that only articles use or only distractors (RACE, the other way round in its NOT questions).
It is weak on purpose, so that no model gets everything right: cue words come with filler and, in some
texts, with the other class's cues ("dull , but ... brilliant"); STS-B's scores also follow the topic
and the object, which need the two sentences compared; some RACE distractors occur in the article too;
and about 12% of the labels disagree with the text (a noisy annotator; RACE's answers are exact,
STS-B's scores have some noise), which caps dev accuracy near 88%; a bag of words gets 73-82%
(tests/test_samples.py). Labels are balanced within each split; test files carry labels where the
publisher's do (SNLI, RACE), not in GLUE's.

    python datasets/make_task_samples.py [out_dir]

writes the five folders under out_dir (default: this script's folder), byte for byte the same each time.
"""

import csv
import json
import os
import random
import sys
import types

SEED = 20180611  # fixed, so the files are reproducible byte for byte
NOISE = 0.12  # share of labels that disagree with the text they come with
SIZES = types.MappingProxyType({"train": 400, "dev": 100, "test": 100})  # examples per split (RACE: see below)


def balanced(rng, classes, n):
    """n labels drawn in shuffled rounds of `classes`, so that every class has n / len(classes) of them, +-1."""
    labels = []
    while len(labels) < n:
        round_ = list(classes)
        rng.shuffle(round_)
        labels.extend(round_)
    return labels[:n]


def noisy(rng, label, classes):
    """`label`, or (NOISE of the time) another of the classes: a text's class -> its annotator's label."""
    if rng.random() < NOISE:
        return rng.choice([c for c in classes if c != label])
    return label


def a(noun):
    """The noun phrase with its indefinite article: 'a man', 'an old woman'."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def write_lines(path, lines):
    """Write lines ending in '\\n' (UTF-8), creating the folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.writelines(line + "\n" for line in lines)


def write_tsv(path, header, rows):
    """A GLUE file: a header row, tab-separated fields, no quoting."""
    write_lines(path, ["\t".join(header)] + ["\t".join(map(str, row)) for row in rows])


# --- SST-2: movie-review sentences, lowercased and tokenized as in the GLUE file -----------------

SST_SUBJECTS = ("the film", "this movie", "the plot", "the acting", "the script", "the ending", "the cast",
                "the story", "the music", "the dialogue", "the camera work", "the lead performance",
                "the director 's new picture", "its second half", "the humor", "the final scene")
SST_CUES = (  # label 0: negative, label 1: positive
    ("dull", "boring", "clumsy", "flat", "tedious", "messy", "predictable", "weak", "silly", "bland",
     "awkward", "lifeless", "forgettable", "shallow"),
    ("charming", "funny", "moving", "clever", "beautiful", "gripping", "warm", "brilliant", "fresh",
     "touching", "smart", "delightful", "sharp", "honest"),
)
SST_FILLER = ("long", "familiar", "quiet", "loud", "old-fashioned", "strange", "busy", "small", "dark")
SST_ADVERBS = ("", "", "", "very", "quite", "rather", "often", "mostly", "surprisingly", "a little")
SST_TAILS = ("", "", "", "from start to finish", "in the second half", "for most of its running time",
             "despite a slow start", "even on a second viewing", "for a summer picture", "by any measure",
             "at times", "for a first film")


def sst_clause(rng, polarity, plain=False):
    """'<subject> is [adverb] [filler and] <cue>' for the polarity (0 or 1); `plain`: no adverb, no filler."""
    if plain:
        return f"{rng.choice(SST_SUBJECTS)} is {rng.choice(SST_CUES[polarity])}"
    filler = f"{rng.choice(SST_FILLER)} and " if rng.random() < 0.3 else ""
    return f"{rng.choice(SST_SUBJECTS)} is {rng.choice(SST_ADVERBS)} {filler}{rng.choice(SST_CUES[polarity])}"


def sst_sentence(rng, polarity):
    """A review sentence: one clause, a contrast ('<other> , but <this>') or a negated other cue."""
    shape = rng.random()
    if shape < 0.15:
        text = f"{sst_clause(rng, 1 - polarity, plain=True)} , but {sst_clause(rng, polarity, plain=True)}"
    elif shape < 0.22:
        text = f"{rng.choice(SST_SUBJECTS)} is not {rng.choice(SST_CUES[1 - polarity])} {rng.choice(SST_TAILS)}"
    else:
        text = f"{sst_clause(rng, polarity)} {rng.choice(SST_TAILS)}"
    return " ".join(f"{text} .".split()) + " "  # GLUE's SST-2 rows end in a space


def make_sst2(out_dir):
    """train.tsv, dev.tsv (sentence, label 0/1) and test.tsv (index, sentence)."""
    rng = random.Random(SEED)
    folder = os.path.join(out_dir, "sst2_sample")
    for split in ("train", "dev"):
        labels = balanced(rng, (0, 1), SIZES[split])
        rows = [(sst_sentence(rng, noisy(rng, y, (0, 1))), y) for y in labels]
        write_tsv(os.path.join(folder, f"{split}.tsv"), ("sentence", "label"), rows)
    texts = [sst_sentence(rng, y) for y in balanced(rng, (0, 1), SIZES["test"])]
    write_tsv(os.path.join(folder, "test.tsv"), ("index", "sentence"), list(enumerate(texts)))


# --- SNLI: a caption (premise) and three hypotheses written for entailment, neutral, contradiction ---

NLI = ("entailment", "neutral", "contradiction")
PEOPLE = (("man", "his", "woman"), ("woman", "her", "man"), ("boy", "his", "girl"), ("girl", "her", "boy"),
          ("young man", "his", "young woman"), ("old woman", "her", "old man"),
          ("little boy", "his", "little girl"), ("teenage girl", "her", "teenage boy"))
ATTRIBUTES = ("in a red shirt", "in a blue jacket", "with a straw hat", "wearing glasses", "with long hair",
              "in a green dress", "with a backpack", "in a black coat")
ACTIVITIES = (  # (what the caption says, a more general wording that it entails, where: outside/inside/either)
    ("playing a guitar", "playing an instrument", "either"), ("riding a bike", "riding", "outside"),
    ("reading a newspaper", "reading", "either"), ("cooking dinner", "making food", "inside"),
    ("painting a fence", "painting", "outside"), ("walking a dog", "walking with an animal", "outside"),
    ("throwing a ball", "playing with a ball", "outside"), ("selling fruit", "selling food", "either"),
    ("fixing a chair", "working", "either"), ("carrying a box", "holding something", "either"),
    ("sleeping on a bench", "resting", "outside"), ("drinking coffee", "having a drink", "either"),
    ("climbing a rock", "climbing", "outside"), ("eating a sandwich", "eating", "either"),
    ("washing dishes", "cleaning", "inside"), ("taking a photo", "using a camera", "either"),
)
PLACES = types.MappingProxyType({
    "outside": ("on a busy street", "in a park", "at the beach", "by a river", "outside a cafe", "outside a school"),
    "inside": ("in a small kitchen", "in a classroom", "in an office", "inside a store", "inside a museum")})
MOODS = ("tall", "tired", "happy", "famous", "sad", "young")
DETAILS = ("after work", "for the first time", "to earn money", "before lunch", "on a holiday", "with a friend",
           "for {his} family")
PREPOSITIONS = frozenset(("in", "on", "at", "by", "with", "for", "to", "after", "before", "inside", "outside"))


def snli_premise(rng):
    """(scene, caption): 'A tired man in a red shirt is playing a guitar in a park after work.'"""
    person, activity = rng.choice(PEOPLE), rng.choice(ACTIVITIES)
    where = activity[2] if activity[2] != "either" else rng.choice(("outside", "inside"))
    mood = rng.choice(MOODS) if rng.random() < 0.3 else ""
    detail = rng.choice(DETAILS).format(his=person[1]) if rng.random() < 0.3 else ""
    attribute = rng.choice(ATTRIBUTES) if rng.random() < 0.5 else ""
    scene = {"noun": person[0], "his": person[1], "other": person[2], "verb": activity[0], "general": activity[1],
             "where": where, "mood": mood, "detail": detail}
    caption = " ".join(f"{a((mood + ' ' + person[0]).strip())} {attribute} is {activity[0]} "
                       f"{rng.choice(PLACES[where])} {detail}".split())
    return scene, caption[0].upper() + caption[1:] + "."


def snli_entailment(rng, s):
    """A hypothesis the caption entails: a part of it, a more general wording, or a denied other activity."""
    noun, verb = s["noun"], s["verb"]
    other = rng.choice([x[0] for x in ACTIVITIES if x[0] != verb])
    forms = [f"{a(noun)} is {verb}", f"{a(noun)} is {s['general']}", f"a person is {verb}",
             f"someone is {s['general']}", f"{a(noun)} is {s['where']}", f"{a(noun)} is {verb} {s['where']}",
             f"{a(noun)} is not {other}"]
    forms += [f"{a(s['mood'] + ' ' + noun)} is {verb}"] * 2 if s["mood"] else []
    forms += [f"{a(noun)} is {verb} {s['detail']}"] * 2 if s["detail"] else []
    return rng.choice(forms)


def snli_neutral(rng, s):
    """A hypothesis that may or may not hold: the caption plus a mood or a detail it does not show."""
    noun, verb = s["noun"], s["verb"]
    detail = rng.choice([d for d in (x.format(his=s["his"]) for x in DETAILS) if d != s["detail"]])
    mood = rng.choice([m for m in MOODS if m != s["mood"]])
    return rng.choice((f"{a(noun)} is {verb} {detail}", f"{a(mood + ' ' + noun)} is {verb}",
                       f"{a(mood + ' ' + noun)} is {s['general']}", f"{a(noun)} is {s['general']} {detail}"))


def snli_contradiction(rng, s):
    """A hypothesis the caption rules out: another activity, 'not', the other place, or the other sex."""
    noun, verb = s["noun"], s["verb"]
    other = rng.choice([x[0] for x in ACTIVITIES if x[0] != verb])
    elsewhere = "inside" if s["where"] == "outside" else "outside"
    return rng.choice((f"{a(noun)} is {other}", f"{a(noun)} is not {verb}", f"{a(noun)} is {elsewhere}",
                       f"{a(noun)} is {verb} {elsewhere}", f"{a(s['other'])} is {verb}"))


def snli_hypothesis(rng, label, scene):
    """A hypothesis written for `label`, capitalised, with its full stop."""
    write = {"entailment": snli_entailment, "neutral": snli_neutral, "contradiction": snli_contradiction}[label]
    text = write(rng, scene)
    return text[0].upper() + text[1:] + "."


def snli_tag(word):
    """A rough Penn Treebank tag, enough for placeholder parses."""
    lower = word.lower()
    tags = {"a": "DT", "an": "DT", "his": "PRP$", "her": "PRP$", "is": "VBZ", "not": "RB", "outside": "RB"}
    if lower in tags:
        return tags[lower]
    return "IN" if lower in PREPOSITIONS else "VBG" if lower.endswith("ing") else "NN"


def snli_parses(sentence):
    """(binary parse, parse) of '<subject> is <rest>.': flat placeholders in the file's bracket style."""
    words = sentence[:-1].split()
    subject, rest = words[:words.index("is")], words[words.index("is"):]
    tagged = " ".join(f"({snli_tag(w)} {w})" for w in rest)
    noun_phrase = " ".join(f"({snli_tag(w)} {w})" for w in subject)
    return (f"( ( {' '.join(subject)} ) ( ( {' '.join(rest)} ) . ) )",
            f"(ROOT (S (NP {noun_phrase}) (VP {tagged}) (. .)))")


def snli_annotators(rng, author, gold, validated):
    """annotator_labels: the author's label first, then (validated pairs) four more, `gold` by majority."""
    if not validated:
        return [author]
    others = [x for x in NLI if x != gold]
    if gold == "-":  # no label reaches three of five
        second = rng.choice([x for x in NLI if x != author])
        rest = [author, second, second, rng.choice([x for x in NLI if x not in (author, second)])]
    else:
        k = rng.choice((2, 3, 3, 4)) if author == gold else rng.choice((3, 3, 4))
        rest = [gold] * k + [rng.choice(others) for _ in range(4 - k)]
    rng.shuffle(rest)
    return [author] + rest


def snli_row(rng, caption_id, premise, author, hypothesis, gold, validated):
    """One line of a jsonl file, with the keys in the file's order."""
    (parse1_binary, parse1), (parse2_binary, parse2) = snli_parses(premise), snli_parses(hypothesis)
    return json.dumps({
        "annotator_labels": snli_annotators(rng, author, gold, validated), "captionID": caption_id,
        "gold_label": gold, "pairID": f"{caption_id}r1{author[0]}", "sentence1": premise,
        "sentence1_binary_parse": parse1_binary, "sentence1_parse": parse1, "sentence2": hypothesis,
        "sentence2_binary_parse": parse2_binary, "sentence2_parse": parse2})


def snli_pairs(rng, n_captions):
    """(captionID, premise, author's label, hypothesis): three hypotheses per caption, one per label."""
    pairs = []
    for _ in range(n_captions):
        scene, premise = snli_premise(rng)
        caption_id = f"{rng.randrange(10 ** 9, 10 ** 10)}.jpg#{rng.randrange(5)}"
        authors = list(NLI)
        rng.shuffle(authors)
        pairs.extend((caption_id, premise, x, snli_hypothesis(rng, x, scene)) for x in authors)
    return pairs


def make_snli(out_dir):
    """snli_1.0_{train,dev,test}.jsonl: about SIZES rows each, 2% of them gold '-', NOISE of them relabelled."""
    rng = random.Random(SEED)
    for split, n in SIZES.items():
        pairs = snli_pairs(rng, round(n * 1.02 / 3))
        no_majority = set(rng.sample(range(len(pairs)), round(0.02 * len(pairs))))
        lines = []
        for i, (caption_id, premise, author, hypothesis) in enumerate(pairs):
            gold = "-" if i in no_majority else noisy(rng, author, NLI)
            validated = split != "train" or gold != author or rng.random() < 0.1  # as in SNLI: dev, test, some train
            lines.append(snli_row(rng, caption_id, premise, author, hypothesis, gold, validated))
        write_lines(os.path.join(out_dir, "snli_sample", f"snli_1.0_{split}.jsonl"), lines)


# --- STS-B: captions of one scene, of two scenes of a topic or of two topics; the score follows -----
# The second caption is another annotator's: it mostly calls the same person by the synonym ("A guy")
# and words the same action with the synonym verb ("is slicing"), which captions of other actions never
# use: a lexical cue to high scores that a small model picks up; the rest of the score (same topic or
# not, same object or not) asks it to compare the two sentences.

STS_PEOPLE = (("A man", "A guy"), ("A woman", "A lady"))  # people of any topic's captions
STS_TOPICS = (  # (the topic's own people, its actions: (verb, a verb meaning about the same, objects), places)
    ((("A chef", "A cook"),),
     (("is cutting", "is slicing", ("an onion", "a tomato", "a potato", "a carrot")),
      ("is frying", "is cooking", ("an egg", "some meat", "a fish")),
      ("is stirring", "is mixing", ("the soup", "a sauce", "the batter"))),
     (" in a kitchen", " at the stove")),
    ((("A musician", "A performer"),),
     (("is playing", "is strumming", ("a guitar", "a banjo", "a ukulele")),
      ("is singing", "is performing", ("a song", "a ballad", "a hymn")),
      ("is beating", "is hitting", ("a drum", "a tambourine", "a cymbal"))),
     (" on a stage", " in a studio")),
    ((("A player", "An athlete"), ("A boy", "A kid")),
     (("is throwing", "is tossing", ("a ball", "a frisbee", "a javelin")),
      ("is kicking", "is striking", ("a football", "a soccer ball", "a rugby ball")),
      ("is jumping over", "is leaping over", ("a hurdle", "a bar", "a net"))),
     (" on a field", " in a stadium")),
    ((("A farmer", "A rancher"), ("A girl", "A young girl")),
     (("is riding", "is sitting on", ("a horse", "a pony", "a camel")),
      ("is feeding", "is giving food to", ("a goat", "a cow", "some chickens")),
      ("is petting", "is stroking", ("a dog", "a cat", "a rabbit"))),
     (" on a farm", " in a barn")),
    ((("A police officer", "A policeman"), ("A driver", "A motorist")),
     (("is driving", "is steering", ("a car", "a truck", "a bus")),
      ("is crossing", "is walking across", ("a street", "a road", "a bridge")),
      ("is parking", "is stopping", ("a van", "a taxi", "a scooter"))),
     (" in the city", " downtown")),
    ((("A janitor", "A cleaner"),),
     (("is washing", "is cleaning", ("a window", "a floor", "the dishes")),
      ("is sweeping", "is brushing", ("a porch", "the stairs", "a yard")),
      ("is folding", "is putting away", ("a shirt", "a towel", "a blanket"))),
     (" at home", " in a hallway")),
)
STS_OTHER_TOPIC = 0.4  # share of pairs whose captions come from two topics (score 0 to 1)
STS_OTHER_ACTION = 0.35  # of the other pairs: share with another action of the topic (score 1 to 2) ...
STS_OTHER_THING = 0.3  # ... and share with the same action on another object (score 2.5 to 4)
STS_SAME_PERSON = 0.7  # share of second captions about the same person
STS_SYNONYM = 0.8  # share of a rewording's same person or action that it words with the synonym
STS_SOURCES = (("main-captions", "MSRvid", "2012test"), ("main-captions", "MSRvid", "2012train"),
               ("main-captions", "images", "2014"), ("main-captions", "images", "2015"))
STS_HEADER = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2")


def sts_subject(rng, people, person):
    """(the second caption's subject, how alike: 1 the same, 0.9 its synonym, 0 another of `people`)."""
    r = rng.random()
    if person in people and r < STS_SAME_PERSON:
        return (person[1], 0.9) if rng.random() < STS_SYNONYM else (person[0], 1.0)
    return rng.choice([p for p in people if p != person])[0], 0.0


def sts_pair(rng):
    """(sentence 1, sentence 2, score 0-5 in steps of 0.2): the likeness of topic, person, verb and object,
    weighted, plus noise. The first caption uses the plain words, the second mostly the synonyms for the
    same person or action."""
    topic = rng.choice(STS_TOPICS)
    person = rng.choice(topic[0] + STS_PEOPLE)
    action = rng.choice(topic[1])
    thing = rng.choice(action[2])
    place = rng.choice(topic[2]) if rng.random() < 0.3 else ""
    sentence1 = f"{person[0]} {action[0]} {thing}{place}."
    if rng.random() < STS_OTHER_TOPIC:  # a caption of another topic, maybe of the same man or woman
        topic2 = rng.choice([t for t in STS_TOPICS if t != topic])
        subject2, s = sts_subject(rng, topic2[0] + STS_PEOPLE, person)
        action2 = rng.choice(topic2[1])
        place2 = rng.choice(topic2[2]) if rng.random() < 0.3 else ""
        sentence2 = f"{subject2} {action2[0]} {rng.choice(action2[2])}{place2}."
        t, v, o = 0.0, 0.0, 0.0
    else:
        subject2, s = sts_subject(rng, topic[0] + STS_PEOPLE, person)
        r = rng.random()
        if r < STS_OTHER_ACTION:  # another action of the topic
            action2 = rng.choice([x for x in topic[1] if x != action])
            verb2, thing2, v, o = action2[0], rng.choice(action2[2]), 0.0, 0.0
        else:
            verb2, v = (action[1], 0.9) if rng.random() < STS_SYNONYM else (action[0], 1.0)
            if r < STS_OTHER_ACTION + STS_OTHER_THING:
                thing2, o = rng.choice([x for x in action[2] if x != thing]), 0.2
            else:
                thing2, o = thing, 1.0
        place2 = place if rng.random() < 0.5 else rng.choice(topic[2]) if rng.random() < 0.3 else ""
        sentence2 = f"{subject2} {verb2} {thing2}{place2}."
        t = 1.0
    score = min(5.0, max(0.0, 5 * (0.25 * t + 0.15 * s + 0.25 * v + 0.35 * o) + rng.gauss(0, 0.4)))
    return sentence1, sentence2, round(score * 5) / 5


def sts_rows(rng, n, with_score):
    """n STS-B rows: index, genre, filename, year, old_index, source1, source2, the pair [, score]."""
    rows = []
    for i in range(n):
        sentence1, sentence2, score = sts_pair(rng)
        row = [i, *rng.choice(STS_SOURCES), f"{rng.randrange(1, 1500):04d}", "none", "none", sentence1, sentence2]
        rows.append(row + [f"{score:.3f}"] if with_score else row)
    return rows


def make_stsb(out_dir):
    """train.tsv, dev.tsv (with score) and test.tsv (without)."""
    rng = random.Random(SEED)
    for split, n in SIZES.items():
        header = STS_HEADER + (("score",) if split != "test" else ())
        write_tsv(os.path.join(out_dir, "stsb_sample", f"{split}.tsv"), header, sts_rows(rng, n, split != "test"))


# --- RACE: a short article about a person, two or three questions about it -------------------------
# A fact question's answer is the value its fact sentence uses; its distractors are values that no
# article uses, but for a trap, another value of the fact that the article mentions too ("Her father
# was a doctor"). A NOT question (a common kind in RACE) offers three values the article mentions and
# one it does not, mostly one that no article uses. So an option's word alone points to the answer of
# a fact question and away from it in a NOT question: a small model trained from scratch first learns
# the words (about 40% right), then, after a few epochs, to turn them round for NOT questions; traps, and
# NOT answers that other articles use, need the article itself.

RACE_PEOPLE = (("Tom", "he", "his"), ("Lucy", "she", "her"), ("Peter", "he", "his"), ("Mary", "she", "her"),
               ("Jack", "he", "his"), ("Emma", "she", "her"), ("Sam", "he", "his"), ("Kate", "she", "her"),
               ("David", "he", "his"), ("Linda", "she", "her"), ("Mike", "he", "his"), ("Alice", "she", "her"))
RACE_FACTS = (  # (values that articles use, values that only distractors use, fact, trap: another value the
    #             article mentions, question, cloze question)
    (("teacher", "doctor", "farmer", "baker", "driver", "nurse"),
     ("pilot", "writer", "dentist", "lawyer", "waiter", "plumber", "painter", "singer"),
     "{N} works as a {x} in a small town.", "{H} father was a {x} for many years.",
     "What does {N} do?", "{N} works as a _ in a small town."),
    (("dog", "cat", "rabbit", "parrot", "horse"), ("goat", "duck", "hamster", "turtle", "pig", "sheep", "mouse"),
     "{P} has a {x} that sleeps by the door.", "{H} neighbour keeps a {x} in the yard.",
     "What animal does {N} have?", "{N} has a _ that sleeps by the door."),
    (("Monday", "Wednesday", "Friday", "Sunday"), ("Tuesday", "Thursday", "Saturday"),
     "Every {x} {p} goes to the market with {h} friends.", "The market is closed on {x}.",
     "When does {N} go to the market?", "{N} goes to the market every _ ."),
    (("London", "Paris", "Rome", "Tokyo", "Cairo"), ("Sydney", "Berlin", "Madrid", "Lima", "Oslo", "Vienna", "Dublin"),
     "Last summer {p} visited {x} with {h} family.", "Next year {p} hopes to see {x}.",
     "Where did {N} go last summer?", "Last summer {N} visited _ with {h} family."),
    (("soup", "noodles", "rice", "pizza", "fish"), ("cake", "salad", "apples", "bread", "cheese", "eggs", "beans"),
     "{H} favorite food is {x}.", "{H} brother never eats {x}.",
     "What is {N}'s favorite food?", "{N} likes _ best."),
    (("swimming", "dancing", "singing", "painting"), ("cycling", "fishing", "running", "skating", "cooking", "hiking"),
     "In {h} free time {p} enjoys {x}.", "{H} sister is good at {x}.",
     "What does {N} enjoy in {h} free time?", "In {h} free time {N} enjoys _ ."),
    (("red", "blue", "green", "yellow"), ("white", "brown", "pink", "black", "orange", "purple", "gray"),
     "{H} house has a {x} door.", "The house next door is {x}.",
     "What color is the door of {N}'s house?", "The door of {N}'s house is _ ."),
)
RACE_OPENINGS = ("{N} lives with {h} parents and a little brother.", "Everyone in the town knows {N}.",
                 "{N} is a kind and busy person.", "This is a story about {N}.", "{N} gets up early every day.")
RACE_NOT_QUESTIONS = ("Which of the following is NOT mentioned in the passage?",
                      "Which of the following does the passage NOT mention?")
RACE_ARTICLES = types.MappingProxyType({"train": 60, "dev": 20, "test": 20})  # per group: ~150, 50, 50 questions
RACE_NOT = 0.38  # share of questions asking which option the article does NOT mention
RACE_TRAP = 0.35  # share of the other questions with a distractor that the article mentions too
RACE_NOT_SEEN = 0.25  # share of NOT questions whose answer is a value that other articles use


def race_fill(template, person, x=""):
    """A template with the person's name and pronouns ({N}, {p}/{P}, {h}/{H}) and the value {x}."""
    name, pronoun, possessive = person
    return template.format(N=name, p=pronoun, P=pronoun.capitalize(), h=possessive, H=possessive.capitalize(), x=x)


def race_question(rng, person, fact, answer, trap, position):
    """(question, 4 options with the answer at `position`): the trap, if any, and values no article uses."""
    _, unused, _, _, question, cloze = fact
    options = ([trap] if trap else []) + rng.sample(unused, 3 - bool(trap))
    rng.shuffle(options)
    options.insert(position, answer)
    return race_fill(cloze if rng.random() < 0.3 else question, person), options


def race_not_question(rng, mentioned, position):
    """(question, 4 options with the answer at `position`): three values the article mentions, one it does not."""
    if rng.random() < RACE_NOT_SEEN:  # a value that other articles use
        answer = rng.choice([v for fact in RACE_FACTS for v in fact[0] if v not in mentioned])
    else:
        answer = rng.choice([v for fact in RACE_FACTS for v in fact[1]])
    options = rng.sample(mentioned, 3)
    options.insert(position, answer)
    return rng.choice(RACE_NOT_QUESTIONS), options


def race_article(rng, positions):
    """One RACE object: an article of 3 facts (and traps), 2 or 3 questions, each about a fact or NOT."""
    person, facts, n_questions = rng.choice(RACE_PEOPLE), rng.sample(RACE_FACTS, 3), rng.choice((2, 3))
    kinds = ["not" if rng.random() < RACE_NOT else "fact" for _ in range(n_questions)]
    sentences, mentioned, asked = [], [], []
    for k, fact in enumerate(facts):
        answer = rng.choice(fact[0])
        sentences.append(race_fill(fact[2], person, answer))
        mentioned.append(answer)
        if k >= n_questions:
            continue
        trap = None
        if kinds[k] == "fact" and rng.random() < RACE_TRAP:
            trap = rng.choice([v for v in fact[0] if v != answer])
            sentences.append(race_fill(fact[3], person, trap))
            mentioned.append(trap)
        asked.append((kinds[k], fact, answer, trap))
    questions, options, answers = [], [], []
    for kind, fact, answer, trap in asked:  # after the loop: a NOT question's options may come from any fact
        position = next(positions)
        if kind == "not":
            question, choices = race_not_question(rng, mentioned, position)
        else:
            question, choices = race_question(rng, person, fact, answer, trap, position)
        questions.append(question)
        options.append(choices)
        answers.append("ABCD"[position])
    rng.shuffle(sentences)
    article = " ".join([race_fill(rng.choice(RACE_OPENINGS), person)] + sentences)
    return {"answers": answers, "options": options, "questions": questions, "article": article}


def make_race(out_dir):
    """RACE/{train,dev,test}/{middle,high}/<n>.txt, one JSON object each, its id '<group><n>.txt'."""
    rng = random.Random(SEED)
    for split, n in RACE_ARTICLES.items():
        positions = iter(balanced(rng, range(4), 2 * 3 * n))  # the answer's place: A to D equally often
        for group in ("middle", "high"):
            for number in sorted(rng.sample(range(1, 10000), n)):
                obj = {**race_article(rng, positions), "id": f"{group}{number}.txt"}
                path = os.path.join(out_dir, "race_sample", "RACE", split, group, f"{number}.txt")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(json.dumps(obj))  # one line, no final newline, as RACE's files


# --- generic: a user's own CSV, short posts about sports, food or the weather -----------------------

TOPICS = ("food", "sports", "weather")  # the labels, as strings; the generic reader sorts them
TOPIC_SUBJECTS = (
    ("the soup", "the new cafe", "the chef", "my aunt's pasta", "the bakery", "the pizza place", "the curry"),
    ("the match", "our team", "the coach", "the striker", "the final", "the tennis player", "the runners"),
    ("the sky", "the forecast", "the wind", "the storm", "the morning fog", "the snow", "the heat"),
)
TOPIC_PREDICATES = (
    ("tasted of garlic and lemon", "served fresh bread with butter", "was far too salty", "smelled of spices",
     "sold out of cakes by noon", "needed more cheese"),
    ("won in the last minute", "scored two late goals", "lost by a single point", "trained hard all week",
     "broke the club record", "was sent off early"),
    ("brought heavy rain", "turned cold and cloudy", "covered the hills in white", "kept everyone indoors",
     "cleared by the afternoon", "was warmer than expected"),
)
GENERIC_PREDICATES = ("was the talk of the town", "surprised everyone", "was better than last year",
                      "made the news again", "was hard to forget", "did not last long")
TOPIC_ASIDES = (  # phrases of a topic that may join a text of another topic
    ("after lunch", "over a bowl of noodles", "with a sandwich in hand", "while the kettle boiled"),
    ("before the game", "during the match", "after football practice", "on the way to the stadium"),
    ("despite the rain", "on a windy day", "while it was snowing", "under a hot sun"),
)


def topic_text(rng, topic):
    """'<subject> <predicate>' of the topic (or a predicate of none), maybe with another topic's aside."""
    t = TOPICS.index(topic)
    predicate = rng.choice(TOPIC_PREDICATES[t] if rng.random() < 0.7 else GENERIC_PREDICATES)
    text = f"{rng.choice(TOPIC_SUBJECTS[t])} {predicate}"
    if rng.random() < 0.35:
        aside = rng.choice(TOPIC_ASIDES[rng.choice([i for i in range(3) if i != t])])
        text = f"{aside}, {text}" if rng.random() < 0.5 else f"{text}, {aside}"
    return text[0].upper() + text[1:] + "."


def make_generic(out_dir):
    """train.csv, dev.csv, test.csv with the header text,label (fields with commas quoted)."""
    rng = random.Random(SEED)
    for split, n in SIZES.items():
        rows = [(topic_text(rng, noisy(rng, y, TOPICS)), y) for y in balanced(rng, TOPICS, n)]
        path = os.path.join(out_dir, "generic_sample", f"{split}.csv")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("text", "label"))
            writer.writerows(rows)


def main(out_dir):
    """Write the five sample folders under out_dir."""
    for make in (make_sst2, make_snli, make_stsb, make_race, make_generic):
        make(out_dir)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
