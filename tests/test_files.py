"""File helpers: atomic writes give the permissions a plain open() would; output folders are checked up front."""
import os
import stat
import tempfile
import unittest

from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import atomic_write, check_output_folder


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


if __name__ == "__main__":
    unittest.main()
