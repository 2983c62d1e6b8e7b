"""File helpers shared by the readers and writers: strict UTF-8 reads, atomic writes. No TensorFlow."""
import os
import tempfile

from gpt1_tf.errors import DataError


def atomic_write(path, write_fn, mode="wb"):
    """Write through a temporary file in the same directory, then rename: never a half-written file."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path, what, *, missing=None, bom=False):
    """The text of `path`, decoded as strict UTF-8 (`bom`: a leading byte-order mark is dropped).

    A missing or unreadable file, or a byte that is not UTF-8 (reported with its line), raises a
    one-line DataError; `missing` replaces the default message for a file that does not exist.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(path, missing or f"no such file (the {what})") from None
    except OSError as err:
        raise DataError(path, f"cannot read the {what} ({err.strerror})") from None
    try:
        return raw.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, f"not valid UTF-8 (byte 0x{raw[err.start]:02x})", line) from None
