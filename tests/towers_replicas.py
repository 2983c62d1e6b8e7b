"""Run one global batch through differently placed towers; write what each gave to an npz.

    python tests/towers_replicas.py OUT.npz

A fresh process (logical devices are set up before TensorFlow starts), used by
tests/test_train.py's TowersTest. Placements, each with the same initial parameters:
- "mirrored": 4 MirroredStrategy replicas on 4 logical CPU devices, one tower each;
- "sequence": the 4 towers one after the other on one device (what train.py does without 4 GPUs);
- "mixed": 2 replicas of 2 towers in sequence;
- "one": one tower of the whole global batch (only comparable without dropout).
For each placement and dropout rate: the first step's clf losses, gradient norm and gradients,
then the parameters after two updates and the evaluation of 8 and of 7 stories with them.
"""
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 4)

from helpers import N_CTX, N_VOCAB, story_batch  # noqa: E402 (after the device set-up)
from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig  # noqa: E402
from gpt1_tf.train.devices import make_strategy  # noqa: E402
from gpt1_tf.network.model import TransformerModel  # noqa: E402
from gpt1_tf.train.trainer import Trainer  # noqa: E402

CPUS = [d.name for d in tf.config.list_logical_devices("CPU")]
PLACEMENTS = {"mirrored": (CPUS, 4), "sequence": (CPUS[:1], 4), "mixed": (CPUS[:2], 4), "one": (CPUS[:1], 1)}


def config(pdrop):
    return ModelConfig(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=16, n_head=2, n_layer=2, embd_pdrop=pdrop,
                       attn_pdrop=pdrop, resid_pdrop=pdrop, clf_pdrop=pdrop)


def run(placement, pdrop, init, batches):
    devices, n_towers = PLACEMENTS[placement]
    trainer = Trainer(config(pdrop), OptConfig(t_total=10, max_grad_norm=1.0, l2=0.01), StepConfig(fused_apply=False),
                      strategy=make_strategy(devices), lm_coef=0.5, n_towers=n_towers)
    for p, a in zip(trainer.params, init):
        p.assign(a)
    grads, clf, norm = trainer.compute_gradients(*batches[0], 0)
    out = {"clf": clf.numpy(), "norm": norm.numpy()}
    out.update({f"grad_{i}": g.numpy() for i, g in enumerate(grads)})
    for step, batch in enumerate(batches):
        trainer.train_step(*batch, step)
    out.update({f"param_{i}": p.numpy() for i, p in enumerate(trainer.params)})
    X, M, Y = batches[0]
    for name, n in (("eval", 8), ("eval_odd", 7)):  # 7 stories do not split into 4 towers evenly
        out[f"{name}_logits"], out[f"{name}_losses"] = trainer.eval_batch(X[:n], M[:n], Y[:n])
    return out


def main(path):
    rng = np.random.RandomState(3)
    batches = [story_batch(rng, 8) for _ in range(2)]
    shapes = [p.shape for p in TransformerModel(config(0.0)).params_in_order()]
    init = [rng.normal(0, 0.3 if len(s) > 1 else 0.1, s).astype(np.float32) for s in shapes]
    results = {}
    for pdrop in (0.0, 0.1):
        for placement in PLACEMENTS:
            if placement == "one" and pdrop:
                continue  # one tower draws other dropout masks than four
            out = run(placement, pdrop, init, batches)
            results.update({f"{placement}/{pdrop}/{k}": v for k, v in out.items()})
    np.savez(path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
