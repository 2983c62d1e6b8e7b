"""Start pretrain.py as a cluster of worker processes on 127.0.0.1 (free ports), bounded in time, cleaned up.

    procs = start_workers(2, args, cwd)            # TF_CONFIG set per worker
    results = finish(procs, timeout=120)           # [(exit code, stdout, stderr)], each killed if still running
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from helpers import REPO


def free_ports(n):
    """n distinct ports free at this moment on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_workers(n, args, cwd, *, ports=None, only=None, env=None, per_worker=None):
    """Popen of pretrain.py for each worker index (or those in `only`), stdout/stderr to files in cwd.

    `per_worker` {index: [args]} appends arguments for one worker (its own folders, say).
    """
    ports = ports or free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(n) if only is None else only:
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        out, err = (open(os.path.join(cwd, f"worker{i}.{kind}"), "w") for kind in ("out", "err"))
        proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "pretrain.py"), *args, *(per_worker or {}).get(i, [])], cwd=cwd, stdout=out, stderr=err,
            env=_env(tf_config, env),
            start_new_session=True)
        proc.files = (out, err)
        proc.index = i
        procs.append(proc)
    return procs


def _env(tf_config, extra):
    """The worker's environment: TF_CONFIG, the repo importable, TensorFlow's start-up lines hidden by pretrain.py."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return dict(env, TF_CONFIG=tf_config, PYTHONPATH=REPO, **(extra or {}))


def kill(proc):
    """SIGKILL the worker's whole process group (TensorFlow may ignore SIGTERM while it waits on peers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def finish(procs, timeout):
    """Wait for every worker up to `timeout` seconds in all, kill what is left; [(code, stdout, stderr)]."""
    deadline = time.time() + timeout
    results = []
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            kill(proc)
        for f in proc.files:
            f.close()
        cwd_files = [f.name for f in proc.files]
        with open(cwd_files[0]) as out, open(cwd_files[1]) as err:
            results.append((proc.returncode, out.read(), err.read()))
    return results


def wait_for_line(path, text, timeout):
    """Block until the file at `path` contains `text` (True), or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        time.sleep(0.2)
    return False
