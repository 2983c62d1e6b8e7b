"""Ctrl-C in a long run (train.py, pretrain.py): stop after the current update with a checkpoint.

The loop polls `StopOnInterrupt.requested` after each update; when set, it checkpoints and raises
`Interrupted`, whose message the program prints before exiting with status 130. A second Ctrl-C
raises KeyboardInterrupt at once; `interrupted_message` then says what there is to resume from.
"""
import signal
import sys
import threading

from gpt1_tf.train.checkpoints import newest_checkpoint_update

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that Ctrl-C ended


class Interrupted(Exception):
    """Ctrl-C stopped the run between two updates, after a checkpoint; the message says how to go on."""

    def __init__(self, n_updates):
        super().__init__(f"interrupted: checkpoint written at update {n_updates}; continue with --resume")


class StopOnInterrupt:
    """The first Ctrl-C asks the loop to stop after the current update (with a checkpoint); a second stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: stopping after this update with a checkpoint (Ctrl-C again to stop at once)",
              file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def interrupted_message(ckpt_dir):
    """What to do after a Ctrl-C that stopped the run at once: the truth about what can be resumed."""
    n = newest_checkpoint_update(ckpt_dir)
    if n is None:
        return "interrupted before the first checkpoint: nothing to resume; run again without --resume"
    return f"interrupted: the newest checkpoint is at update {n}; continue from it with --resume"
