"""File helpers: atomic writes give the permissions a plain open() would; output folders are checked up front."""
import os
import stat
import tempfile
import unittest

from gpt1_tf import files
from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import atomic_folder, atomic_write, check_output_folder


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class AtomicWritePermissionsTest(unittest.TestCase):

    def test_new_file_follows_the_umask(self):
        root = tempfile.mkdtemp()
        for umask in (0o022, 0o002, 0o077):
            with self.subTest(umask=oct(umask)):
                old = os.umask(umask)
                try:
                    atomic_write(os.path.join(root, f"new{umask}"), lambda f: f.write(b"x"))
                    with open(os.path.join(root, f"plain{umask}"), "wb") as f:
                        f.write(b"x")
                finally:
                    os.umask(old)
                self.assertEqual(mode(os.path.join(root, f"new{umask}")), 0o666 & ~umask)
                self.assertEqual(mode(os.path.join(root, f"new{umask}")), mode(os.path.join(root, f"plain{umask}")))

    def test_replaced_file_keeps_its_permissions(self):
        path = os.path.join(tempfile.mkdtemp(), "out")
        atomic_write(path, lambda f: f.write(b"1"))
        os.chmod(path, 0o640)
        atomic_write(path, lambda f: f.write(b"2"))
        self.assertEqual(mode(path), 0o640)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"2")
        self.assertEqual(os.listdir(os.path.dirname(path)), ["out"])  # no temporary file left


class OutputFolderTest(unittest.TestCase):

    def test_checks(self):
        root = tempfile.mkdtemp()
        check_output_folder(os.path.join(root, "a", "b"), "--x")  # may be created: fine, nothing created
        self.assertEqual(os.listdir(root), [])
        with open(os.path.join(root, "f"), "w") as f:
            f.write("x")
        for path in (os.path.join(root, "f"), os.path.join(root, "f", "deeper")):
            with self.assertRaisesRegex(Gpt1Error, "exists and is not a folder, so --x"):
                check_output_folder(path, "--x")


class AtomicFolderTest(unittest.TestCase):
    """An output folder is written whole; only a writer's own earlier output is ever replaced, by name."""

    NAMES = ("marker.json", "a.npy", "b.npy")

    def write(self, folder, names):
        os.makedirs(folder, exist_ok=True)
        for name in names:
            with open(os.path.join(folder, name), "w") as f:
                f.write(name)

    def test_an_earlier_output_is_replaced(self):
        out = os.path.join(tempfile.mkdtemp(), "out")
        self.write(out, self.NAMES)
        with atomic_folder(out, earlier=self.NAMES) as tmp:
            self.write(tmp, self.NAMES[:2])
        self.assertCountEqual(os.listdir(out), self.NAMES[:2])
        self.assertEqual(os.listdir(os.path.dirname(out)), ["out"])  # the old folder is gone, nothing else

    def test_other_files_are_never_removed(self):
        root = tempfile.mkdtemp()
        for names in (("a.npy", "b.npy"), (*self.NAMES, "mine.txt")):  # no marker; a file the writer never writes
            with self.subTest(names=names):
                out = os.path.join(root, f"out{len(names)}")
                self.write(out, names)
                with self.assertRaisesRegex(Gpt1Error, "not an empty folder or an earlier output"):
                    with atomic_folder(out, earlier=self.NAMES):
                        self.fail("the block must not run")
                self.assertCountEqual(os.listdir(out), names)

    def test_a_file_that_arrives_during_the_write_is_kept(self):
        root = tempfile.mkdtemp()
        out = os.path.join(root, "out")
        self.write(out, self.NAMES)
        with atomic_folder(out, earlier=self.NAMES) as tmp:
            self.write(tmp, self.NAMES)
            self.write(out, ["arrived.txt"])  # another program writes into the old folder meanwhile
        old, = [n for n in os.listdir(root) if n.startswith("out.old-")]
        self.assertEqual(os.listdir(os.path.join(root, old)), ["arrived.txt"])
        self.assertCountEqual(os.listdir(out), self.NAMES)

    def test_outputs_in_the_way(self):
        root = tempfile.mkdtemp()
        self.write(root, ["afile"])
        for path in (os.path.join(root, "afile"), os.path.join(root, "afile", "sub")):
            with self.subTest(path=path):
                with self.assertRaisesRegex(Gpt1Error, "afile: exists and is not a folder"):
                    with atomic_folder(path):
                        self.fail("the block must not run")
        self.assertRaisesRegex(Gpt1Error, "exists; remove it", files.check_new_file, os.path.join(root, "afile"), "--out")


if __name__ == "__main__":
    unittest.main()
