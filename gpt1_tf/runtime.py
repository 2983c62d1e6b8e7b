"""Process-wide settings that only an entry point may choose: TensorFlow's start-up noise, glibc malloc.

The library never calls these by itself; `train.py` and the benchmarks do.
"""
import contextlib
import ctypes
import ctypes.util
import os
import sys

TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"  # TensorFlow's own switch; set it (to 0) to see every C++ line
_USER_TF_LOG_LEVEL = os.environ.get(TF_LOG_ENV)  # as the user started the process, before we set it


def tf_noise_wanted():
    """Whether the user asked for TensorFlow's C++ log lines (by setting TF_CPP_MIN_LOG_LEVEL)."""
    return _USER_TF_LOG_LEVEL is not None


@contextlib.contextmanager
def quiet_tensorflow():
    """Hide TensorFlow's C++ start-up lines (CUDA probing, oneDNN and CPU-feature notices).

    Those lines are written to file descriptor 2 before TensorFlow reads TF_CPP_MIN_LOG_LEVEL,
    so the descriptor itself points at /dev/null while TensorFlow is imported and its devices
    are set up (wrap each place that may do either first); later C++ warnings are filtered with
    TF_CPP_MIN_LOG_LEVEL=2 (errors still show). A no-op when the user set TF_CPP_MIN_LOG_LEVEL:
    their level applies, and everything shows.
    """
    if tf_noise_wanted():
        yield
        return
    os.environ[TF_LOG_ENV] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def tune_malloc(mmap_threshold=1 << 20, arena_max=2):
    """Keep glibc's heap from growing step after step (Linux only; a no-op elsewhere).

    TensorFlow's CPU tensors come from malloc. glibc raises its mmap threshold after each large
    free, so the step's 2-10 MB activation and gradient buffers end up in per-thread heaps that
    fragment: full-size training grew ~0.6 GB per update (BENCHMARKS.md). A fixed threshold
    returns every buffer over 1 MB to the OS when freed; two arenas bound the per-thread heaps.
    Process-wide; returns whether it took effect.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold, m_arena_max = -3, -8  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)) and bool(libc.mallopt(m_arena_max, arena_max))
    except (OSError, AttributeError):
        return False
