"""Time HuggingFace's `OpenAIGPTLMHeadModel` pretraining update: the peer figure of benchmarks/bench_pretrain.py.

Run by bench_pretrain.py with the peer venv's python (`-I`); imports nothing of gpt1_tf.

    python -I benchmarks/peer_hf_pretrain.py --n_layer 12 --n_embd 768 --n_head 12 --n_vocab 40478 \\
        --n_ctx 512 --n_batch 64 --n_micro 16 --pdrop 0.1 --updates 2 --warmup 1 --seed 0 \\
        --dtype float32 --threads 2

The model: random init, the original's shape (tanh gelu, dropout --pdrop on the embeddings, the
attention weights and both residual branches, the LM head tied to the token embedding over
--n_vocab rows, as our pretraining head), model.train(). One update: zero_grad; per micro-batch
of n_batch / n_micro windows, forward with labels = the windows (HF shifts them: the next-token
loss, as ours), loss / n_micro backward (gradient accumulation); clip_grad_norm_(1.0); fused AdamW
(weight decay 0.01 on matrices). bfloat16: `torch.autocast("cpu", torch.bfloat16)` around each
forward (the parameters, their gradients and AdamW stay float32). Warm-up: --warmup updates of
one micro-batch (nothing to trace in eager PyTorch), then --updates timed whole updates.

Prints ONE JSON line: s_per_update (median), update_s, last_loss, peak_rss_mb, threads,
torch_matmul_flops (torch's own square-matmul rate in the dtype, for reference), versions.
"""
import argparse
import contextlib
import json
import resource
import statistics
import time

import numpy as np

LR, WEIGHT_DECAY, MAX_GRAD_NORM = 2.5e-4, 0.01, 1.0


def rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def matmul_flops(torch, dtype, n=2048, repeats=3):
    """torch's best square matmul rate at size n in dtype (FLOP/s)."""
    a = torch.rand(n, n).to(dtype)
    a @ a
    best = min(_seconds(lambda: a @ a) for _ in range(repeats))
    return 2 * n ** 3 / best


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("n_layer", "n_embd", "n_head", "n_vocab", "n_ctx", "n_batch", "n_micro", "updates", "warmup", "seed",
                 "threads"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--pdrop", type=float, required=True)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], required=True)
    args = p.parse_args()
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = transformers.OpenAIGPTConfig(
        vocab_size=args.n_vocab, n_positions=args.n_ctx, n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
        afn="gelu", resid_pdrop=args.pdrop, embd_pdrop=args.pdrop, attn_pdrop=args.pdrop, layer_norm_epsilon=1e-5)
    model = transformers.OpenAIGPTLMHeadModel(config)
    model.train()
    params = list(model.parameters())  # the tied embedding / LM head once
    optimizer = torch.optim.AdamW(
        [{"params": [q for q in params if q.dim() > 1], "weight_decay": WEIGHT_DECAY},
         {"params": [q for q in params if q.dim() <= 1], "weight_decay": 0.0}], lr=LR, fused=True)
    bf16 = args.dtype == "bfloat16"
    rng = np.random.RandomState(args.seed)

    def update(n_windows, n_micro):
        ids = torch.from_numpy(rng.randint(0, args.n_vocab, (n_windows, args.n_ctx)).astype(np.int64))
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        size, total = n_windows // n_micro, 0.0
        for m in range(n_micro):
            micro = ids[m * size:(m + 1) * size]
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                loss = model(input_ids=micro, labels=micro).loss
            (loss / n_micro).backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        return time.perf_counter() - start, total / n_micro

    for _ in range(args.warmup):
        update(args.n_batch // args.n_micro, 1)
    timed = [update(args.n_batch, args.n_micro) for _ in range(args.updates)]
    print(json.dumps({
        "s_per_update": statistics.median(t for t, _ in timed), "update_s": [round(t, 2) for t, _ in timed],
        "last_loss": round(timed[-1][1], 4), "peak_rss_mb": rss_mb(), "threads": torch.get_num_threads(),
        "n_params": sum(q.numel() for q in params),
        "torch_matmul_flops": matmul_flops(torch, torch.bfloat16 if bf16 else torch.float32),
        "torch_version": torch.__version__, "transformers_version": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
