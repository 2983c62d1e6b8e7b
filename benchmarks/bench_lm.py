"""GPT-1 as a language model: generation tokens/s (KV cache, no cache, HuggingFace) and pretraining tokens/s.

    python benchmarks/bench_lm.py [--new_tokens 256] [--peer]              # the full 117M model
    python benchmarks/bench_lm.py --n_layer 2 --n_embd 64 --n_head 4        # a tiny one

Generation: greedy, one prompt of --prompt_tokens random token ids, --new_tokens new ones, random
weights (N(0, 0.02), as the original's init; speed does not depend on the values), float32, after
one warm-up run (tracing and compilation excluded). Three ways, in one run on the same weights:
- `cache`: `gpt1_tf.lm.generation.Generator` (one pass per new token over cached keys and values);
- `no_cache`: each new token re-runs the whole prefix (one traced function, the prefix length varies);
- `peer` (--peer): transformers' `OpenAIGPTLMHeadModel.generate(do_sample=False)` on the same
  weights (written with `gpt1_tf.weights.hf`), in the peer venv of `bench_peer.py`; openai-gpt has no
  key/value cache in transformers, so it re-runs the prefix too. Its tokens are compared with ours.

Pretraining: `gpt1_tf.train.pretraining.LMTrainer.train_step` on random windows, dropout 0.1, one
device: median seconds per update of --pretrain_batch windows of --pretrain_ctx tokens, and tokens/s.
Prints one JSON line, with the CPU model.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import machine  # noqa: E402 (this script's folder, on the path above)

N_VOCAB = 40478


def build_model(args, n_ctx):
    import keras
    from gpt1_tf.network.config import ModelConfig
    from gpt1_tf.network.model import TransformerModel
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(n_ctx=n_ctx, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer)
    return TransformerModel(cfg)


def timed(fn, repeats):
    fn()  # warm-up: tracing, compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def no_cache_fn(model):
    """Greedy decoding that re-runs the whole prefix for every new token (one traced function)."""
    import tensorflow as tf
    from gpt1_tf.network.heads import token_logits
    from gpt1_tf.network.model import with_positions

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32)])
    def next_token(ids):
        h, we = model.transformer.hidden(with_positions(ids, model.cfg))
        return tf.argmax(token_logits(h[:, -1], we, model.cfg.n_vocab), -1, output_type=tf.int32)

    def run(prompt, n):
        ids = np.asarray(prompt, np.int32)[None]
        for _ in range(n):
            ids = np.concatenate([ids, next_token(ids).numpy()[:, None]], 1)
        return ids[0, len(prompt):]
    return run


def bench_generation(args, model, prompt):
    from gpt1_tf.lm.generation import Generator
    generator = Generator(model, jit_compile=args.xla)
    cache_s, ours = timed(lambda: generator.generate(prompt, args.new_tokens)[0], args.repeats)
    out = {"cache_s": round(cache_s, 3), "cache_tokens_per_s": round(args.new_tokens / cache_s, 1)}
    if not args.skip_no_cache:
        run = no_cache_fn(model)
        no_cache_s, theirs = timed(lambda: run(prompt, args.new_tokens), 1)
        out.update(no_cache_s=round(no_cache_s, 3), no_cache_tokens_per_s=round(args.new_tokens / no_cache_s, 1),
                   no_cache_same_tokens=bool(np.array_equal(ours, theirs)))
    return out, ours


def bench_peer_generation(args, model, prompt, ours):
    import bench_peer
    from gpt1_tf.weights import hf, pretrained
    from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH
    from gpt1_tf.weights.convert import from_params
    python = bench_peer.ensure_peer_venv(args.peer_venv)
    tmp = tempfile.mkdtemp()
    weights = from_params(pretrained.get_params(model), model.cfg)
    weights.clf = weights.head = weights.special_rows = None  # the language model only
    hf.write(weights, f"{tmp}/hf", encoder_path=DEFAULT_ENCODER_PATH, bpe_path=DEFAULT_BPE_PATH)
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_hf_generate.py")
    cmd = [python, "-I", worker, f"{tmp}/hf", json.dumps([int(i) for i in prompt]), str(args.new_tokens),
           str(args.repeats), str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        raise RuntimeError(f"peer_hf_generate.py failed:\n{proc.stderr[-2000:]}")
    peer = json.loads(proc.stdout.strip().splitlines()[-1])
    peer["peer_same_tokens"] = peer.pop("tokens") == [int(t) for t in ours]
    peer["peer_tokens_per_s"] = round(args.new_tokens / peer["peer_s"], 1)
    return peer


def bench_pretraining(args):
    import tensorflow as tf
    from gpt1_tf.network.config import ModelConfig, OptConfig
    from gpt1_tf.train.pretraining import LMTrainer
    cfg = ModelConfig(n_ctx=args.pretrain_ctx, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer)
    trainer = LMTrainer(cfg, OptConfig(lr=2.5e-4, lr_schedule="warmup_cosine", t_total=1000), tf.distribute.get_strategy())
    rng = np.random.RandomState(0)

    def step():
        return trainer.train_step(tf.constant(rng.randint(0, N_VOCAB, (args.pretrain_batch, args.pretrain_ctx)), tf.int32))
    step_s, _ = timed(step, args.repeats)
    tokens = args.pretrain_batch * args.pretrain_ctx
    return {"pretrain_step_s": round(step_s, 3), "pretrain_tokens_per_s": round(tokens / step_s, 1),
            "pretrain_batch": args.pretrain_batch, "pretrain_ctx": args.pretrain_ctx}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--prompt_tokens", type=int, default=16)
    p.add_argument("--new_tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each (median); the no-cache loop: 1")
    p.add_argument("--xla", action="store_true", help="compile the cached loop with XLA")
    p.add_argument("--skip_no_cache", action="store_true")
    p.add_argument("--peer", action="store_true", help="also transformers' generate, in the peer venv")
    p.add_argument("--peer_venv", default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads for the peer (0: its default)")
    p.add_argument("--pretrain_batch", type=int, default=4)
    p.add_argument("--pretrain_ctx", type=int, default=512)
    p.add_argument("--skip_pretrain", action="store_true")
    args = p.parse_args()
    if args.peer_venv is None:
        import bench_peer
        args.peer_venv = bench_peer.PEER_VENV_DEFAULT
    model = build_model(args, n_ctx=512)
    prompt = np.random.RandomState(1).randint(0, N_VOCAB, args.prompt_tokens).tolist()
    result = {"cpu": machine.cpu(), "cpus": os.cpu_count(), "n_layer": args.n_layer, "n_embd": args.n_embd,
              "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "xla": args.xla}
    generation, ours = bench_generation(args, model, prompt)
    result.update(generation)
    if args.peer:
        result.update(bench_peer_generation(args, model, prompt, ours))
        result["cache_vs_peer"] = round(result["cache_tokens_per_s"] / result["peer_tokens_per_s"], 2)
    if not args.skip_pretrain:
        result.update(bench_pretraining(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
