"""Checkpoints of a run: write, prune, restore the newest readable one, and the flags they belong to.

A checkpoint is a TF checkpoint `ckpt-<update>-e<epoch>p<batch>.*` (model, optimizer, loss scale)
and its JSON sidecar `state-<update>.json` (the loop's state, the run's flags) naming it. The
sidecar is written atomically after the TF files, so a sidecar only ever names a complete TF
checkpoint; each TF prefix is written once (a new name when one update is saved twice, at the
end of an epoch), so a complete checkpoint is never overwritten in place. Files no kept sidecar
names (a killed write, TF's `_temp` folders, stale `.tmp` files) are removed by `prune`.
"""
import json
import os
import shutil
import sys

import numpy as np

from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import atomic_write

# flags that may differ between an interrupted run and its --resume
# (--nan_policy too: a run stopped on a NaN may go on with --resume --nan_policy skip)
RESUME_FREE = ("resume", "save_every", "stop_after_updates", "nan_policy")
PATH_FLAGS = ("log_dir", "save_dir", "data_dir", "submission_dir", "model_dir", "encoder_path", "bpe_path")
KEEP_CHECKPOINTS = 2


def run_flags(command_line):
    """The flags that define a run ({flag: value}), as a resumed run must repeat them (paths normalised: `data/` == `data`)."""
    flags = {k: v for k, v in sorted(command_line.items()) if k not in RESUME_FREE}
    for k in PATH_FLAGS:
        if isinstance(flags.get(k), str):
            flags[k] = os.path.normpath(flags[k])
    return flags


def flag_differences(saved, now):
    """'--lr 0.001 (checkpoint: 0.002)' for each flag that differs."""
    names = sorted(set(saved) | set(now))
    return [f"--{k} {now.get(k)!r} (checkpoint: {saved.get(k)!r})" for k in names if saved.get(k) != now.get(k)]


def rng_to_json(state):
    kind, keys, pos, has_gauss, cached = state
    return [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def rng_from_json(state):
    kind, keys, pos, has_gauss, cached = state
    return (kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


def _warn_unreadable(path, err):
    reason = f"{type(err).__name__}: {err}".splitlines()[0][:160]
    print(f"warning: {path}: unreadable checkpoint ({reason}); falling back to an older one", file=sys.stderr)


class Checkpointer:
    """The checkpoints of one run in `ckpt_dir`; `parts` are the trackables saved (model, optimizer, ...)."""

    def __init__(self, ckpt_dir, parts, flags, *, n_updates_fn):
        import tensorflow as tf
        self.ckpt_dir, self.flags, self.n_updates_fn = ckpt_dir, flags, n_updates_fn
        self.ckpt = tf.train.Checkpoint(**parts)
        self.last_written = None  # TF prefix of the newest checkpoint this run wrote or restored

    def write(self, state):
        """Write the TF checkpoint and the sidecar holding `state` (a JSON-able dict), then prune old ones."""
        n = state["n_updates"]
        name = f"ckpt-{n:08d}-e{state['n_epochs']}p{state['position']}"
        if name == self.last_written:
            return  # already saved at this point (e.g. --save_every and --stop_after_updates together)
        prefix = self.ckpt.write(os.path.join(self.ckpt_dir, name))
        sidecar = dict(state, flags=self.flags, tf_prefix=os.path.basename(prefix))
        self._write_sidecar(os.path.join(self.ckpt_dir, f"state-{n:08d}.json"), sidecar)
        self.last_written = name
        self.prune(KEEP_CHECKPOINTS)

    def _write_sidecar(self, path, sidecar):
        atomic_write(path, lambda f: f.write(json.dumps(sidecar).encode()))

    def sidecars(self):
        return sidecar_names(self.ckpt_dir)

    def prune(self, keep):
        """Keep the newest `keep` checkpoints; remove older sidecars first, then every file none names."""
        if not os.path.isdir(self.ckpt_dir):
            return
        sidecars = self.sidecars()
        kept, old = sidecars[len(sidecars) - keep:] if keep else [], sidecars[:len(sidecars) - keep]
        self._remove_sidecars(old)  # a sidecar goes before its TF files: never a sidecar naming missing files
        self._remove_unnamed_files(kept)

    def _remove_sidecars(self, names):
        for name in names:
            os.unlink(os.path.join(self.ckpt_dir, name))

    def _remove_unnamed_files(self, kept):
        prefixes = set()
        for name in kept:
            try:
                with open(os.path.join(self.ckpt_dir, name), encoding="utf-8") as f:
                    prefixes.add(json.load(f)["tf_prefix"])
            except Exception:  # corrupt: restore_latest skips it; its TF files are not worth keeping
                pass
        for name in os.listdir(self.ckpt_dir):
            if name in kept or not (name.startswith("ckpt-") or name.startswith(".state-")):
                continue
            if any(name == p + ".index" or name.startswith(p + ".data-") for p in prefixes):
                continue
            path = os.path.join(self.ckpt_dir, name)
            if not os.path.isdir(path):
                os.unlink(path)
            elif name.endswith("_temp"):
                shutil.rmtree(path, ignore_errors=True)  # TF's ckpt-..._temp folder of a killed write

    def start_fresh(self):
        """A new run: drop an earlier run's checkpoints (they would outrank this run's when pruned)."""
        if self.sidecars():
            print(f"{self.ckpt_dir}: removing the checkpoints of an earlier run (no --resume)", file=sys.stderr)
        self.prune(keep=0)

    def restore_latest(self):
        """Restore the newest readable checkpoint (older ones as fall-back); returns its state or None."""
        for name in reversed(self.sidecars()):
            path = os.path.join(self.ckpt_dir, name)
            try:
                with open(path, encoding="utf-8") as f:
                    state = json.load(f)
                prefix = os.path.join(self.ckpt_dir, state["tf_prefix"])
            except Exception as err:  # a garbled sidecar
                _warn_unreadable(path, err)
                continue
            self._check_flags(path, state)
            try:
                self.ckpt.read(prefix).assert_existing_objects_matched()
                if self.n_updates_fn() != state["n_updates"]:
                    raise ValueError(f"holds update {self.n_updates_fn()}, its sidecar says {state['n_updates']}")
            except Exception as err:  # truncated or garbled TF files (checksums): fall back
                _warn_unreadable(prefix, err)
                continue
            self.last_written = state["tf_prefix"]
            return state
        if self.sidecars():  # the model may hold half a failed restore: do not train on it
            raise Gpt1Error(f"{self.ckpt_dir}: no readable checkpoint to resume from; remove the folder "
                            "and run again without --resume")
        return None

    def _check_flags(self, path, state):
        """Refuse a checkpoint of a run with other flags, naming each flag that differs."""
        if state.get("flags") == self.flags:
            return
        differences = flag_differences(state["flags"], self.flags) if isinstance(state.get("flags"), dict) else []
        which = f": {'; '.join(differences)}" if differences else ""
        raise Gpt1Error(f"{path}: this checkpoint was made with other flags{which}; resume with the same flags, "
                        "or remove the checkpoint folder to start over")


def sidecar_names(ckpt_dir):
    """The sidecars `state-<update>.json` in `ckpt_dir`, oldest first."""
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(f for f in os.listdir(ckpt_dir) if f.startswith("state-") and f.endswith(".json"))


def newest_checkpoint_update(ckpt_dir):
    """The update of the newest sidecar in `ckpt_dir` (unchecked), or None when there is none."""
    names = sidecar_names(ckpt_dir)
    return int(names[-1][len("state-"):-len(".json")]) if names else None
