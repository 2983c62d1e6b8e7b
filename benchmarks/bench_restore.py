"""Peak RSS that reading a full-size `best_params.jl` back adds: `restore_params` against whole-array assignment.

    python benchmarks/bench_restore.py [--n_ctx 77] [--repeats 2]

Writes a full-size params file (random weights) to a temporary folder, then in a fresh process
per measurement builds the model, resets the peak RSS (`/proc/self/clear_refs`, Linux) and reads
the file back: `block` is `gpt1_tf.weights.pretrained.restore_params` (checked, then read and
assigned in place block by block); `whole` maps each array and assigns it whole (the code before
BENCHMARKS.md's run J). Prints one JSON line: KiB added at the peak and after, per way.
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def status_kib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def measure(way, path, n_ctx):
    """In this process: (KiB added at the peak, KiB added after) by reading `path` back `way`."""
    import numpy as np
    from gpt1_tf.runtime import quiet_tensorflow
    with quiet_tensorflow():
        from gpt1_tf.network.config import ModelConfig
        from gpt1_tf.network.model import TransformerModel
        from gpt1_tf.weights import pretrained
        model = TransformerModel(ModelConfig(n_vocab=40478, n_ctx=n_ctx))
    if way == "write":
        pretrained.save_params(path, pretrained.get_params(model), model.cfg)
        return None
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = status_kib("VmRSS")
    if way == "block":
        pretrained.restore_params(model, path)
    else:
        arrays = pretrained.read_params_file(path, mmap=True)
        for i, p in enumerate(model.params_in_order()):
            p.assign(np.asarray(arrays[i], dtype=np.float32))
            arrays[i] = None
    return status_kib("VmHWM") - before, status_kib("VmRSS") - before


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_ctx", type=int, default=77)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--way", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.way:
        print(json.dumps(measure(args.way, args.path, args.n_ctx)))
        return
    path = os.path.join(tempfile.mkdtemp(), "best_params.jl")

    def run(way):
        out = subprocess.run([sys.executable, __file__, "--way", way, "--path", path, "--n_ctx", str(args.n_ctx)],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    run("write")
    result = {way: [run(way) for _ in range(args.repeats)] for way in ("block", "whole")}
    print(json.dumps({"kib_added_peak_after": result, "n_ctx": args.n_ctx}))


if __name__ == "__main__":
    main()
