"""Does transformers load what `python -m gpt1_tf.export --to hf` writes, and compute what we compute?

    python benchmarks/check_hf_export.py [--peer_venv ~/.cache/gpt1_tf/peer-hf-venv]

Writes, with tiny random models on the real 40,478-token vocabulary:
- a language model (original shards -> HF), loaded as `OpenAIGPTLMHeadModel`: its LM logits;
- fine-tuned `best_params.jl` files of a multiple-choice head (Story Cloze, RACE), loaded as
  `OpenAIGPTDoubleHeadsModel`: its `mc_logits` against our head's logits;
- a `GPT1Backbone.from_preset` of the language model's shards, saved with `save_to_preset`, loaded
  as `OpenAIGPTModel`: its last hidden states against the backbone's;
- each folder's tokenizer (vocab.json / merges.txt) against our TextEncoder on one text.
Runs transformers in the peer venv of `bench_peer.py` (torch is not a dependency of this project)
and prints one JSON line with the largest differences; exit 1 when one exceeds 1e-5.
"""
import argparse
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
from gpt1_tf.cli import export  # noqa: E402
from gpt1_tf.network import tokens
from gpt1_tf.weights import pretrained
from gpt1_tf.network.config import ModelConfig  # noqa: E402
from gpt1_tf.network.model import TransformerModel  # noqa: E402
from gpt1_tf.data.text_utils import TextEncoder  # noqa: E402
from gpt1_tf.models.backbone import GPT1Backbone  # noqa: E402

N_VOCAB, TOL = 40478, 1e-5
TEXT = "Karen was assigned a roommate her first year of college. They went to a music show together!"
HEADS = {"story_cloze": ("multiple_choice", 0, 2), "race": ("multiple_choice", 0, 4)}


def random_model(task_format, n_classes, seed):
    """A tiny model with every parameter random (layer norms too), no dropout."""
    cfg = ModelConfig(n_vocab=N_VOCAB, n_ctx=24, n_embd=32, n_head=4, n_layer=2, embd_pdrop=0, attn_pdrop=0,
                      resid_pdrop=0, clf_pdrop=0, task_format=task_format, n_classes=n_classes)
    model, rng = TransformerModel(cfg), np.random.RandomState(seed)
    for p in model.params_in_order():
        p.assign(rng.normal(0, 0.5, p.shape).astype(np.float32))
    return model


def choices(rng, K, T=24):
    """[1, K, T] ids: _start_ text _delimiter_ answer _classify_, zero-padded; the _classify_ positions."""
    ids, at = np.zeros((2, K, T), np.int64), np.zeros((2, K), np.int64)
    for b in range(2):
        for k in range(K):
            x = [tokens.start_id(N_VOCAB), *rng.randint(0, N_VOCAB, rng.randint(3, 10)), tokens.delimiter_id(N_VOCAB),
                 *rng.randint(0, N_VOCAB, rng.randint(1, 6)), tokens.clf_id(N_VOCAB)]
            ids[b, k, :len(x)], at[b, k] = x, len(x) - 1
    return ids, at


def ours_and_cases(tmp):
    """Export the models; (our outputs by case name, the worker's cases, its inputs)."""
    rng, ours, cases, inputs = np.random.RandomState(0), {}, [], {}
    lm = random_model("multiple_choice", 0, 1)
    pretrained.export_shards(lm, f"{tmp}/shards")
    assert export.main([f"{tmp}/shards", "--to", "hf", "--out", f"{tmp}/lm", "--n_head", "4"]) == 0
    ids = rng.randint(0, N_VOCAB, (2, 24))
    X = np.stack([ids, np.broadcast_to(tokens.position_id(N_VOCAB, np.arange(24)), ids.shape)], -1).astype(np.int32)
    h, we = lm.transformer.hidden(X)
    ours["lm"], inputs["lm_ids"] = (h.numpy() @ we.numpy()[:N_VOCAB].T), ids
    cases.append({"name": "lm", "folder": f"{tmp}/lm", "class": "lm", "ids": "lm_ids"})
    backbone = GPT1Backbone.from_preset(f"{tmp}/shards", num_heads=4, dropout=0.0)
    backbone.save_to_preset(f"{tmp}/preset")
    ours["preset"] = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}).numpy()
    cases.append({"name": "preset", "folder": f"{tmp}/preset", "class": "model", "ids": "lm_ids"})
    for seed, (name, (task_format, n_classes, K)) in enumerate(HEADS.items(), 2):
        model = random_model(task_format, n_classes, seed)
        pretrained.save_params(f"{tmp}/{name}.jl", pretrained.get_params(model), model.cfg)
        assert export.main([f"{tmp}/{name}.jl", "--to", "hf", "--out", f"{tmp}/{name}", "--n_head", "4"]) == 0
        ids, at = choices(rng, K)
        X = np.stack([ids, np.broadcast_to(tokens.position_id(N_VOCAB, np.arange(24)), ids.shape)], -1)
        logits = model(X.astype(np.int32), np.ones(ids.shape, np.float32), compute_lm=False)[0].numpy()
        ours[name] = logits
        inputs[f"{name}_ids"], inputs[f"{name}_at"] = ids, at
        cases.append({"name": name, "folder": f"{tmp}/{name}", "class": "double_heads", "ids": f"{name}_ids",
                      "mc_token_ids": f"{name}_at"})
    return ours, cases, inputs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer_venv", default=bench_peer.PEER_VENV_DEFAULT)
    args = p.parse_args()
    python = bench_peer.ensure_peer_venv(args.peer_venv)
    tmp = tempfile.mkdtemp()
    ours, cases, inputs = ours_and_cases(tmp)
    np.savez(f"{tmp}/inputs.npz", **inputs)
    with open(f"{tmp}/cases.json", "w") as f:
        json.dump({"inputs": f"{tmp}/inputs.npz", "cases": cases, "text": TEXT}, f)
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_hf_load.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([python, "-I", worker, f"{tmp}/cases.json", f"{tmp}/theirs.npz"], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        sys.exit(f"peer_hf_load.py failed:\n{proc.stderr[-3000:]}")
    theirs, want_tokens = np.load(f"{tmp}/theirs.npz"), TextEncoder().encode([TEXT], verbose=False)[0]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ours:
        report[f"{name}_max_abs_diff"] = float(np.abs(theirs[f"{name}/logits"] - ours[name]).max())
        report[f"{name}_same_token_ids"] = theirs[f"{name}/tokens"].tolist() == want_tokens
    print(json.dumps(report))
    bad = [k for k, v in report.items() if (k.endswith("diff") and v > TOL) or v is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
