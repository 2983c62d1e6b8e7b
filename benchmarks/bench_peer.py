"""The peer figure of `python benchmarks/bench.py --peer`: HuggingFace's PyTorch GPT-1 timed on the same batches.

    from bench_peer import PEER_VENV_DEFAULT, ensure_peer_venv, run_peer   # benchmarks/ on sys.path
    ensure_peer_venv(PEER_VENV_DEFAULT)           # once: a venv with CPU torch + transformers
    peer = run_peer("batches.npz", steps=5, warmup=1, n_layer=12, n_embd=768, n_head=12,
                    n_vocab=40478, pdrop=0.1, lm_coef=0.5)
    peer["peer_train_step_s"] / ours["train_step_s"]   # the ratio

torch and transformers are not dependencies of this project: `ensure_peer_venv` installs them into
a virtual environment of their own, and `run_peer` times `transformers.OpenAIGPTDoubleHeadsModel`
there by running `peer_hf_worker.py` (beside this file) in a subprocess, so that this module
imports neither TensorFlow nor torch (nor gpt1_tf) and the peer's peak RSS is its own. The batches
are the bench's npz (`python benchmarks/bench.py --write_batches FILE.npz`). What the peer does
differently from our train step is listed in `peer_hf_worker.py`'s docstring.
"""
import json
import os
import subprocess
import sys

PEER_VENV_DEFAULT = os.path.expanduser("~/.cache/gpt1_tf/peer-hf-venv")
# Pinned: an unpinned `torch` resolves on Linux to a CUDA build of several GB (with its nvidia-*
# wheels); a CPU wheel of this version is what the project's machines have at hand.
TORCH_VERSION = "2.13.0"
PEER_REQUIREMENTS = (f"torch=={TORCH_VERSION}", "transformers", "numpy")
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_hf_worker.py")
# Whether the venv is ready: the packages import and torch is the pinned release (local labels
# such as "+cpu" aside).
_READY_CHECK = ("import numpy, torch, transformers; "
                f"assert torch.__version__.split('+')[0] == {TORCH_VERSION!r}, torch.__version__")


def venv_python(path):
    """The interpreter of the virtual environment at `path`."""
    if os.name == "nt":
        return os.path.join(path, "Scripts", "python.exe")
    return os.path.join(path, "bin", "python")


def _last_lines(proc, n):
    """The last `n` non-empty lines a finished subprocess wrote to stderr (else stdout)."""
    text = proc.stderr or proc.stdout or ""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-n:]) if lines else "(no output)"


def ensure_peer_venv(path=PEER_VENV_DEFAULT, *, quiet=True):
    """Create the peer venv at `path` if needed, install PEER_REQUIREMENTS into it; its python's path.

    Idempotent: returns at once when the packages already import there (the pinned torch). With
    `quiet=False` the venv and pip commands print their progress. Raises RuntimeError, naming the
    step and its last error line, when the venv cannot be created or pip fails.
    """
    path = os.path.abspath(os.path.expanduser(path))
    python = venv_python(path)

    def run(cmd, what):
        if not quiet:
            print(f"peer venv: {what}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=quiet, text=True)
        if proc.returncode:
            detail = _last_lines(proc, 1) if quiet else "see its output above"
            raise RuntimeError(f"peer venv: {what} failed (exit {proc.returncode}): {detail}")

    if os.path.exists(python) and subprocess.run([python, "-I", "-c", _READY_CHECK],
                                                 capture_output=True).returncode == 0:
        return python
    if not os.path.exists(python):
        run([sys.executable, "-m", "venv", path], f"creating {path} with `{sys.executable} -m venv`")
    run([python, "-m", "pip", "install", "--disable-pip-version-check", *(["-q"] if quiet else []),
         *PEER_REQUIREMENTS], f"pip install {' '.join(PEER_REQUIREMENTS)} into {path}")
    return python


def run_peer(batches_npz, *, steps, warmup, n_layer, n_embd, n_head, n_vocab, pdrop, lm_coef, threads=0,
             venv=None):
    """Time HF's OpenAIGPTDoubleHeadsModel on the bench batches in `batches_npz`; its figures (a dict).

    Runs `peer_hf_worker.py` with the python of the venv at `venv` (default PEER_VENV_DEFAULT,
    made by `ensure_peer_venv`) and returns the JSON object of its last output line: at least
    `peer_train_step_s` and `peer_eval_step_s` (medians, seconds), `peer_peak_rss_mb`,
    `torch_version`, `transformers_version`. `threads` > 0 sets torch's thread count (else torch's
    own choice). Raises RuntimeError with the tail of the worker's stderr when it fails.
    """
    venv = os.path.abspath(os.path.expanduser(venv or PEER_VENV_DEFAULT))
    python = venv_python(venv)
    if not os.path.exists(python):
        raise RuntimeError(f"peer: no venv at {venv} (create it with ensure_peer_venv of benchmarks/bench_peer.py, "
                           "or run benchmarks/bench.py --peer)")
    options = dict(steps=steps, warmup=warmup, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_vocab=n_vocab,
                   pdrop=pdrop, lm_coef=lm_coef, threads=threads)
    # -I: neither the worker's folder nor PYTHONPATH nor the user's site-packages goes on sys.path:
    # the venv's own packages only. The worker adds the repo root itself, only to import
    # gpt1_tf.network.tokens (the repo root's datasets/ package would shadow HF's `datasets`).
    cmd = [python, "-I", WORKER, "--batches", os.path.abspath(batches_npz)]
    cmd += [arg for k, v in options.items() for arg in (f"--{k}", str(v))]
    # the model is randomly initialised: nothing to fetch from the hub
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"peer: {os.path.basename(WORKER)} failed (exit {proc.returncode}) with {python}:\n"
                           + _last_lines(proc, 15))
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"peer: {os.path.basename(WORKER)} printed no JSON line last: "
                           f"{lines[-1] if lines else '(nothing)'}") from None
