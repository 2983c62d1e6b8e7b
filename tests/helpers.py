"""Shared test helpers: golden fixtures (copied from the original's runs) and tiny configs."""
import json
import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
FWD_CASES = ("fwd_gelu", "fwd_relu", "fwd_swish")
ADAM_CASES = ("adam_warmup_linear", "adam_warmup_cosine_vector_l2", "adam_warmup_constant_noclip_nolm")
# the parameters after the steps to compare with: the golden files, except the no-clipping case,
# whose golden file recorded a thread race of the original graph (see fixtures/README.md)
ADAM_REFERENCE = {"adam_warmup_linear": "adam_warmup_linear",
                  "adam_warmup_cosine_vector_l2": "adam_warmup_cosine_vector_l2",
                  "adam_warmup_constant_noclip_nolm": "adam_warmup_constant_noclip_nolm_racefree"}


def load_fixture(name):
    """(arrays dict, meta dict) of a golden fixture."""
    d = np.load(os.path.join(FIXTURES, f"{name}.npz"))
    arrays = {k: d[k] for k in d.files}
    meta = json.loads(bytes(arrays.pop("meta_json")).decode())
    return arrays, meta


def load_batches(name):
    d = np.load(os.path.join(FIXTURES, f"{name}_batches.npz"))
    return {k: d[k] for k in d.files}


def params_of(arrays, which):
    """param_before_NNN / param_after_NNN in order."""
    keys = sorted(k for k in arrays if k.startswith(f"param_{which}_"))
    return [arrays[k] for k in keys]


def model_config(hp, **overrides):
    """ModelConfig of a fixture's hp, all dropouts 0 (as the fixtures were produced)."""
    from gpt1_tf.config import ModelConfig
    kw = dict(n_vocab=hp["n_vocab"], n_special=hp["n_special"], n_ctx=hp["n_ctx"], n_embd=hp["n_embd"],
              n_head=hp["n_head"], n_layer=hp["n_layer"], afn=hp["afn"],
              embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0, clf_pdrop=0.0)
    kw.update(overrides)
    cfg = ModelConfig(**kw)
    assert cfg.clf_token == hp["clf_token"], (cfg.clf_token, hp["clf_token"])
    return cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "datasets", "rocstories_sample")
VAL_FILE = "cloze_test_val__spring2016 - cloze_test_ALL_val.csv"
TEST_FILE = "cloze_test_test__spring2016 - cloze_test_ALL_test.csv"


def write_tiny_cloze(directory, n_val=24, n_test=12):
    """Story Cloze files with the first stories of the bundled sample (header kept)."""
    os.makedirs(directory, exist_ok=True)
    for name, n in ((VAL_FILE, n_val), (TEST_FILE, n_test)):
        with open(os.path.join(SAMPLE_DIR, name), encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.writelines(lines[:1 + n])
    return directory
