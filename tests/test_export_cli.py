"""`python -m gpt1_tf.export`'s flags and --out: checked before the source is read, one line, exit 1, nothing written.

- an --out under a file, for every --to, is refused before the source is read (a missing source is
  not even looked at); a .keras file in a folder that does not exist yet gets its folder made;
- --n_ctx is refused where it would be ignored (--to hf, shards) and outside 8..512 (0 was "all");
- a corrupt .keras file (random bytes, a truncated real one) is "not a readable .keras file", not
  "File not found".
"""
import contextlib
import io
import os
import tempfile

import numpy as np
import tensorflow as tf

from helpers import FIXTURES
from gpt1_tf.cli import export, generate
from gpt1_tf.weights import formats

BARE = os.path.join(FIXTURES, "hf", "bare")


def run_export(*args):
    """export.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = export.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


class ExportCliTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.file, self.old = os.path.join(self.tmp, "afile"), os.path.join(self.tmp, "old.keras")
        for path in (self.file, self.old):
            with open(path, "w") as f:
                f.write("in the way")

    def assert_refused(self, result, *words):
        code, out, err = result
        self.assertEqual(code, 1, out + err)
        self.assertLen(err.strip().splitlines(), 1, err)
        self.assertTrue(err.startswith("error: "), err)
        for word in words:
            self.assertIn(word, err)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["afile", "old.keras"])  # nothing written, no temporary

    def test_an_out_under_a_file_is_refused_before_the_source_is_read(self):
        missing = os.path.join(self.tmp, "no_such_source")
        for to, out in (("hf", "afile/sub"), ("shards", "afile/sub"), ("saved_model", "afile/sub"),
                        ("keras", "afile/m.keras"), ("hf", "afile")):
            for source in (BARE, missing):
                with self.subTest(to=to, out=out, source=source):
                    result = run_export(source, "--to", to, "--out", os.path.join(self.tmp, out))
                    self.assert_refused(result, self.file, "--out")
                    self.assertNotIn("read ", result[1])  # the source was not read first

    def test_a_keras_out_needs_its_name_and_no_file_there(self):
        self.assert_refused(run_export(BARE, "--to", "keras", "--out", os.path.join(self.tmp, "m.h5")), ".keras")
        self.assert_refused(run_export(BARE, "--to", "keras", "--out", self.old), self.old, "exists")
        self.assert_refused(run_export(BARE, "--to", "keras", "--out", self.file), ".keras")

    def test_a_keras_file_in_a_new_folder(self):
        out = os.path.join(self.tmp, "new", "sub", "m.keras")
        code, _, err = run_export(BARE, "--to", "keras", "--out", out, "--n_ctx", "8")
        self.assertEqual(code, 0, err)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["m.keras"])
        weights = formats.read(out)
        self.assertEqual(weights.positions.shape, (8, 32))

    def test_n_ctx_where_it_would_be_ignored_or_out_of_range(self):
        for to in ("hf", "shards"):
            self.assert_refused(run_export(BARE, "--to", to, "--out", os.path.join(self.tmp, "o"), "--n_ctx", "64"),
                                "--n_ctx", "--to keras", f"--to {to}")
        for to, out in (("keras", "m.keras"), ("saved_model", "o")):
            for n_ctx in ("0", "-1", "7", "513"):
                with self.subTest(to=to, n_ctx=n_ctx):
                    self.assert_refused(run_export(BARE, "--to", to, "--out", os.path.join(self.tmp, out),
                                                   "--n_ctx", n_ctx), f"--n_ctx must be in 8..512, got {n_ctx}")

    def test_a_corrupt_keras_file(self):
        source = os.path.join(tempfile.mkdtemp(), "m.keras")
        self.assertEqual(run_export(BARE, "--to", "keras", "--out", source, "--n_ctx", "8")[0], 0)
        with open(source, "rb") as f:
            whole = f.read()
        corrupt = {"random": np.random.RandomState(0).bytes(100), "truncated": whole[:len(whole) // 2]}
        for name, data in corrupt.items():
            path = os.path.join(os.path.dirname(source), f"{name}.keras")
            with open(path, "wb") as f:
                f.write(data)
            with self.subTest(name=name):
                result = run_export(path, "--to", "hf", "--out", os.path.join(self.tmp, "o"))
                self.assert_refused(result, path, "not a readable .keras file")
                self.assertNotIn("not found", result[2].lower())
                err = io.StringIO()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                    self.assertEqual(generate.main(["--params", path, "--prompt", "x"]), 1)
                self.assertIn(f"{path}: not a readable .keras file", err.getvalue())
                self.assertNotIn("not found", err.getvalue().lower())


if __name__ == "__main__":
    tf.test.main()
