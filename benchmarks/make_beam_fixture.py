"""Write tests/fixtures/hf/beam.npz: transformers' beam-search tokens on the HF fixture, run ONCE in the peer venv.

    ~/.cache/gpt1_tf/peer-hf-venv/bin/python -I benchmarks/make_beam_fixture.py   # torch + transformers, no TF

`OpenAIGPTLMHeadModel.from_pretrained(tests/fixtures/hf/bare)` continues the fixture's prompts
`ids_0` and `ids_1` (expected.npz) by 24 new tokens with
`generate(num_beams=4, do_sample=False, length_penalty=1.0, early_stopping=True)`; the npz holds
`beam4_0`, `beam4_1` [24] (the new tokens) and `provenance_json` (versions, command). The tests
(`tests/test_causal_lm.py`) compare `GPT1CausalLM`'s BeamSampler(num_beams=4) with them; they never import torch.
"""
import json
import os
import sys

import numpy as np
import torch
import transformers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF = os.path.join(REPO, "tests", "fixtures", "hf")
NEW_TOKENS, NUM_BEAMS = 24, 4


def beam_tokens(model, prompt):
    ids = torch.tensor([prompt], dtype=torch.long)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, num_beams=NUM_BEAMS, do_sample=False, length_penalty=1.0,
                             early_stopping=True, pad_token_id=0)
    return out[0, ids.shape[1]:].numpy().astype(np.int32)


def main():
    torch.manual_seed(0)
    model = transformers.OpenAIGPTLMHeadModel.from_pretrained(os.path.join(HF, "bare")).eval()
    expected = np.load(os.path.join(HF, "expected.npz"))
    out = {f"beam4_{i}": beam_tokens(model, expected[f"ids_{i}"].tolist()) for i in (0, 1)}
    provenance = {"transformers": transformers.__version__, "torch": torch.__version__,
                  "python": sys.version.split()[0], "num_beams": NUM_BEAMS, "new_tokens": NEW_TOKENS,
                  "command": "~/.cache/gpt1_tf/peer-hf-venv/bin/python -I benchmarks/make_beam_fixture.py"}
    out["provenance_json"] = np.frombuffer(json.dumps(provenance).encode(), np.uint8)
    np.savez(os.path.join(HF, "beam.npz"), **out)
    print(json.dumps({**provenance, **{k: v.tolist() for k, v in out.items() if k.startswith("beam")}}))


if __name__ == "__main__":
    main()
