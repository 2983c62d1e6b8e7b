"""Batched generation throughput: GPT1CausalLM.generate against transformers' batched generate, in one run.

    python benchmarks/bench_generate.py                                   # full size (117M), 16 prompts x 128 new tokens
    python benchmarks/bench_generate.py --n_layer 2 --n_embd 64 --n_head 4 # a tiny model (a quick check)

Greedy, --batch prompts of --prompt_tokens random token ids each (equal lengths: transformers'
openai-gpt takes no left padding), --new_tokens new ones, random weights (N(0, 0.02), the original's
init: speed does not depend on the values), float32. Ours: `GPT1CausalLM.generate` on keras-hub's
{"token_ids", "padding_mask"} (the KV-cache loop of `gpt1_tf.lm.generation`, traced once, then
reused). The peer: `OpenAIGPTLMHeadModel.generate(do_sample=False)` on the same weights (written
with `gpt1_tf.weights.hf`) and the same batch, in the peer venv of `bench_peer.py`
(`peer_hf_generate.py`); openai-gpt has no key/value cache in transformers. Each: the median of
--repeats timed runs after one warm-up. Prints one JSON line: seconds, new tokens/s, the ratio, and
the share of new tokens equal in both.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import machine  # noqa: E402 (this script's folder, on the path above)

N_VOCAB = 40478


def build_lm(args):
    import keras
    from gpt1_tf.models.backbone import GPT1Backbone
    from gpt1_tf.models.causal_lm import GPT1CausalLM
    keras.utils.set_random_seed(0)
    backbone = GPT1Backbone(num_layers=args.n_layer, num_heads=args.n_head, hidden_dim=args.n_embd,
                            max_sequence_length=512)
    lm = GPT1CausalLM(backbone)
    lm.compile(sampler="greedy", jit_compile=args.xla)
    return lm


def median_time(fn, repeats):
    fn()  # warm-up: tracing (and XLA compilation)
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def run_peer(args, lm, prompts):
    import bench_peer
    from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH
    from gpt1_tf.weights import hf
    python = bench_peer.ensure_peer_venv(args.peer_venv)
    folder = os.path.join(tempfile.mkdtemp(), "hf")
    weights = dataclasses.replace(lm.backbone.to_weights(), special_rows=None)  # the language model only
    hf.write(weights, folder, encoder_path=DEFAULT_ENCODER_PATH, bpe_path=DEFAULT_BPE_PATH)
    cmd = [python, "-I", os.path.join(HERE, "peer_hf_generate.py"), folder, json.dumps(prompts.tolist()),
           str(args.new_tokens), str(args.repeats), str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        raise RuntimeError(f"peer_hf_generate.py failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--prompt_tokens", type=int, default=16)
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--xla", action="store_true", help="compile our decoding loop with XLA")
    p.add_argument("--no_peer", action="store_true", help="ours only")
    p.add_argument("--peer_venv", default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads for the peer (0: its default)")
    args = p.parse_args()
    if args.peer_venv is None:
        import bench_peer
        args.peer_venv = bench_peer.PEER_VENV_DEFAULT
    lm = build_lm(args)
    prompts = np.random.RandomState(1).randint(0, N_VOCAB, (args.batch, args.prompt_tokens)).astype(np.int32)
    inputs = {"token_ids": prompts, "padding_mask": np.ones(prompts.shape, bool)}
    max_length = args.prompt_tokens + args.new_tokens
    ours_s, out = median_time(lambda: lm.generate(inputs, max_length=max_length), args.repeats)
    ours = out["token_ids"][:, args.prompt_tokens:]
    n_new = args.batch * args.new_tokens
    result = {"cpu": machine.cpu(), "cpus": os.cpu_count(), "n_layer": args.n_layer, "n_embd": args.n_embd,
              "batch": args.batch, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
              "xla": args.xla, "ours_s": round(ours_s, 3), "ours_tokens_per_s": round(n_new / ours_s, 1)}
    if not args.no_peer:
        peer = run_peer(args, lm, prompts)
        theirs = np.array(peer.pop("tokens"))
        result.update(peer, peer_tokens_per_s=round(n_new / peer["peer_s"], 1),
                      ours_vs_peer=round(peer["peer_s"] / ours_s, 2),
                      same_tokens_share=round(float((theirs == ours).mean()), 4))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
