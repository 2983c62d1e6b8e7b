"""Test-only launcher: `python tests/launch_train.py [train.py flags]` is train.py with a fault injected.

The library holds no test hooks: this script wraps library functions from outside, then runs
`gpt1_tf.cli.train.main`. GPT1_TF_TEST_KILL_AT=<point>:<k> makes the process SIGKILL itself the k-th
time it reaches <point>:

  tf_written   after a checkpoint's TF files, before its JSON sidecar (Checkpointer._write_sidecar)
  eval         inside an evaluation: after the train split, before the valid split (evaluate.iter_apply)
  best_params  right after an evaluation saved best_params.jl (Run.save_params within Run.evaluate)
  pruning      mid-prune: old sidecars removed, their TF files not yet (Checkpointer._remove_sidecars)
"""
import functools
import os
import signal
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gpt1_tf.train import checkpoints, evaluate, finetune  # noqa: E402

KILL_POINTS = ("tf_written", "eval", "best_params", "pruning")


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Killer:
    """Counts arrivals at one point; SIGKILLs the process at the k-th."""

    def __init__(self, spec):
        self.point, _, k = spec.partition(":")
        assert self.point in KILL_POINTS, f"unknown kill point {self.point!r}; one of {KILL_POINTS}"
        self.k, self.count = int(k or 1), 0

    def arrive(self):
        self.count += 1
        if self.count == self.k:
            die()


def wrap(owner, name, before=None, after=None):
    """Replace owner.name by a wrapper calling `before(*args)` / `after(result, *args)` around it."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if before:
            before(*args, **kwargs)
        result = original(*args, **kwargs)
        if after:
            after(result, *args, **kwargs)
        return result
    setattr(owner, name, wrapper)


def install(killer):
    if killer.point == "tf_written":
        wrap(checkpoints.Checkpointer, "_write_sidecar", before=lambda *a: killer.arrive())
    elif killer.point == "eval":
        wrap(evaluate, "iter_apply", before=lambda *a, desc=None, **kw: desc == "eval valid" and killer.arrive())
    elif killer.point == "pruning":
        wrap(checkpoints.Checkpointer, "_remove_sidecars", after=lambda result, self, names: names and killer.arrive())
    elif killer.point == "best_params":
        in_evaluation = []
        wrap(finetune.Run, "evaluate", before=lambda *a: in_evaluation.append(1), after=lambda *a: in_evaluation.pop())
        wrap(finetune.Run, "save_params", after=lambda *a: in_evaluation and killer.arrive())


if __name__ == "__main__":
    spec = os.environ.get("GPT1_TF_TEST_KILL_AT")
    if spec:
        install(Killer(spec))
    from gpt1_tf.cli.train import main  # noqa: E402
    sys.exit(main())
