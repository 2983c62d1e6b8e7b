"""Worker of `check_peft_adapter.py`, run with the peer venv's python (torch, transformers, peft; no TensorFlow).

    python peer_peft_load.py CASES.json OUT.npz

CASES.json: "inputs", the npz of inputs, and "cases", a list of {"name", "base" (a HuggingFace folder),
"adapter" (a PEFT adapter folder), "ids" (npz key, [N, K, T]), "mc_token_ids" (npz key, [N, K]),
"n_table" (the embedding rows after resizing: n_vocab + 3)}. Per case: `OpenAIGPTDoubleHeadsModel`
of the base, its embeddings resized, `PeftModel.from_pretrained` of the adapter; writes
`<name>/peft` (its mc_logits) and `<name>/merged` (after `merge_and_unload()`).
"""
import json
import sys

import numpy as np
import peft
import torch
import transformers


def main(cases_path, out_path):
    with open(cases_path) as f:
        spec = json.load(f)
    inputs, out = np.load(spec["inputs"]), {}
    for case in spec["cases"]:
        ids = torch.tensor(inputs[case["ids"]], dtype=torch.long)
        mc = torch.tensor(inputs[case["mc_token_ids"]], dtype=torch.long)
        model = transformers.OpenAIGPTDoubleHeadsModel.from_pretrained(case["base"])
        model.resize_token_embeddings(case["n_table"])  # the published base lacks GPT-1's 3 special tokens
        model = peft.PeftModel.from_pretrained(model, case["adapter"]).eval()
        with torch.no_grad():
            out[case["name"] + "/peft"] = model(ids, mc_token_ids=mc).mc_logits.numpy()
            merged = model.merge_and_unload().eval()
            out[case["name"] + "/merged"] = merged(ids, mc_token_ids=mc).mc_logits.numpy()
    np.savez(out_path, **out)
    print(json.dumps({"transformers_version": transformers.__version__, "peft_version": peft.__version__,
                      "torch_version": torch.__version__}))


if __name__ == "__main__":
    main(*sys.argv[1:])
