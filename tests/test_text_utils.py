"""TextEncoder: golden ids from the original code, BPE by hand on a tiny vocabulary, file checks."""

import json
import os
import tempfile
import unittest

import ftfy

from gpt1_tf.errors import DataError
from gpt1_tf.data.text_utils import TextEncoder, get_pairs, text_standardize

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "tokenizer.json")

# A tiny vocabulary: merges ranked by line, the first line a version header (skipped).
TINY_MERGES = "#version: 0.2\nl o\nlo w</w>\ne r</w>\na a\n"
TINY_ENCODER = {
    "l": 0, "o": 1, "w": 2, "e": 3, "r": 4, "lo": 5, "low</w>": 6, "er</w>": 7, "a": 8, "aa": 9,
    "a</w>": 10, "o</w>": 11,
}


def write(folder, name, content):
    """Write `content` (str or bytes) to folder/name and return the path."""
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(content.encode("utf-8") if isinstance(content, str) else content)
    return path


class GoldenTest(unittest.TestCase):
    """The 112 texts encoded by the original TextEncoder (spaCy blank English tokenizer)."""

    @classmethod
    def setUpClass(cls):
        with open(FIXTURE, encoding="utf-8") as f:
            cls.cases = json.load(f)["cases"]
        cls.encoder = TextEncoder()

    def test_there_are_112_cases(self):
        self.assertEqual(len(self.cases), 112)

    def test_standardize(self):
        for case in self.cases:
            with self.subTest(text=case["text"]):
                self.assertEqual(text_standardize(ftfy.fix_text(case["text"])), case["standardized"])

    def test_batched_ids(self):
        ids = self.encoder.encode([case["text"] for case in self.cases], verbose=False)
        for case, got in zip(self.cases, ids):
            with self.subTest(text=case["text"]):
                self.assertEqual(got, case["ids"])

    def test_one_text_at_a_time_with_fresh_cache(self):
        encoder = TextEncoder()
        for case in self.cases:
            encoder.cache = {}
            with self.subTest(text=case["text"]):
                self.assertEqual(encoder.encode([case["text"]], verbose=False), [case["ids"]])

    def test_backslash_is_not_spaced_out(self):
        # The original's non-raw regex string turned its backslash alternative into a literal '+'.
        self.assertEqual(text_standardize("back\\slash a/b"), "back\\slash a / b")

    def test_verbose_gives_the_same_ids_and_library_use_is_quiet(self):
        import contextlib
        import io
        texts = [case["text"] for case in self.cases[:10]]
        quiet, bar = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(quiet):
            ids = self.encoder.encode(texts)  # a library call: no progress bar unless asked for
        with contextlib.redirect_stderr(bar):
            self.assertEqual(self.encoder.encode(texts, verbose=True), ids)
        self.assertEqual(quiet.getvalue(), "")
        self.assertIn("/10", bar.getvalue())


class TinyBpeTest(unittest.TestCase):
    """BPE on a hand-made vocabulary, pieces worked out by hand."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        folder = self.tmp.name
        self.encoder = TextEncoder(
            write(folder, "encoder.json", json.dumps(TINY_ENCODER)), write(folder, "vocab.bpe", TINY_MERGES)
        )

    def tearDown(self):
        self.tmp.cleanup()

    def test_ranks_follow_line_order_after_the_header(self):
        self.assertEqual(self.encoder.bpe_ranks, {("l", "o"): 0, ("lo", "w</w>"): 1, ("e", "r</w>"): 2, ("a", "a"): 3})

    def test_get_pairs(self):
        self.assertEqual(get_pairs(("l", "o", "w</w>")), {("l", "o"), ("o", "w</w>")})

    def test_pieces(self):
        cases = {
            "low": "low</w>",  # (l,o) rank 0, then (lo,w</w>) rank 1
            "lower": "lo w er</w>",  # (l,o), then (e,r</w>); (lo,w) is not a merge
            "lolo": "lo l o</w>",  # (l,o</w>) is not (l,o): only the first pair merges
            "aaaa": "aa a a</w>",  # left to right, no overlap; a</w> stays apart
            "x": "x</w>",  # one symbol: no pairs
        }
        for token, pieces in cases.items():
            with self.subTest(token=token):
                self.assertEqual(self.encoder.bpe(token), pieces)

    def test_cache(self):
        self.encoder.bpe("lower")
        self.assertEqual(self.encoder.cache["lower"], "lo w er</w>")

    def test_encode_lowercases_and_unknown_pieces_are_0(self):
        # "Low" -> low</w> (6); "lower" -> lo w er</w> (5 2 7); "xyz" -> x y z</w>, none known.
        self.assertEqual(self.encoder.encode(["Low lower xyz"], verbose=False), [[6, 5, 2, 7, 0, 0, 0]])

    def test_encode_refuses_a_str(self):
        # A str is iterable: without the check each character would be encoded as a text.
        for bad in ("low", "", b"low"):
            with self.subTest(texts=bad), self.assertRaises(TypeError) as ctx:
                self.encoder.encode(bad, verbose=False)
            message = str(ctx.exception)
            self.assertRegex(message, r"^encode\(\) takes a list of texts, got a (str|bytes): use encode\(\[text\]\)$")

    def test_encode_refuses_an_element_that_is_not_a_str(self):
        for texts, where in (
            (["low", None], "texts[1] has type NoneType"),
            ([b"low"], "texts[0] has type bytes"),
            (["low", "lower", ["low"]], "texts[2] has type list"),
            ([6, 5], "texts[0] has type int"),
        ):
            with self.subTest(texts=texts), self.assertRaises(TypeError) as ctx:
                self.encoder.encode(texts, verbose=False)
            self.assertEqual(str(ctx.exception), f"encode() takes a list of texts, but {where}, not str")

    def test_encode_takes_any_iterable_of_texts(self):
        expected = [[6], [5, 2, 7]]
        self.assertEqual(self.encoder.encode(("low", "lower"), verbose=False), expected)
        self.assertEqual(self.encoder.encode((t for t in ["low", "lower"]), verbose=False), expected)

    def test_newline_rule(self):
        # spaCy makes the " \n " of text_standardize a token "\n ", whose symbols ("\n", " </w>")
        # never merge (no merge line can hold a newline) and join to "\n  </w>": the rule fires.
        self.assertEqual(self.encoder.bpe("\n "), "\n</w>")
        self.assertEqual([t.text for t in self.encoder.nlp.tokenizer(text_standardize("low\nlow"))], ["low", "\n ", "low"])

    def test_decode(self):
        self.assertEqual(self.encoder.decode([6, 5, 2, 7]), "low lower")
        self.assertEqual(self.encoder.decode([12, 6, 13, 6, 14]), "_start_ low _delimiter_ low _classify_")
        for bad in (-1, 15):
            with self.subTest(id=bad), self.assertRaisesRegex(ValueError, f"id {bad} is out of range"):
                self.encoder.decode([bad])


class RealVocabularyTest(unittest.TestCase):
    """Default paths, specials and decoding with the shipped vocabulary."""

    @classmethod
    def setUpClass(cls):
        cls.encoder = TextEncoder()

    def test_default_paths(self):
        self.assertEqual(len(self.encoder.encoder), 40478)
        self.assertEqual(len(self.encoder.bpe_ranks), 40000)
        self.assertEqual(self.encoder.decoder[239], ".</w>")
        self.assertEqual(self.encoder.encoder["\n</w>"], 40477)

    def test_decode_round_trip_of_ordinary_text(self):
        texts = ["Hello, World! It's fine.", "Line one\nline two", "snake_case_name & C++"]
        ids = self.encoder.encode(texts, verbose=False)
        decoded = [self.encoder.decode(x) for x in ids]
        self.assertEqual(decoded, ["hello , world ! it 's fine .", "line one \n line two", "snake _ case _ name & c + +"])
        self.assertEqual(self.encoder.encode(decoded, verbose=False), ids)

    def test_newline_token(self):
        self.assertEqual(self.encoder.encode(["Hello\n\nworld"], verbose=False), [[3570, 40477, 1276]])

    def test_decode_specials(self):
        self.assertEqual(self.encoder.decode([40478, 3570, 40479, 1276, 40480]), "_start_ hello _delimiter_ world _classify_")
        with self.assertRaisesRegex(ValueError, "out of range"):
            self.encoder.decode([40481])

    def test_empty(self):
        self.assertEqual(self.encoder.encode([], verbose=False), [])
        self.assertEqual(self.encoder.encode(["", "  \n "], verbose=False), [[], []])
        self.assertEqual(self.encoder.decode([]), "")


class VocabularyFileTest(unittest.TestCase):
    """A bad vocabulary file raises a one-line DataError naming it (and the line, for merges)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.good_encoder = write(self.tmp.name, "good.json", json.dumps(TINY_ENCODER))
        self.good_merges = write(self.tmp.name, "good.bpe", TINY_MERGES)

    def tearDown(self):
        self.tmp.cleanup()

    def assert_data_error(self, encoder_path, bpe_path, bad_path, pattern):
        with self.assertRaises(DataError) as ctx:
            TextEncoder(encoder_path, bpe_path)
        message = str(ctx.exception)
        self.assertTrue(message.startswith(bad_path + ":"), message)
        self.assertRegex(message, pattern)
        self.assertNotIn("\n", message)

    def test_bad_encoder_files(self):
        cases = {
            "missing": (None, r"no such file \(the BPE vocabulary\)"),
            "not_json": (b"{not json", "not valid JSON"),
            "latin1": (b'{"\xe9": 0}', r":1: not valid UTF-8 \(byte 0xe9\)"),
            "list": (b"[1, 2]", "JSON object"),
            "empty": (b"{}", "JSON object"),
            "str_id": (b'{"a": "0"}', "not an integer"),
            "bool_id": (b'{"a": true}', "not an integer"),
            "gap": (b'{"a": 0, "b": 2}', r"ids must be 0\.\.1"),
            "duplicate": (b'{"a": 0, "b": 0}', r"ids must be 0\.\.1"),
        }
        for name, (content, pattern) in cases.items():
            with self.subTest(case=name):
                path = os.path.join(self.tmp.name, name + ".json")
                if content is not None:
                    write(self.tmp.name, name + ".json", content)
                self.assert_data_error(path, self.good_merges, path, pattern)

    def test_bad_merges_files(self):
        cases = {
            "missing": (None, r"no such file \(the BPE merges\)"),
            "latin1": (b"#version: 0.2\nl o\n\xe9 x\n", r":3: not valid UTF-8 \(byte 0xe9\)"),
            "three": (b"#version: 0.2\nl o\na b c\n", r":3: expected two space-separated symbols"),
            "one": (b"#version: 0.2\nl\n", r":2: expected two space-separated symbols"),
            "double_space": (b"#version: 0.2\nl  o\n", r":2: expected two"),
            "tab": (b"#version: 0.2\nl\to\n", r":2: expected two"),
            "empty": (b"", r":1: expected a version header line and a newline at the end"),
            "no_final_newline": (b"#version: 0.2\nl o", r":2: expected a version header line and a newline"),
        }
        for name, (content, pattern) in cases.items():
            with self.subTest(case=name):
                path = os.path.join(self.tmp.name, name + ".bpe")
                if content is not None:
                    write(self.tmp.name, name + ".bpe", content)
                self.assert_data_error(self.good_encoder, path, path, pattern)


class BenchEncoderTest(unittest.TestCase):
    """The benchmark runs and both of its methods give the same ids (smoke test, tiny sizes)."""

    def test_bench_runs(self):
        import contextlib
        import io
        import sys
        from unittest import mock

        from helpers import REPO
        with mock.patch.object(sys, "path", [os.path.join(REPO, "benchmarks"), *sys.path]):
            import bench_encoder  # benchmarks/ is a folder of scripts beside the package, not installed

        self.assertEqual(bench_encoder.make_texts(5, non_ascii=0.5), bench_encoder.make_texts(5, non_ascii=0.5))
        out = io.StringIO()
        argv = ["bench_encoder", "--n_texts", "30", "--repeats", "1", "--non_ascii", "0.5"]
        with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(out):
            bench_encoder.main()
        result = json.loads(out.getvalue())
        self.assertEqual((result["n_texts"], result["identical"]), (30, True))


if __name__ == "__main__":
    unittest.main()
