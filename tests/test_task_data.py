"""Readers for GLUE, SNLI, SciTail, RACE and generic files: small files in the publishers' formats."""

import contextlib
import io
import json
import os
import tempfile
import unittest

from gpt1_tf.errors import DataError
from gpt1_tf.data.generic import generic
from gpt1_tf.data.glue import glue, scitail
from gpt1_tf.data.inputs import DataConfig, load, read_task
from gpt1_tf.data.race import race
from gpt1_tf.data.rows import Example
from gpt1_tf.data.snli import snli
from gpt1_tf.data.text_utils import TextEncoder
from gpt1_tf.data.tasks import TASKS
from gpt1_tf.network import tokens

MNLI_TRAIN_HEAD = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse "
                   "sentence2_parse sentence1 sentence2").split()


def tsv(*rows):
    """Tab-separated text of rows (each a list of fields or a ready line)."""
    return "".join((r if isinstance(r, str) else "\t".join(r)) + "\n" for r in rows)


def mnli_row(i, s1, s2, *labels):
    """An MNLI row: 8 leading columns, the two sentences, then the label columns."""
    return [str(i), "p", "q", "fiction", "(", "(", "(", "(", s1, s2, *labels]


class Files(unittest.TestCase):
    """A temp folder and helpers to write files into it and read errors/warnings."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, rel, text):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def read(self, fn, *args, **kwargs):
        """(result, stderr text) of a reader call."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            result = fn(*args, **kwargs)
        return result, err.getvalue()

    def error(self, fn, *args, **kwargs):
        """The DataError a reader call raises (checked to be one line)."""
        with self.assertRaises(DataError) as ctx, contextlib.redirect_stderr(io.StringIO()):
            fn(*args, **kwargs)
        self.assertNotIn("\n", str(ctx.exception))
        return ctx.exception


class GlueTest(Files):

    def write_sst2(self, folder="SST-2"):
        self.write(f"{folder}/train.tsv", tsv("sentence\tlabel", 'a "quoted" film\t1', "dull\t0"))
        self.write(f"{folder}/dev.tsv", tsv("sentence\tlabel", "fine\t1"))
        self.write(f"{folder}/test.tsv", tsv("index\tsentence", '0\tit\'s "great', "1\tbad"))

    def test_sst2_quotes_verbatim_and_test_index(self):
        self.write_sst2()
        data, err = self.read(glue, "sst2", self.dir)  # the GLUE folder above SST-2/
        self.assertEqual(err, "")
        self.assertEqual(data["train"], [Example(('a "quoted" film',), 1), Example(("dull",), 0)])
        self.assertEqual(data["dev"], [Example(("fine",), 1)])
        self.assertEqual(data["test"], [Example(('it\'s "great',), None, index=0), Example(("bad",), index=1)])
        # the task folder itself works too
        self.assertEqual(glue("sst2", os.path.join(self.dir, "SST-2")), data)

    def test_cola_has_no_header_in_train_and_dev(self):
        self.write("CoLA/train.tsv", tsv("gj04\t1\t\tThe book fell.", "gj04\t0\t*\tBook the fell."))
        self.write("CoLA/dev.tsv", tsv("cj99\t1\t\tShe ran."))
        self.write("CoLA/test.tsv", tsv("index\tsentence", "0\tHe sat."))
        data = glue("cola", self.dir)
        self.assertEqual([(e.texts, e.label) for e in data["train"]],
                         [(("The book fell.",), 1), (("Book the fell.",), 0)])
        self.assertEqual(data["dev"], [Example(("She ran.",), 1)])
        self.assertEqual(data["test"], [Example(("He sat.",), index=0)])

    def write_qqp(self, train_extra=(), dev_extra=()):
        head = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
        self.write("QQP/train.tsv", tsv(head, "1\t1\t2\tHow?\tWhy?\t0", *train_extra, "2\t3\t4\tA?\tB?\t1"))
        self.write("QQP/dev.tsv", tsv(head, "5\t9\t10\tC?\tD?\t1", *dev_extra))
        self.write("QQP/test.tsv", tsv("id\tquestion1\tquestion2", "7\tE?\tF?"))

    def test_qqp_train_skips_and_counts_malformed_rows(self):
        self.write_qqp(train_extra=("3\t5\t6\tbroken question", "tail of it?\t1", "4\t7\t8\t \tempty?\t0"))
        data, err = self.read(glue, "qqp", os.path.join(self.dir, "QQP"))
        self.assertEqual([e.texts for e in data["train"]], [("How?", "Why?"), ("A?", "B?")])
        self.assertEqual([e.label for e in data["train"]], [0, 1])
        path = os.path.join(self.dir, "QQP", "train.tsv")
        self.assertEqual(err, f"warning: {path}: skipped 3 malformed rows (first at line 3)\n")
        self.assertEqual(data["test"], [Example(("E?", "F?"), index=7)])

    def test_qqp_dev_malformed_row_is_an_error_with_its_line(self):
        self.write_qqp(dev_extra=("6\t11\tonly four fields\tx",))
        e = self.error(glue, "qqp", self.dir)
        self.assertEqual((e.path, e.line), (os.path.join(self.dir, "QQP", "dev.tsv"), 3))
        self.assertIn("4 tab-separated fields, expected 6", str(e))

    def write_mnli(self, dev_labels=("neutral",) * 5 + ("neutral",)):
        train_head = tsv(MNLI_TRAIN_HEAD + ["label1", "gold_label"])
        dev_head = tsv(MNLI_TRAIN_HEAD + [f"label{i}" for i in range(1, 6)] + ["gold_label"])
        test_head = tsv(MNLI_TRAIN_HEAD)
        self.write("MNLI/train.tsv", train_head + tsv(mnli_row(0, "A man.", "A person.", "entailment", "entailment")))
        for name in ("dev_matched", "dev_mismatched"):
            self.write(f"MNLI/{name}.tsv", dev_head + tsv(mnli_row(1, "X.", "Y.", *dev_labels)))
        for name in ("test_matched", "test_mismatched"):
            self.write(f"MNLI/{name}.tsv", test_head + tsv(mnli_row(2, "T.", "U.")))

    def test_mnli_gold_label_is_the_last_column(self):
        self.write_mnli(dev_labels=("contradiction",) * 5 + ("neutral",))
        data = glue("mnli", self.dir)
        self.assertEqual(list(data), ["train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"])
        self.assertEqual(data["train"], [Example(("A man.", "A person."), 0)])
        self.assertEqual(data["dev_mismatched"], [Example(("X.", "Y."), 1)])
        self.assertEqual(data["test_matched"], [Example(("T.", "U."), index=2)])
        self.assertEqual(dict(TASKS["mnli"].submission),
                         {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"})

    def test_unknown_label_is_an_error_with_its_line(self):
        self.write_mnli(dev_labels=("neutral",) * 5 + ("Neutral",))
        e = self.error(glue, "mnli", self.dir)
        self.assertEqual((e.path, e.line), (os.path.join(self.dir, "MNLI", "dev_matched.tsv"), 2))
        self.assertIn("unknown label 'Neutral'", str(e))

    def test_stsb_score_is_a_float(self):
        head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
        row = "0\tmain-news\tf\t2012\t1\tnone\tnone\tA plane.\tAn airplane."
        self.write("STS-B/train.tsv", tsv(head + "\tscore", row + "\t5.000"))
        self.write("STS-B/dev.tsv", tsv(head + "\tscore", row + "\t3.2"))
        self.write("STS-B/test.tsv", tsv(head, row))
        data = glue("stsb", self.dir)
        self.assertEqual(data["train"], [Example(("A plane.", "An airplane."), 5.0)])
        self.assertIsInstance(data["dev"][0].label, float)
        self.assertEqual(data["dev"][0].label, 3.2)
        self.assertEqual(data["test"], [Example(("A plane.", "An airplane."), index=0)])

    def test_empty_text_in_dev_is_an_error(self):
        self.write("RTE/train.tsv", tsv("index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment"))
        self.write("RTE/dev.tsv", tsv("index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment",
                                      "1\t\tB.\tnot_entailment"))
        e = self.error(glue, "rte", self.dir)
        self.assertEqual(e.line, 3)
        self.assertIn("empty text in column 'sentence1'", str(e))

    def test_missing_test_file_names_it_and_where_to_get_glue(self):
        self.write_sst2()
        os.remove(os.path.join(self.dir, "SST-2", "test.tsv"))
        e = self.error(glue, "sst2", self.dir)
        self.assertEqual(e.path, os.path.join(self.dir, "SST-2", "test.tsv"))
        self.assertIn("gluebenchmark.com", str(e))
        self.assertEqual(list(read_task("sst2", self.dir, splits=["train", "dev"])), ["train", "dev"])

    def test_missing_data_folder(self):
        e = self.error(glue, "qnli", os.path.join(self.dir, "nope"))
        self.assertIn("data folder not found", str(e))
        self.assertIn("gluebenchmark.com", str(e))

    def test_wrong_header_names_the_missing_columns(self):
        self.write("QNLI/train.tsv", tsv("index\tquestion\ttext\tlabel", "0\tQ?\tS.\tentailment"))
        e = self.error(glue, "qnli", self.dir, splits=["train"])
        self.assertEqual(e.line, 1)
        self.assertIn("sentence", str(e))

    def test_vertical_tab_and_line_separator_stay_in_the_text(self):
        self.write("WNLI/train.tsv", tsv("index\tsentence1\tsentence2\tlabel", "0\tA\x0bB\u2028C\tD.\t1"))
        self.assertEqual(glue("wnli", self.dir, splits=["train"])["train"], [Example(("A\x0bB\u2028C", "D."), 1)])


class SnliTest(Files):

    def line(self, s1, s2, gold):
        return json.dumps({"annotator_labels": [gold], "gold_label": gold, "pairID": "x", "sentence1": s1,
                           "sentence1_parse": "(", "sentence2": s2}) + "\n"

    def write_all(self, train=None):
        default = self.line("A.", "B.", "neutral") + self.line("C.", "D.", "-") + self.line("E.", "F.", "contradiction")
        self.write("snli_1.0/snli_1.0_train.jsonl", train or default)
        self.write("snli_1.0/snli_1.0_dev.jsonl", self.line("G.", "H.", "entailment"))
        self.write("snli_1.0/snli_1.0_test.jsonl", self.line("I.", "J.", "-") + self.line("K.", "L.", "neutral"))

    def test_dash_gold_label_skipped_and_counted(self):
        self.write_all()
        data, err = self.read(snli, self.dir)
        self.assertEqual(data["train"], [Example(("A.", "B."), 1), Example(("E.", "F."), 2)])
        self.assertEqual(data["dev"], [Example(("G.", "H."), 0)])
        self.assertEqual(data["test"], [Example(("K.", "L."), 1)])
        folder = os.path.join(self.dir, "snli_1.0")
        self.assertEqual(err.splitlines(), [
            f"warning: {folder}/snli_1.0_train.jsonl: skipped 1 examples with gold_label '-' (first at line 2)",
            f"warning: {folder}/snli_1.0_test.jsonl: skipped 1 examples with gold_label '-' (first at line 1)"])

    def test_truncated_line_is_an_error_with_its_line(self):
        self.write_all(train=self.line("A.", "B.", "neutral") + self.line("C.", "D.", "neutral")[:30])
        e = self.error(snli, self.dir)
        self.assertEqual(e.line, 2)
        self.assertIn("not valid JSON", str(e))

    def test_texts_are_cut_by_the_caps_rule_not_by_the_n_ctx_the_data_needs(self):
        # a 20-word premise needs n_ctx 25; that n_ctx's rule (25 // 2 - 2 = 10) would cut it, the cap's (254) not
        premise = " ".join(["cat"] * 20)
        self.write("snli_1.0/snli_1.0_train.jsonl", self.line(premise, "dog", "neutral"))
        self.write("snli_1.0/snli_1.0_dev.jsonl", self.line("cat", "dog", "neutral"))
        self.write("snli_1.0/snli_1.0_test.jsonl", self.line("cat", "dog", "neutral"))
        encoder = TextEncoder()
        data, _ = self.read(load, DataConfig(dataset="snli", data_dir=self.dir), encoder)
        cat, dog = encoder.encode(["cat", "dog"])
        n_vocab = len(encoder.encoder)
        want = [tokens.start_id(n_vocab), *cat * 20, tokens.delimiter_id(n_vocab), *dog, tokens.clf_id(n_vocab)]
        self.assertEqual(data.n_ctx, len(want))
        self.assertEqual(data.train.X[0, 0, :, 0].tolist(), want)

    def test_missing_file_says_where_snli_is(self):
        self.write_all()
        os.remove(os.path.join(self.dir, "snli_1.0", "snli_1.0_dev.jsonl"))
        e = self.error(snli, os.path.join(self.dir, "snli_1.0"))
        self.assertTrue(e.path.endswith("snli_1.0_dev.jsonl"))
        self.assertIn("nlp.stanford.edu/projects/snli", str(e))


class SciTailTest(Files):

    def write_all(self, prefix):
        for split in ("train", "dev", "test"):
            self.write(os.path.join(prefix, f"scitail_1.0_{split}.tsv"),
                       tsv(f"P {split}.\tH \"{split}\".\tentails", "P2.\tH2.\tneutral"))

    def test_release_layout_and_plain_folder(self):
        self.write_all("SciTailV1.1/tsv_format")
        data = scitail(self.dir)
        self.assertEqual(data["dev"], [Example(("P dev.", 'H "dev".'), 0), Example(("P2.", "H2."), 1)])
        self.assertEqual(scitail(os.path.join(self.dir, "SciTailV1.1")), data)
        self.assertEqual(scitail(os.path.join(self.dir, "SciTailV1.1", "tsv_format")), data)

    def test_unknown_label_and_missing_file(self):
        self.write_all("")
        self.write("scitail_1.0_test.tsv", tsv("P.\tH.\tentailment"))
        e = self.error(scitail, self.dir)
        self.assertEqual(e.line, 1)
        os.remove(os.path.join(self.dir, "scitail_1.0_train.tsv"))
        e = self.error(scitail, self.dir)
        self.assertIn("allenai.org/data/scitail", str(e))


class RaceTest(Files):

    def race_file(self, rel, n_questions, drop=None, article="An article."):
        obj = {"article": article, "questions": [f"Q{i}?" for i in range(n_questions)],
               "options": [[f"o{i}{c}" for c in "abcd"] for i in range(n_questions)],
               "answers": ["ABCD"[i % 4] for i in range(n_questions)], "id": os.path.basename(rel)}
        if drop:
            del obj[drop]
        return self.write(os.path.join("RACE", rel), json.dumps(obj))

    def write_all(self):
        for split in ("train", "dev", "test"):
            self.race_file(f"{split}/middle/2.txt", 1, article="Mid two.")
            self.race_file(f"{split}/middle/1.txt", 2, article="Mid one.")
            self.race_file(f"{split}/high/9.txt", 1, article="High.")

    def test_one_example_per_question_grouped_and_sorted(self):
        self.write_all()
        data = race(self.dir)
        self.assertEqual(data["train"], [
            Example(("Mid one.", "Q0?"), 0, ("o0a", "o0b", "o0c", "o0d"), group="middle"),
            Example(("Mid one.", "Q1?"), 1, ("o1a", "o1b", "o1c", "o1d"), group="middle"),
            Example(("Mid two.", "Q0?"), 0, ("o0a", "o0b", "o0c", "o0d"), group="middle"),
            Example(("High.", "Q0?"), 0, ("o0a", "o0b", "o0c", "o0d"), group="high")])
        self.assertEqual(race(os.path.join(self.dir, "RACE")), data)
        self.assertEqual(read_task("race", self.dir, ["dev"]), {"dev": data["dev"]})

    def test_missing_answers_names_the_file(self):
        self.write_all()
        path = self.race_file("dev/high/3.txt", 2, drop="answers")
        e = self.error(race, self.dir)
        self.assertEqual(e.path, path)
        self.assertIn("'answers'", str(e))

    def test_lengths_that_disagree(self):
        self.write_all()
        path = self.write("RACE/test/high/5.txt", json.dumps(
            {"article": "A.", "questions": ["Q?", "R?"], "options": [["a", "b", "c", "d"]], "answers": ["A"]}))
        e = self.error(race, self.dir)
        self.assertEqual(e.path, path)
        self.assertIn("2 questions, 1 option lists and 1 answers", str(e))

    def test_missing_group_folder_says_where_race_is(self):
        self.write_all()
        os.remove(os.path.join(self.dir, "RACE", "test", "high", "9.txt"))
        os.rmdir(os.path.join(self.dir, "RACE", "test", "high"))
        e = self.error(race, self.dir)
        self.assertIn("cs.cmu.edu/~glai1/data/race", str(e))


class GenericTest(Files):

    def test_csv_classification_with_inferred_labels(self):
        train = self.write("train.csv", 'text,label\n"a, b",pos\nc,neg\n')
        dev = self.write("dev.csv", "text,label\nd,pos\n")
        data = generic([train, dev], text_columns=["text"], label_column="label", task_format="classification")
        self.assertEqual(data, {"train": [Example(("a, b",), 1), Example(("c",), 0)], "dev": [Example(("d",), 1)]})

    def test_jsonl_multiple_choice_and_unknown_label(self):
        rows = [{"ctx": "Story.", "e1": "End one.", "e2": "End two.", "y": 2}, {"ctx": "S2.", "e1": "x", "e2": "y", "y": 1}]
        path = self.write("val.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        data = generic({"valid": path}, text_columns=["ctx"], choice_columns=["e1", "e2"], label_column="y",
                       task_format="multiple_choice", labels=[1, 2])
        self.assertEqual(data["valid"], [Example(("Story.",), 1, ("End one.", "End two.")),
                                         Example(("S2.",), 0, ("x", "y"))])
        e = self.error(generic, {"valid": path}, text_columns=["ctx"], choice_columns=["e1", "e2"],
                       label_column="y", task_format="multiple_choice", labels=[0, 1])
        self.assertEqual(e.line, 1)

    def test_a_row_without_its_label(self):
        labelled, bare = '{"text": "a good day", "label": "pos"}\n', '{"text": "a bad day"}\n'
        kw = dict(text_columns=["text"], label_column="label", task_format="classification", labels=["neg", "pos"])
        for split in ("train", "dev", "test"):
            for rows, line in (([labelled, bare], 2), ([bare, labelled], 1 if split != "test" else 2)):
                with self.subTest(split=split, rows=rows):
                    path = self.write(f"{split}.jsonl", "".join(rows))
                    e = self.error(generic, {split: path}, **kw)
                    self.assertEqual((e.path, e.line), (path, line))
                    self.assertIn("'label'", str(e))
        path = self.write("test.jsonl", bare * 2)  # a test file without labels: nothing to score against
        self.assertEqual(generic({"test": path}, **kw), {"test": [Example(("a bad day",))] * 2})

    def test_similarity_float_and_tsv(self):
        path = self.write("pairs.tsv", 'a\tb\tscore\n"q\tr\t1.5\n')
        data = generic([path], text_columns=["a", "b"], label_column="score", task_format="similarity")
        self.assertEqual(data, {"pairs": [Example(('"q', "r"), 1.5)]})

    def test_classification_without_any_label_values_asks_for_labels(self):
        path = self.write("test.csv", "text\nhello\n")
        e = self.error(generic, [path], text_columns=["text"], label_column="label", task_format="classification")
        self.assertIn("pass labels", str(e))
        self.assertEqual(generic([path], text_columns=["text"], label_column="label", task_format="classification",
                                 labels=["a"]), {"test": [Example(("hello",))]})


class TaskTableTest(unittest.TestCase):

    def test_every_task_has_a_known_format_and_splits(self):
        self.assertEqual(set(TASKS), {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli",
                                      "snli", "scitail", "race"})
        for name, task in TASKS.items():
            self.assertIn(task.format, ("classification", "entailment", "similarity", "multiple_choice"), name)
            self.assertIn("train", task.splits, name)
            self.assertEqual(bool(task.submission), task.dataset == "glue", name)


if __name__ == "__main__":
    unittest.main()
