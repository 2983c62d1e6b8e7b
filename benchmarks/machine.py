"""The machine a benchmark figure was taken on: CPU model, the instruction sets that matter, oneDNN."""
import os

from gpt1_tf.runtime import NATIVE_BF16_FLAGS, ONEDNN_ENV, cpu_flags, cpu_model

# what decides float32 / bfloat16 speed on x86: vector width, FMA, native bfloat16 arithmetic, AMX tiles
FLAGS = ("avx2", "fma", "avx512f") + NATIVE_BF16_FLAGS + ("amx_tile",)


def cpu():
    """{"model": ..., "flags": [...], "onednn": ...} of this machine (Linux /proc/cpuinfo; else platform)."""
    flags = cpu_flags()
    return {"model": cpu_model(), "flags": [f for f in FLAGS if f in flags],
            "onednn": os.environ.get(ONEDNN_ENV, "default (on for x86 Linux)"),
            "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default (all)")}
