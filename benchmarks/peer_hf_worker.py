"""Time HuggingFace's PyTorch GPT-1 (`transformers.OpenAIGPTDoubleHeadsModel`) on benchmarks/bench.py batches.

Run by `run_peer` of benchmarks/bench_peer.py, with the peer venv's python (`-I`) and by file path.
gpt1_tf is not installed in that venv: the script imports `gpt1_tf.network.tokens` (the token layout,
standard library only) from the checkout it lies in, with the repository root on sys.path for that
import only, and nothing else of gpt1_tf. torch/transformers are imported only in `main`, so that
`hf_inputs` can be tested without them.

    python -I benchmarks/peer_hf_worker.py --batches B.npz --steps 5 --warmup 1 --n_layer 12 --n_embd 768 \\
        --n_head 12 --n_vocab 40478 --pdrop 0.1 --lm_coef 0.5 [--threads N]

Batches: the bench's npz, X [S, B, 2, n_ctx, 2] int32, M [S, B, 2, n_ctx] float32, Y [S, B] int32,
cycled. The model: the original's shape (gelu_new, i.e. the tanh gelu, for afn="gelu"; dropout on
the embeddings, the attention weights, both residual branches and before the classifier; causal
mask; LM head tied to the token embedding; the classifier reads the hidden state at the first
`_classify_`), randomly initialised (OpenAI's weights are not needed to time it). One update:
zero_grad, forward, loss = mc_loss + lm_coef * lm_loss, backward, clip_grad_norm_(1.0),
AdamW.step(), in model.train(). Evaluation: forwards in model.eval() under torch.no_grad().

Prints ONE JSON line: `peer_train_step_s`, `peer_train_step_cpu_s`, `peer_eval_step_s`,
`peer_eval_no_lm_head_step_s` (medians, seconds), `peer_peak_rss_mb`, `peer_rss_before_model_mb`,
`peer_n_ctx`, `peer_threads`, `peer_n_params`, `peer_last_loss`, `peer_optimizer`,
`torch_version`, `transformers_version`.

What is not like-for-like with benchmarks/bench.py's train step:

- Sequence length: HF gets the batch as given, every sequence padded to n_ctx (as the original,
  our `original` mode and HF's own ROCStories example do); our optimized path trims each batch to
  its longest sequence and packs the dense layers. No attention_mask is passed (the original
  passed none either): the padding comes after each sequence, which the causal mask hides from it.
- LM head: HF computes LM logits at EVERY position of every sequence, in training (and copies the
  shifted logits before the loss) and in evaluation, although no evaluation loss reads them. That
  is our `original` mode's `lm_head="full"`; our optimized path computes them only where M counts,
  and our evaluation not at all. Hence two evaluation figures: `peer_eval_step_s`, HF's
  `model(...)` forward, compares with `original_mode.eval_with_lm_head_step_s`;
  `peer_eval_no_lm_head_step_s`, `model.transformer` + `model.multiple_choice_head` (the same work
  as our evaluation: clf logits and loss), with `eval_step_s`.
- LM logits span n_vocab + 3 rows (HF keeps positions in a table of their own), ours and the
  original's n_vocab + 3 + n_ctx rows of the shared embedding (0.2% more at full size).
- LM loss: HF's is the mean over all counted tokens of the batch, ours (the original's) the mean
  over sequences of each sequence's mean; M is taken as 0/1 (HF cannot weight a token). Same
  work, different value.
- Optimizer: torch's fused AdamW (`fused=True`: the default of HF's Trainer since torch 2.8, the
  counterpart of our XLA-fused Adam update), decoupled weight decay 0.01 on matrices only (the
  original's l2 with vector_l2 off, the same update form), at a constant lr 6.25e-5 (the
  original's warmup_linear schedule scales a scalar: no cost).
- Eager PyTorch, no torch.compile. Threads: torch's default is one per physical core,
  TensorFlow's one per logical core; pass the same --threads to both to level them.
- The inputs are made torch tensors once, before timing; our bench hands NumPy arrays to each
  step (a copy, negligible). Peak RSS includes torch's and transformers' imports, as ours
  includes TensorFlow's.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

# The repository root on sys.path just for this import, then off again: its datasets/ package
# (and train.py ...) must not shadow what torch and transformers import.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_added = REPO not in sys.path
if _added:
    sys.path.append(REPO)
try:
    from gpt1_tf.network.tokens import N_SPECIAL, clf_id  # the token layout: the standard library only
finally:
    if _added:
        sys.path.remove(REPO)

LR, WEIGHT_DECAY, MAX_GRAD_NORM = 6.25e-5, 0.01, 1.0
IGNORE = -100  # the label torch's cross entropy (and so HF's LM loss) skips


def hf_inputs(X, M, Y, n_vocab):
    """One bench batch as OpenAIGPTDoubleHeadsModel's inputs: a dict of int64 NumPy arrays.

    X [B, 2, n_ctx, 2] (token ids, position ids), M [B, 2, n_ctx], Y [B] ->
    - input_ids [B, 2, n_ctx]: the token ids as they are (our specials follow the vocabulary,
      `gpt1_tf.network.tokens`: HF's vocab_size is n_vocab + N_SPECIAL);
    - mc_token_ids [B, 2]: the position of the first `_classify_` (`clf_id(n_vocab)`), 0 where a
      sequence has none, where our model pools too;
    - labels [B, 2, n_ctx]: the token where M counts, IGNORE elsewhere and at position 0. HF's LM
      loss at position t predicts labels[t + 1]; ours predicts token t + 1 weighted by M[t + 1]:
      the same tokens count. Position 0 is never predicted (HF drops labels[..., 0]);
    - mc_labels [B]: Y.
    HF numbers positions 0 .. n_ctx-1 itself: X's position ids must be consecutive (ValueError).
    """
    tokens, positions = X[..., 0], X[..., 1]
    n_ctx = tokens.shape[-1]
    if not np.array_equal(positions, positions[..., :1] + np.arange(n_ctx)):
        raise ValueError("position ids (X[..., 1]) are not consecutive in every sequence: HF's GPT cannot take them")
    labels = np.where(M > 0, tokens, IGNORE)
    labels[..., 0] = IGNORE
    return {
        "input_ids": tokens.astype(np.int64),
        "mc_token_ids": np.argmax(tokens == clf_id(n_vocab), axis=-1).astype(np.int64),
        "labels": labels.astype(np.int64),
        "mc_labels": np.asarray(Y).astype(np.int64),
    }


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", required=True, help="npz with X [S,B,2,n_ctx,2], M [S,B,2,n_ctx], Y [S,B]")
    p.add_argument("--steps", type=int, default=5, help="timed training updates, then as many eval forwards")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates first (and untimed eval forwards)")
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--n_vocab", type=int, default=40478)
    p.add_argument("--pdrop", type=float, default=0.1, help="every dropout rate")
    p.add_argument("--lm_coef", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's choice)")
    return p


def rss_mb():
    """Peak resident set size of this process so far, MB (ru_maxrss is in KB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    import torch
    import transformers

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = np.load(args.batches)
    X, M, Y = d["X"], d["M"], d["Y"]
    n_ctx = X.shape[3]
    batches = [{k: torch.from_numpy(v) for k, v in hf_inputs(X[s], M[s], Y[s], args.n_vocab).items()}
               for s in range(len(X))]
    rss_before_model = rss_mb()

    config = transformers.OpenAIGPTConfig(
        vocab_size=args.n_vocab + N_SPECIAL, n_positions=n_ctx, n_embd=args.n_embd, n_layer=args.n_layer,
        n_head=args.n_head, afn="gelu", resid_pdrop=args.pdrop, embd_pdrop=args.pdrop, attn_pdrop=args.pdrop,
        layer_norm_epsilon=1e-5, summary_type="cls_index", summary_use_proj=True, summary_proj_to_labels=True,
        summary_activation=None, summary_first_dropout=args.pdrop, summary_last_dropout=0.0)
    model = transformers.OpenAIGPTDoubleHeadsModel(config)
    params = list(model.parameters())  # the tied embedding / LM head once
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() > 1], "weight_decay": WEIGHT_DECAY},
         {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}], lr=LR, fused=True)

    def train_step(b):
        optimizer.zero_grad(set_to_none=True)
        out = model(input_ids=b["input_ids"], mc_token_ids=b["mc_token_ids"], labels=b["labels"],
                    mc_labels=b["mc_labels"])
        loss = out.mc_loss + args.lm_coef * out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        return loss

    def eval_step(b):  # HF's forward: LM logits at every position included
        return model(input_ids=b["input_ids"], mc_token_ids=b["mc_token_ids"], mc_labels=b["mc_labels"]).mc_loss

    def eval_step_no_lm_head(b):  # what our evaluation computes: clf logits and losses
        h = model.transformer(input_ids=b["input_ids"]).last_hidden_state
        logits = model.multiple_choice_head(h, b["mc_token_ids"]).squeeze(-1)
        return torch.nn.functional.cross_entropy(logits, b["mc_labels"])

    def timed(step, i):
        c0, t0 = time.process_time(), time.perf_counter()
        value = float(step(batches[i % len(batches)]))  # torch on the CPU: done when it returns
        return time.perf_counter() - t0, time.process_time() - c0, value

    model.train()
    for i in range(args.warmup):
        timed(train_step, i)
    train = [timed(train_step, args.warmup + i) for i in range(args.steps)]

    model.eval()
    evals = {}
    with torch.no_grad():
        for step in (eval_step, eval_step_no_lm_head):
            for i in range(max(args.warmup, 1)):
                timed(step, i)
            evals[step] = statistics.median(timed(step, i)[0] for i in range(args.steps))

    print(json.dumps({
        "peer_model": "transformers.OpenAIGPTDoubleHeadsModel",
        "peer_train_step_s": round(statistics.median(t[0] for t in train), 4),
        "peer_train_step_cpu_s": round(statistics.median(t[1] for t in train), 4),
        "peer_eval_step_s": round(evals[eval_step], 4),
        "peer_eval_no_lm_head_step_s": round(evals[eval_step_no_lm_head], 4),
        "peer_peak_rss_mb": rss_mb(),
        "peer_rss_before_model_mb": rss_before_model,
        "peer_n_ctx": int(n_ctx),
        "peer_threads": torch.get_num_threads(),
        "peer_n_params": sum(p.numel() for p in params),
        "peer_last_loss": round(train[-1][2], 4),
        "peer_optimizer": f"torch.optim.AdamW(lr={LR}, weight_decay={WEIGHT_DECAY} on matrices, fused=True)",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
