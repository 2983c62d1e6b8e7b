"""Does PEFT load what `save_lora_weights` writes onto the published base, and compute our logits?

    python benchmarks/check_peft_adapter.py [--peer_venv ~/.cache/gpt1_tf/peer-hf-venv]

For each case, a tiny random `GPT1MultipleChoice` on the real 40,478-token vocabulary (2 layers,
32 wide, every base parameter random, layer norms too; no dropout) gets `backbone.enable_lora`,
then random non-zero A, B, special-token rows and head, and writes:
- its base as a HuggingFace folder (`weights.hf.write`) with no head and no special rows, as
  `openai-gpt` is published;
- its adapters with `save_lora_weights` (PEFT's folder, `weights.peft`).
In the peer venv of `bench_peer.py` (torch, transformers, peft; none of them a dependency of this
project), `peer_peft_load.py` loads `OpenAIGPTDoubleHeadsModel.from_pretrained(base)`, resizes its
embeddings to n_vocab + 3, wraps it in `PeftModel.from_pretrained(model, adapters)` and computes
`mc_logits` on the same inputs (X's token ids, the `_classify_` positions), then again after
`merge_and_unload()`. Cases: LoRA r 4, alpha 8 on c_attn, c_proj of every layer; and r 4 on all
four targets of the top layer only (train_layers 1). Prints one JSON line with the largest
differences (and `lora_effect`: how far B = 0 moves our logits, the scale they are read on); exit 1
when one exceeds 1e-5.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_peer  # noqa: E402
from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH  # noqa: E402
from gpt1_tf.models.backbone import GPT1Backbone  # noqa: E402
from gpt1_tf.models.tasks import GPT1MultipleChoice  # noqa: E402
from gpt1_tf.network import arrays, lora, tokens  # noqa: E402
from gpt1_tf.weights import hf  # noqa: E402
from gpt1_tf.weights.convert import from_body  # noqa: E402

N_VOCAB, N_CTX, K, TOL = 40478, 24, 3, 1e-5
CASES = {"attn_r4_alpha8": dict(rank=4, lora_alpha=8, target_names=("c_attn", "c_proj")),
         "all_targets_top_layer": dict(rank=4, target_names=tuple(arrays.LORA_TARGETS), train_layers=1)}


def adapted_model(seed, lora_args):
    """A tiny random multiple-choice model with LoRA, every adapter, special row and head value random."""
    backbone = GPT1Backbone(num_layers=2, num_heads=4, hidden_dim=32, max_sequence_length=N_CTX, dropout=0.0)
    rng = np.random.RandomState(seed)
    for p in backbone.transformer.params_in_order():
        p.assign(rng.normal(0, 0.5, p.shape).astype(np.float32))
    backbone.enable_lora(**lora_args)
    model = GPT1MultipleChoice(backbone)
    body = backbone.transformer
    for _, _, conv in lora.adapted_layers(body):
        for v in (conv.lora_kernel_a, conv.lora_kernel_b):
            v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    body.special.assign(rng.normal(0, 0.5, body.special.shape).astype(np.float32))
    for v in (model.network.clf.w, model.network.clf.b):
        v.assign(rng.normal(0, 0.5, v.shape).astype(np.float32))
    return model


def choices(rng, n=2, T=N_CTX):
    """ids [n, K, T]: _start_ text _delimiter_ answer _classify_, zero-padded; the _classify_ positions [n, K]."""
    ids, at = np.zeros((n, K, T), np.int64), np.zeros((n, K), np.int64)
    for b in range(n):
        for k in range(K):
            x = [tokens.start_id(N_VOCAB), *rng.randint(0, N_VOCAB, rng.randint(3, 10)), tokens.delimiter_id(N_VOCAB),
                 *rng.randint(0, N_VOCAB, rng.randint(1, 6)), tokens.clf_id(N_VOCAB)]
            ids[b, k, :len(x)], at[b, k] = x, len(x) - 1
    return ids, at


def ours_and_cases(tmp):
    """Write each case's base and adapters; (our logits by case name, the adapters' effect on them, the worker's
    cases, its inputs)."""
    rng, ours, effects, cases, inputs = np.random.RandomState(0), {}, {}, [], {}
    for seed, (name, lora_args) in enumerate(CASES.items(), 1):
        model = adapted_model(seed, lora_args)
        body = model.backbone.transformer
        # the frozen weights (not merged), without special rows as openai-gpt is published (PEFT's trainable
        # tokens add them)
        base = dataclasses.replace(from_body([p.numpy() for p in body.params_in_order()], body.cfg), special_rows=None)
        hf.write(base, f"{tmp}/{name}/base", encoder_path=DEFAULT_ENCODER_PATH, bpe_path=DEFAULT_BPE_PATH, pdrop=0.0)
        model.save_lora_weights(f"{tmp}/{name}/adapter")
        ids, at = choices(rng)
        X = np.stack([ids, np.broadcast_to(tokens.position_id(N_VOCAB, np.arange(N_CTX)), ids.shape)], -1)
        x = {"X": X.astype(np.int32), "M": (ids > 0).astype(np.float32)}
        ours[name] = model.forward(x)[0].numpy()  # predict's forward: the logits before the softmax
        for _, _, conv in lora.adapted_layers(body):  # B zero: what the adapters change, the scale of the figures
            conv.lora_kernel_b.assign(np.zeros(conv.lora_kernel_b.shape, np.float32))
        effects[name] = float(np.abs(model.forward(x)[0].numpy() - ours[name]).max())
        inputs[f"{name}_ids"], inputs[f"{name}_at"] = ids, at
        cases.append({"name": name, "base": f"{tmp}/{name}/base", "adapter": f"{tmp}/{name}/adapter",
                      "ids": f"{name}_ids", "mc_token_ids": f"{name}_at", "n_table": N_VOCAB + tokens.N_SPECIAL})
    return ours, effects, cases, inputs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer_venv", default=bench_peer.PEER_VENV_DEFAULT)
    args = p.parse_args()
    python = bench_peer.ensure_peer_venv(args.peer_venv)
    if subprocess.run([python, "-I", "-c", "import peft"], capture_output=True).returncode:
        sys.exit(f"{args.peer_venv}: peft is not installed there (`{python} -m pip install peft`)")
    tmp = tempfile.mkdtemp()
    ours, effects, cases, inputs = ours_and_cases(tmp)
    np.savez(f"{tmp}/inputs.npz", **inputs)
    with open(f"{tmp}/cases.json", "w") as f:
        json.dump({"inputs": f"{tmp}/inputs.npz", "cases": cases}, f)
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_peft_load.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([python, "-I", worker, f"{tmp}/cases.json", f"{tmp}/theirs.npz"], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        sys.exit(f"peer_peft_load.py failed:\n{proc.stderr[-3000:]}")
    theirs = np.load(f"{tmp}/theirs.npz")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ours:
        for how in ("peft", "merged"):
            report[f"{name}_{how}_max_abs_diff"] = float(np.abs(theirs[f"{name}/{how}"] - ours[name]).max())
        report[f"{name}_lora_effect"] = effects[name]  # our logits with B zero against with B: far above TOL
    print(json.dumps(report))
    bad = [k for k, v in report.items() if k.endswith("diff") and not v <= TOL]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
