"""User-facing errors: one line, naming the file (where there is one) and the problem."""


class Gpt1Error(Exception):
    """A problem with the user's input (a file, a flag). `train.py` prints it on one line and exits 1."""


class DataError(Gpt1Error):
    """A data, vocabulary or weight file is missing or malformed."""

    def __init__(self, path, problem, line=None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.problem, self.line = path, problem, line


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
