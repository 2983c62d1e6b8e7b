"""Worker of `check_hf_export.py`, run with the peer venv's python (torch, transformers; no TensorFlow).

    python peer_hf_load.py CASES.json OUT.npz

CASES.json: a list of {"name", "folder", "class": "lm" | "model" | "double_heads", "ids" (npz key),
"mc_token_ids" (npz key, double_heads)}, "inputs": the npz of inputs, "text": a text to tokenize. Loads each folder with
transformers' `from_pretrained` and writes, per case, `<name>/logits` (LM logits, the bare model's last hidden states, or mc_logits),
and `<name>/tokens` (the folder's tokenizer on the text).
"""
import json
import sys

import numpy as np
import torch
import transformers


def main(cases_path, out_path):
    with open(cases_path) as f:
        spec = json.load(f)
    inputs, out = np.load(spec["inputs"]), {}
    for case in spec["cases"]:
        ids = torch.tensor(inputs[case["ids"]], dtype=torch.long)
        with torch.no_grad():
            if case["class"] == "lm":
                model = transformers.OpenAIGPTLMHeadModel.from_pretrained(case["folder"]).eval()
                out[case["name"] + "/logits"] = model(ids).logits.numpy()
            elif case["class"] == "model":
                model = transformers.OpenAIGPTModel.from_pretrained(case["folder"]).eval()
                out[case["name"] + "/logits"] = model(ids).last_hidden_state.numpy()
            else:
                model = transformers.OpenAIGPTDoubleHeadsModel.from_pretrained(case["folder"]).eval()
                mc = torch.tensor(inputs[case["mc_token_ids"]], dtype=torch.long)
                out[case["name"] + "/logits"] = model(ids, mc_token_ids=mc).mc_logits.numpy()
        tokenizer = transformers.AutoTokenizer.from_pretrained(case["folder"])
        out[case["name"] + "/tokens"] = np.asarray(tokenizer(spec["text"])["input_ids"])
    np.savez(out_path, **out)
    print(json.dumps({"transformers_version": transformers.__version__, "torch_version": torch.__version__}))


if __name__ == "__main__":
    main(*sys.argv[1:])
