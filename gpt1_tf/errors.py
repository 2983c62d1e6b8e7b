"""User-facing errors: one line, naming the file (where there is one) and the problem."""


class Gpt1Error(Exception):
    """A problem with the user's input (a file, a flag). The entry points print it on one line and exit 1."""


class ConfigError(Gpt1Error, ValueError):
    """Settings that are invalid or contradict each other (a flag, a config object's field)."""


class DataError(Gpt1Error):
    """A data, vocabulary or weight file is missing or malformed."""

    def __init__(self, path, problem, line=None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.problem, self.line = path, problem, line

    def __reduce__(self):  # back from a worker process (pickle) as it was raised there
        return type(self), (self.path, self.problem, self.line)
