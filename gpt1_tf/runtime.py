"""Process-wide settings that only an entry point may choose: TensorFlow's start-up noise, glibc malloc, oneDNN.

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
def quiet_tensorflow(level=2):
    """Hide TensorFlow's C++ start-up lines (CUDA probing, oneDNN and CPU-feature notices).

    Those lines are written to file descriptor 2 before TensorFlow reads TF_CPP_MIN_LOG_LEVEL,
    so the descriptor itself points at /dev/null while TensorFlow is imported and its devices
    are set up (wrap each place that may do either first); later C++ warnings are filtered with
    TF_CPP_MIN_LOG_LEVEL=2 (errors still show), or `level` 3 (errors hidden too: pretrain.py, whose
    cluster runs log gRPC and collective errors on their way to the one line that explains them).
    TensorFlow reads the level once, so the first call (around the import) decides. A no-op when
    the user set TF_CPP_MIN_LOG_LEVEL: their level applies, and everything shows.
    """
    if tf_noise_wanted():
        yield
        return
    os.environ.setdefault(TF_LOG_ENV, str(level))
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


def tune_malloc(mmap_threshold=8 << 20, arena_max=2):
    """Keep glibc's heap from growing step after step (Linux only; a no-op elsewhere).

    TensorFlow's CPU tensors come from malloc. glibc raises its mmap threshold after each large
    free, so the step's 2-10 MB activation and gradient buffers end up in per-thread heaps that
    fragment: full-size training grew ~0.6 GB per update (BENCHMARKS.md). A fixed threshold
    returns every buffer over 8 MB (LM logits, the embedding table's copies and gradients, the
    MLP's widest activations) to the OS when freed and keeps smaller ones in the heap; two arenas
    bound the per-thread heaps. A 1 MB threshold holds memory as well but page-faults every
    mid-size buffer afresh: 5% slower full-size steps (BENCHMARKS.md, run G).
    Process-wide; returns whether it took effect.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold, m_arena_max = -3, -8  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)) and bool(libc.mallopt(m_arena_max, arena_max))
    except (OSError, AttributeError):
        return False


ONEDNN_ALLOCATOR_ENV = "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"  # TensorFlow's own switch, read once, at its first allocation


def prefer_system_allocator():
    """CPU tensors from malloc (with `tune_malloc`'s threshold), not from oneDNN's pool.

    With oneDNN on, TensorFlow serves large CPU tensors from a pool (a BFC allocator) that keeps
    every byte it ever held: a full-size fine-tuning run's RSS stays at its highest step's plus
    the pool's fragments. From malloc, buffers over the mmap threshold go back to the OS when
    freed: the whole `train.py --dataset rocstories` run peaked at 4.77-4.92 GiB against 5.10 GiB,
    for an update 13-18% slower, each large buffer page-faulted afresh (BENCHMARKS.md, run J).
    Must run before TensorFlow's first allocation (before its import, to be safe); a value the
    user set (0 or 1) is kept.
    """
    os.environ.setdefault(ONEDNN_ALLOCATOR_ENV, "1")


# CPU features that give bfloat16 its own arithmetic (dot products, AMX tiles); without them
# oneDNN converts to float32 and back, and bfloat16 is slower than float32 (BENCHMARKS.md, run G)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def cpu_flags():
    """This CPU's feature flags (Linux /proc/cpuinfo); an empty set where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def cpu_model():
    """This CPU's model name (Linux /proc/cpuinfo "model name"; else `platform.processor()`, or "unknown")."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def prepare_bfloat16():
    """Before TensorFlow starts: bfloat16 matmuls on a CPU through oneDNN; returns a note for CPU runs, or None.

    TensorFlow sends bfloat16 matmuls to oneDNN only with its oneDNN graph rewrite on
    (TF_ENABLE_ONEDNN_OPTS, on by default on x86 Linux; set here where unset, so every platform
    gets it); oneDNN then uses AVX512_BF16 or AMX by itself (ONEDNN_MAX_CPU_ISA unset means all).
    A user's explicit TF_ENABLE_ONEDNN_OPTS=0 is kept, with a note: Eigen's bfloat16 is slow.
    """
    os.environ.setdefault(ONEDNN_ENV, "1")
    if os.environ[ONEDNN_ENV] == "0":
        return (f"note: {ONEDNN_ENV}=0: bfloat16 runs on Eigen's kernels, slower than float32 on a CPU; "
                f"unset it to use oneDNN's")
    flags = cpu_flags()
    if flags and not flags & set(NATIVE_BF16_FLAGS):
        return ("note: this CPU has no native bfloat16 arithmetic (avx512_bf16 or amx_bf16): "
                "--mixed_precision bfloat16 is about 2x slower than float32 here")
    return None
