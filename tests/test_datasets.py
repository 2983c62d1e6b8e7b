"""Story Cloze readers, the train/valid split, transform_roc, compute_n_ctx, iter_data, analysis."""

import contextlib
import csv
import io
import json
import os
import tempfile
import unittest

import numpy as np

from gpt1_tf.train import analysis
from gpt1_tf.data.rocstories import HEADER, TEST_FILE, VAL_FILE, _rocstories, rocstories, rocstories_test_labels
from gpt1_tf.errors import DataError
from gpt1_tf.network.tokens import special_ids
from gpt1_tf.data.batching import iter_data
from gpt1_tf.data.transforms import compute_n_ctx, encode_dataset, max_len_for, transform_roc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "datasets", "rocstories_sample")
HEADER_LINE = ",".join(HEADER) + "\r\n"


def story_row(i):
    """A valid row for story i; the right ending alternates between 1 and 2."""
    return [f"id-{i}", f"Story {i} one.", "Two, too.", "Three.", "Four.", f"End {i} a.", f"End {i} b.", str(1 + i % 2)]


def csv_text(rows, header=HEADER):
    """The CSV text of a header and rows, as csv.writer lays it out."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_data_dir(folder, n_val, n_test):
    """Write both Story Cloze files (n_val and n_test stories) into folder."""
    for name, n in ((VAL_FILE, n_val), (TEST_FILE, n_test)):
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="") as f:
            f.write(csv_text([story_row(i) for i in range(n)]))


class ReaderValidationTest(unittest.TestCase):
    """Each malformed file raises a one-line DataError naming the file (and line where there is one)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, VAL_FILE)

    def tearDown(self):
        self.tmp.cleanup()

    def assert_error(self, content, pattern, line=None):
        """Write content (bytes or str) and check _rocstories' error message."""
        with open(self.path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode("utf-8"))
        with self.assertRaises(DataError) as ctx:
            _rocstories(self.path)
        message = str(ctx.exception)
        where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        self.assertTrue(message.startswith(where), message)
        self.assertRegex(message, pattern)
        self.assertNotIn("\n", message)
        self.assertEqual(ctx.exception.line, line)

    def test_good_file(self):
        with open(self.path, "w", encoding="utf-8", newline="") as f:
            f.write(csv_text([story_row(0), story_row(1)]))
        stories, endings1, endings2, labels = _rocstories(self.path)
        self.assertEqual(stories, ["Story 0 one. Two, too. Three. Four.", "Story 1 one. Two, too. Three. Four."])
        self.assertEqual(endings1, ["End 0 a.", "End 1 a."])
        self.assertEqual(endings2, ["End 0 b.", "End 1 b."])
        self.assertEqual(labels, [0, 1])

    def test_byte_order_mark_is_accepted(self):
        with open(self.path, "wb") as f:
            f.write(b"\xef\xbb\xbf" + csv_text([story_row(0)]).encode("utf-8"))
        self.assertEqual(_rocstories(self.path)[3], [0])

    def test_missing_file(self):
        with self.assertRaises(DataError) as ctx:
            _rocstories(self.path)
        message = str(ctx.exception)
        self.assertTrue(message.startswith(self.path + ": file not found"), message)
        self.assertIn("https://cs.rochester.edu/nlp/rocstories/", message)
        self.assertIn("registration", message)

    def test_empty_file(self):
        self.assert_error("", "empty file")

    def test_header_only(self):
        self.assert_error(HEADER_LINE, "no stories after the header")

    def test_bad_header(self):
        self.assert_error(csv_text([story_row(0)], header=["id", *HEADER[1:]]), "header is", line=1)
        self.assert_error(csv_text([story_row(0)], header=HEADER[:-1]), "expected 'InputStoryid,", line=1)

    def test_wrong_column_count(self):
        rows = [story_row(0), story_row(1)[:7], story_row(2)]
        self.assert_error(csv_text(rows), "row has 7 fields, expected 8", line=3)
        rows = [story_row(0), story_row(1) + ["extra"]]
        self.assert_error(csv_text(rows), "row has 9 fields, expected 8", line=3)

    def read_back(self, content):
        """Write content and return what _rocstories reads from it."""
        with open(self.path, "w", encoding="utf-8", newline="") as f:
            f.write(content)
        return _rocstories(self.path)

    def test_trailing_blank_lines_are_skipped(self):
        # Editors and spreadsheet exports often end the file with one more newline.
        text = csv_text([story_row(0), story_row(1)])
        expected = self.read_back(text)
        for tail in ("\n", "\r\n", "\r\n\r\n", "\n\n\n"):
            with self.subTest(tail=tail):
                self.assertEqual(self.read_back(text + tail), expected)

    def test_blank_lines_in_the_middle_are_skipped(self):
        rows = [csv_text([story_row(i)])[len(HEADER_LINE):] for i in range(3)]
        expected = self.read_back(HEADER_LINE + "".join(rows))
        self.assertEqual(expected[3], [0, 1, 0])
        for blank in ("\n", "\r\n", "\r\n\n"):
            with self.subTest(blank=blank):
                text = blank + HEADER_LINE + rows[0] + blank + rows[1] + rows[2] + blank
                self.assertEqual(self.read_back(text), expected)

    def test_blank_lines_keep_line_numbers(self):
        rows = csv_text([story_row(0), story_row(1)[:7]])[len(HEADER_LINE):].splitlines(keepends=True)
        # header, blank, row 0, blank, blank, the 7-field row: line 6.
        self.assert_error(HEADER_LINE + "\r\n" + rows[0] + "\n\r\n" + rows[1], "row has 7 fields", line=6)
        self.assert_error("\n\r\n" + csv_text([story_row(0)], header=HEADER[:-1]), "header is", line=3)

    def test_only_blank_lines(self):
        self.assert_error("\r\n\n", "empty file")
        self.assert_error(HEADER_LINE + "\r\n\n", "no stories after the header")

    def test_bad_label(self):
        for label in ("3", "x", "0", "", " 1"):
            with self.subTest(label=label):
                row = story_row(1)[:7] + [label]
                self.assert_error(csv_text([story_row(0), row]), f"AnswerRightEnding is {label!r}", line=3)

    def test_empty_sentence(self):
        for field in range(1, 7):
            with self.subTest(field=field):
                row = story_row(1)
                row[field] = "  "
                self.assert_error(csv_text([story_row(0), row]), f"empty text in {HEADER[field]}", line=3)

    def test_truncated_last_row(self):
        text = csv_text([story_row(0), story_row(1)])
        self.assert_error(text[: text.rindex(",End 1 b.")], "row has 6 fields", line=3)

    def test_unterminated_quote(self):
        # A quote opened in the label field swallows the rest: non-strict csv would accept label "1".
        text = csv_text([story_row(0)]) + 'id-1,a,b,c,d,e,f,"1\r\n'
        self.assert_error(text, "unterminated quoted field", line=3)
        text = csv_text([story_row(0)]) + 'id-1,"a,b,c,d\r\nid-2,a,b\r\n'
        self.assert_error(text, "unterminated quoted field", line=3)

    def test_quoted_field_with_newline_counts_lines(self):
        rows = [story_row(0), ["id-1", "One\nstill one.", "Two.", "Three.", "Four.", "A.", "B.", "1"], story_row(2)[:5]]
        self.assert_error(csv_text(rows), "row has 5 fields", line=5)

    def test_non_utf8(self):
        text = csv_text([story_row(0), story_row(1), story_row(2)]).encode("utf-8")
        bad = text.replace(b"Story 2", b"Story \xe9")
        self.assert_error(bad, r"not valid UTF-8 \(byte 0xe9\)", line=4)


class RocstoriesSplitTest(unittest.TestCase):
    """rocstories(): the original's train/valid split of the val file, and the test file."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_small_split(self):
        write_data_dir(self.dir, 40, 7)
        (trX1, trX2, trX3, trY), (vaX1, vaX2, vaX3, vaY), (teX1, teX2, teX3) = rocstories(self.dir, n_valid=10)
        self.assertEqual([len(x) for x in (trX1, trX2, trX3, trY)], [30] * 4)
        self.assertEqual([len(x) for x in (vaX1, vaX2, vaX3, vaY)], [10] * 4)
        self.assertEqual([len(x) for x in (teX1, teX2, teX3)], [7] * 3)
        self.assertEqual((trY.dtype, vaY.dtype), (np.int32, np.int32))
        self.assertIsInstance(trX1, list)
        # Pinned (train_test_split(range(40), test_size=10, random_state=3535999445)): the split the
        # original made; it must not move if the library call or the seed changes.
        self.assertEqual(trX1[:3], [f"Story {i} one. Two, too. Three. Four." for i in (17, 9, 37)])
        self.assertEqual(trX2[0], "End 17 a.")
        self.assertEqual(trX3[0], "End 17 b.")
        self.assertEqual(trY[:3].tolist(), [1, 1, 1])  # stories 17, 9, 37 have AnswerRightEnding 2
        self.assertEqual([x.split()[1] for x in vaX1], [str(i) for i in (24, 34, 19, 5, 2, 29, 27, 30, 39, 0)])
        self.assertEqual(teX1[0], "Story 0 one. Two, too. Three. Four.")

    def test_real_size(self):
        write_data_dir(self.dir, 1871, 3)
        (trX1, _, _, trY), (vaX1, _, _, vaY), _ = rocstories(self.dir)
        self.assertEqual((len(trX1), len(trY), len(vaX1), len(vaY)), (1497, 1497, 374, 374))
        self.assertEqual(trX1[0].split()[1], "187")
        self.assertEqual(vaX1[0].split()[1], "1058")

    def test_too_few_stories(self):
        write_data_dir(self.dir, 11, 3)
        with self.assertRaisesRegex(DataError, r"11 stories, but n_valid=10 needs at least 12"):
            rocstories(self.dir, n_valid=10)

    def test_missing_and_empty_data_dir(self):
        missing = os.path.join(self.dir, "nope")
        with self.assertRaisesRegex(DataError, "^" + missing + ": data folder not found"):
            rocstories(missing)
        with self.assertRaisesRegex(DataError, "^" + self.dir + ": data folder is empty"):
            rocstories(self.dir)

    def test_missing_test_file(self):
        write_data_dir(self.dir, 20, 3)
        os.remove(os.path.join(self.dir, TEST_FILE))
        with self.assertRaisesRegex(DataError, TEST_FILE + ": file not found"):
            rocstories(self.dir, n_valid=5)

    def test_test_labels(self):
        write_data_dir(self.dir, 20, 5)
        labels = rocstories_test_labels(self.dir)
        self.assertEqual(labels.tolist(), [0, 1, 0, 1, 0])
        self.assertEqual(labels.dtype, np.int32)


class BundledSampleTest(unittest.TestCase):
    """datasets/rocstories_sample passes validation and has the documented sizes."""

    def test_sample(self):
        (trX1, trX2, trX3, trY), (vaX1, _, _, vaY), (teX1, teX2, teX3) = rocstories(SAMPLE_DIR, n_valid=20)
        self.assertEqual((len(trX1), len(vaX1), len(teX1)), (100, 20, 100))
        labels = np.concatenate([trY, vaY])
        self.assertEqual(int(labels.sum()), 60)  # the right ending is second in exactly half
        self.assertEqual(int(rocstories_test_labels(SAMPLE_DIR).sum()), 50)
        self.assertTrue(all(x and y and z for x, y, z in zip(teX1, teX2, teX3)))

    def test_sample_is_reproducible(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("make_sample", os.path.join(REPO, "datasets", "make_sample.py"))
        make_sample = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_sample)
        with tempfile.TemporaryDirectory() as out:
            make_sample.main(out)
            for name in (VAL_FILE, TEST_FILE):
                with open(os.path.join(out, name), "rb") as a, open(os.path.join(SAMPLE_DIR, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), name)


class FakeEncoder:
    """Encodes a text as the lengths of its words, recording the batches it was given."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, verbose=True):
        self.calls.append(list(texts))
        return [[len(word) for word in text.split()] for text in texts]


class EncodeDatasetTest(unittest.TestCase):
    def test_text_fields_encoded_labels_pass_through(self):
        trY = np.array([0, 1], dtype=np.int32)
        splits = ((["a bb", "ccc"], ["dd"] * 2, ["e"] * 2, trY), (["ffff"], ["g"], ["hh"]))
        encoder = FakeEncoder()
        (tr, te) = encode_dataset(splits, encoder=encoder)
        self.assertEqual(tr[:3], [[[1, 2], [3]], [[2], [2]], [[1], [1]]])
        self.assertIs(tr[3], trY)
        self.assertEqual(te, [[[4]], [[1]], [[2]]])
        self.assertEqual(len(encoder.calls), 1)  # one batched call for every text


class TransformTest(unittest.TestCase):
    def test_special_ids_and_max_len(self):
        self.assertEqual(special_ids(40478), {"_start_": 40478, "_delimiter_": 40479, "_classify_": 40480})
        self.assertEqual(max_len_for(512), 254)
        self.assertEqual(max_len_for(11), 3)

    def test_layout(self):
        # n_vocab 10: start 10, delimiter 11, classify 12; positions start at 13. max_len 3 truncates.
        X1, X2, X3 = [[1, 2, 3, 4], [5]], [[6], [7, 8, 9, 1]], [[2, 3], [4]]
        xmb, mmb = transform_roc(X1, X2, X3, n_ctx=9, max_len=3, n_vocab=10)
        self.assertEqual((xmb.shape, xmb.dtype, mmb.shape, mmb.dtype), ((2, 2, 9, 2), np.int32, (2, 2, 9), np.float32))
        expected_tokens = np.array([
            [[10, 1, 2, 3, 11, 6, 12, 0, 0], [10, 1, 2, 3, 11, 2, 3, 12, 0]],
            [[10, 5, 11, 7, 8, 9, 12, 0, 0], [10, 5, 11, 4, 12, 0, 0, 0, 0]],
        ])
        expected_mask = (expected_tokens != 0).astype(np.float32)
        np.testing.assert_array_equal(xmb[..., 0], expected_tokens)
        np.testing.assert_array_equal(xmb[..., 1], np.broadcast_to(np.arange(13, 22), (2, 2, 9)))
        np.testing.assert_array_equal(mmb, expected_mask)

    def test_too_long_asserts(self):
        with self.assertRaisesRegex(AssertionError, "exceed n_ctx=5"):
            transform_roc([[1, 2]], [[3]], [[4]], n_ctx=5, max_len=3, n_vocab=10)


class ComputeNCtxTest(unittest.TestCase):
    def test_rule(self):
        train = ([[1] * 5], [[1] * 2], [[1] * 3])  # 5 + 3 + 3 = 11
        valid = ([[1] * 4], [[1] * 6], [[1]])  # 4 + 6 + 3 = 13
        test = ([[1] * 2], [[1]], [[1]])  # 6
        self.assertEqual(compute_n_ctx([train, valid, test], 512), 13)

    def test_test_split_counts(self):
        train = ([[1] * 5], [[1] * 2], [[1] * 3])
        test = ([[1] * 20], [[1] * 9], [[1]])  # 20 + 9 + 3 = 32
        self.assertEqual(compute_n_ctx([train, test], 512), 32)

    def test_truncation_to_max_len_and_cap(self):
        # n_ctx 20: max_len 8, so a 50-token story counts 8 and a 30-token ending 8: 8 + 8 + 3 = 19.
        long = ([[1] * 50], [[1] * 30], [[1] * 2])
        self.assertEqual(compute_n_ctx([long], 20), 19)
        # n_ctx 21: max_len 8 again, 19 <= 21: the min with the CLI n_ctx does not bite.
        self.assertEqual(compute_n_ctx([long], 21), 19)
        # n_ctx 7: max_len 1: 1 + 1 + 3 = 5.
        self.assertEqual(compute_n_ctx([long], 7), 5)
        # Odd n_ctx 5: max_len 0; 0 + 0 + 3 = 3.
        self.assertEqual(compute_n_ctx([long], 5), 3)

    def test_min_with_cli_n_ctx(self):
        # 2 * max_len + 3 < n_ctx whenever max_len >= 0, so the min only bites for n_ctx < 4, where
        # max_len is negative and the original's slices x[:max_len] drop tokens from the end instead.
        # n_ctx 3: max_len -1, so 8 + 8 + 3 = 19 tokens, capped at 3.
        self.assertEqual(compute_n_ctx([([[1] * 9], [[1] * 9], [[1]])], 3), 3)
        self.assertEqual(compute_n_ctx([([[1] * 9], [[1] * 9], [[1]])], 6), 5)


class IterDataTest(unittest.TestCase):
    def test_partial_last_batch(self):
        x, y = np.arange(10), np.arange(10, 20)
        batches = list(iter_data(x, y, n_batch=4))
        self.assertEqual([len(bx) for bx, _ in batches], [4, 4, 2])
        self.assertIsInstance(batches[0], tuple)
        np.testing.assert_array_equal(batches[2][1], [18, 19])

    def test_truncate_drops_partial(self):
        self.assertEqual([b.tolist() for b in iter_data(np.arange(10), n_batch=4, truncate=True)], [[0, 1, 2, 3], [4, 5, 6, 7]])

    def test_single_data_yields_array(self):
        batch = next(iter_data(np.arange(3), n_batch=2))
        self.assertIsInstance(batch, np.ndarray)

    def test_max_batches(self):
        self.assertEqual(len(list(iter_data(np.arange(10), n_batch=2, max_batches=2))), 2)

    def test_verbose(self):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            batches = list(iter_data(np.arange(5), n_batch=2, verbose=True, desc="eval"))
        self.assertEqual(len(batches), 3)


class AnalysisTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        write_data_dir(self.dir, 20, 4)  # test labels 0 1 0 1
        self.pred = os.path.join(self.dir, "ROCStories.tsv")
        self.log = os.path.join(self.dir, "run.jsonl")
        with open(self.log, "w") as f:
            f.write(json.dumps({"desc": "run", "n_iter": 3}) + "\n")
            for va_acc in (70.5, 81.25, 80.0):
                f.write(json.dumps({"n_epochs": 1, "n_updates": 2, "va_cost": 0.5, "va_acc": va_acc}) + "\n")

    def tearDown(self):
        self.tmp.cleanup()

    def write_pred(self, text):
        with open(self.pred, "w") as f:
            f.write(text)

    def test_report(self):
        self.write_pred("index\tprediction\n0\t0\n1\t1\n2\t1\n3\t1\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            valid, test = analysis.rocstories(self.dir, self.pred, self.log)
        self.assertEqual((valid, test), (81.25, 75.0))
        self.assertEqual(out.getvalue(), "ROCStories Valid Accuracy: 81.25\nROCStories Test Accuracy:  75.00\n")

    def test_bad_predictions(self):
        cases = {
            "index,prediction\n0,0\n": ":1: header is",
            "index\tprediction\n0\t0\n1\t1\n": "2 predictions, but the test file has 4 stories",
            "index\tprediction\n0\t0\n1\t2\n2\t0\n3\t0\n": ":3: expected '1\\\\t<0 or 1>'",
            "index\tprediction\n0\t0\n2\t1\n": ":3: expected",
            "": ":1: header is ''",
        }
        for text, pattern in cases.items():
            with self.subTest(text=text):
                self.write_pred(text)
                with self.assertRaises(DataError) as ctx:
                    analysis.rocstories(self.dir, self.pred, self.log)
                self.assertTrue(str(ctx.exception).startswith(self.pred), str(ctx.exception))
                self.assertRegex(str(ctx.exception), pattern)
        os.remove(self.pred)
        with self.assertRaisesRegex(DataError, r"no such file \(the predictions\)"):
            analysis.rocstories(self.dir, self.pred, self.log)

    def test_bad_log(self):
        self.write_pred("index\tprediction\n0\t0\n1\t1\n2\t1\n3\t1\n")
        for text, pattern in {'{"desc": "x"}\n': "no evaluation records", '{}\n{"va_cost": "x"}\n': ":2: evaluation record",
                              '{}\n{"va_cost": 0.5, "va_f1": 70.0}\n': "no 'va_acc' score",
                              '{}\nnot json\n': ":2: not a JSON object"}.items():
            with self.subTest(text=text):
                with open(self.log, "w") as f:
                    f.write(text)
                with self.assertRaisesRegex(DataError, pattern):
                    analysis.rocstories(self.dir, self.pred, self.log)


if __name__ == "__main__":
    unittest.main()
