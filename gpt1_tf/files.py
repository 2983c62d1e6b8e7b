"""File helpers shared by the readers and writers: strict UTF-8 reads, CSV records with their lines, atomic writes, a folder lock.

No TensorFlow.
"""
import contextlib
import csv
import errno
import fcntl
import io
import os
import secrets
import shutil
import stat
import sys

from gpt1_tf.errors import DataError, Gpt1Error


def _temp_file(path):
    """Create a new temporary file next to `path`; (fd, name).

    os.open with mode 0o666 lets the umask decide the permissions, as a plain open() would
    (tempfile.mkstemp would make every output 0600). A file that replaces an existing one keeps
    that file's permissions, as writing into it would.
    """
    directory, base = os.path.split(path)
    while True:
        tmp = os.path.join(directory or ".", f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
    except FileNotFoundError:
        pass
    return fd, tmp


def atomic_write(path, write_fn, mode="wb"):
    """Write through a temporary file in the same directory, then rename: never a half-written file."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = _temp_file(path)
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


def atomic_save(path, save_fn):
    """`save_fn(tmp_path)` writes a file (e.g. Keras's `model.save`); it is renamed to `path` when whole.

    The temporary name keeps `path`'s extension, for writers that insist on one.
    """
    path = os.fspath(path)
    fd, tmp = _temp_file(path)
    os.close(fd)
    os.unlink(tmp)
    tmp += os.path.splitext(path)[1]
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    except IsADirectoryError:
        raise DataError(path, f"is a folder, not a file (the {what})") from None
    except OSError as err:
        raise DataError(path, f"cannot read the {what} ({err.strerror})") from None
    try:
        return raw.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, f"not valid UTF-8 (byte 0x{raw[err.start]:02x})", line) from None


def csv_rows(path, text):
    """Yield (first line, row) for each non-blank CSV record; a malformed record raises DataError."""
    # strict: an unterminated quote (a truncated file) raises instead of silently closing the field.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problem = str(err)
            if "unexpected end of data" in problem:
                problem = "unterminated quoted field (is the file truncated?)"
            raise DataError(path, f"malformed CSV: {problem}", start) from None
        # A blank line (a trailing newline, say) is no record: skip it, but count its line.
        if row:
            yield start, row
        start = reader.line_num + 1


def check_output_folder(path, flag, shown=None):
    """Raise a one-line error unless `path` is, or can be created as, a writable folder.

    Checked before any work starts, so that a run does not train for hours and then fail to
    write its results. Nothing is created.
    """
    path = os.path.abspath(path)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    shown = shown or path  # what the flag names (a file in this folder, say)
    if not os.path.isdir(probe):
        raise Gpt1Error(f"{probe}: exists and is not a folder, so {flag} {shown} cannot be used")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise Gpt1Error(f"{probe}: not writable, so {flag} {shown} cannot be used")


class FolderLock:
    """An exclusive lock on a folder for one process (flock on `<folder>/.lock`).

    The kernel drops the lock when its process ends, however it ends, so a killed run never
    leaves it stuck. A second process gets a one-line Gpt1Error naming the holder's pid.
    """

    def __init__(self, folder, what="run"):
        self.folder, self.what, self.fd = folder, what, None

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise Gpt1Error(f"{self.folder}: another {self.what} (pid {holder}) is using this folder; wait for "
                                "it to end or choose another --save_dir or --desc") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_earlier_output(path, names):
    """Whether folder `path` is an earlier output of a writer that leaves exactly `names` (marker first).

    It must hold the marker `names[0]` (a file only that writer leaves) and nothing but `names`:
    anything else means the folder is not only that writer's, and nothing in it may be removed.
    """
    if not os.path.isdir(path):
        return False
    found = set(os.listdir(path))
    return names[0] in found and found <= set(names)


def check_new_output(path, flag, *, earlier=None):
    """Raise a one-line Gpt1Error unless `path` can take a new output folder: new, empty, or (`earlier`, a
    writer's names, marker first) an earlier output of that writer, which is then replaced. Nothing is created.
    """
    check_output_folder(path, flag)  # a file at `path` is refused there
    if not os.path.exists(path):
        return
    if os.listdir(path) and not (earlier and is_earlier_output(path, earlier)):
        what = " or an earlier output of this program" if earlier else ""
        raise Gpt1Error(f"{path}: exists and is not an empty folder{what}; choose a new or empty folder for "
                        f"{flag} (nothing in it is removed)")


def check_new_file(path, flag):
    """Raise a one-line Gpt1Error unless a new file can be written at `path` (its folder may be created)."""
    if os.path.exists(path):
        raise Gpt1Error(f"{path}: exists; remove it or choose another {flag}")
    check_output_folder(os.path.dirname(os.path.abspath(path)), flag, shown=os.path.abspath(path))


@contextlib.contextmanager
def atomic_folder(path, *, earlier=None, flag="the output folder"):
    """Yield a temporary folder beside `path`, renamed to `path` when the block ends without error.

    `path` must not exist or be an empty folder (an export never mixes with older files), unless
    `earlier` names what a writer leaves (marker first) and `path` holds only that writer's earlier
    output (`is_earlier_output`): then it is swapped for the new folder once that is whole, and its
    files, by name, then the folder are removed. Nothing else is ever removed. On an error (or
    Ctrl-C) the temporary folder is removed, so there is no partial output.
    """
    path = os.path.abspath(os.fspath(path))
    check_new_output(path, flag, earlier=earlier)
    if earlier and os.path.isdir(path) and os.listdir(path):
        token = secrets.token_hex(4)
        new, gone = f"{path}.new-{token}", f"{path}.old-{token}"
        with atomic_folder(new) as tmp:
            yield tmp
        os.rename(path, gone)
        os.rename(new, path)
        _remove_earlier(gone, earlier)
        return
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    os.mkdir(tmp)
    try:
        yield tmp
        if os.path.isdir(path):
            os.rmdir(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)  # the temporary folder this block made, and only that


def _remove_earlier(folder, names):
    """Remove a replaced earlier output: its files by name, then the folder (kept, with a note, if more is there)."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))
    try:
        os.rmdir(folder)
    except OSError:
        print(f"note: {folder}: the replaced output held files it had not written; they are kept there",
              file=sys.stderr)
