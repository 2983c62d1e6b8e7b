"""Worker of `bench_lm.py --peer`, run with the peer venv's python (torch, transformers; no TensorFlow).

    python peer_hf_generate.py HF_FOLDER PROMPT_IDS_JSON NEW_TOKENS REPEATS THREADS

Times `OpenAIGPTLMHeadModel.generate(do_sample=False)` (median of REPEATS after one warm-up) and
prints one JSON line: peer_s, the new tokens, the versions. PROMPT_IDS_JSON is one prompt (a list
of ids: `tokens` its new ids) or a batch of equal-length prompts (a list of lists, run as one batch
by `bench_generate.py`: `tokens` a list per prompt).
"""
import json
import sys
import time

import torch
import transformers


def main(folder, prompt, new_tokens, repeats, threads):
    if int(threads) > 0:
        torch.set_num_threads(int(threads))
    model = transformers.OpenAIGPTLMHeadModel.from_pretrained(folder).eval()
    prompt = json.loads(prompt)
    batched = isinstance(prompt[0], list)
    ids = torch.tensor(prompt if batched else [prompt], dtype=torch.long)
    n = int(new_tokens)

    def run():
        with torch.no_grad():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=0)
    run()
    times = []
    for _ in range(int(repeats)):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({"peer_s": round(times[len(times) // 2], 3), "tokens": out[:, ids.shape[1]:].tolist() if batched else out[0, ids.shape[1]:].tolist(),
                      "transformers_version": transformers.__version__, "torch_version": torch.__version__,
                      "peer_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
