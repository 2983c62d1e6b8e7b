"""The machine a benchmark figure was taken on: CPU model, the instruction sets that matter, oneDNN."""
import os
import platform

# what decides float32 / bfloat16 speed on x86: vector width, native bfloat16 dot products, AMX tiles
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu():
    """{"model": ..., "flags": [...], "onednn": ...} of this machine (Linux /proc/cpuinfo; else platform)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if model != "unknown" and flags:
                    break
    except OSError:
        pass
    return {"model": model, "flags": [f for f in FLAGS if f in flags],
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux)")}
