"""GPT1Classifier.fit under a MirroredStrategy of 2 logical CPU devices, and train.py's Trainer on the same batches.

    python tests/tasks_mirrored.py OUT.npz

A fresh process (logical devices are set up before TensorFlow starts), used by
tests/test_models_tasks.py. Writes the classifier's parameters after fit (2 replicas, one tower
each), the reference's (the Trainer with 2 towers in sequence on one device, stepped as
finetune.py steps it) and both predictions of the first sentences.
"""
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402 (after the device set-up)
from test_models_tasks import BATCH, EPOCHS, OPT, sst2_sample, tiny_backbone  # noqa: E402
from gpt1_tf.models.tasks import GPT1Classifier  # noqa: E402
from gpt1_tf.network.config import StepConfig  # noqa: E402
from gpt1_tf.train.devices import make_strategy  # noqa: E402
from gpt1_tf.train.trainer import Trainer  # noqa: E402
from gpt1_tf.weights.pretrained import get_params, set_params  # noqa: E402


def main(path):
    texts, labels = sst2_sample(32)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    with make_strategy(cpus).scope():
        classifier = GPT1Classifier(tiny_backbone(), 2)
    init = get_params(classifier.network)
    classifier.compile(OPT)
    classifier.fit(texts, labels, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    X, M, Y = classifier.preprocessor(texts, labels)
    steps = len(Y) // BATCH
    opt = OPT.__class__(**{**OPT.__dict__, "t_total": EPOCHS * steps})
    ref = Trainer(classifier.cfg, opt, StepConfig(fused_apply=False), strategy=make_strategy(cpus[:1]), lm_coef=0.5,
                  seed=42, n_towers=2)
    set_params(ref.model, init)
    for _ in range(EPOCHS):
        for b in range(steps):
            at = slice(b * BATCH, (b + 1) * BATCH)
            ref.train_step(X[at], M[at], Y[at], ref.n_updates)
    out = {f"fit_{i}": a for i, a in enumerate(get_params(classifier.network))}
    out.update({f"ref_{i}": a for i, a in enumerate(get_params(ref.model))})
    out["fit_predict"] = classifier.predict(texts[:6], batch_size=2, verbose=0)
    out["ref_predict"] = keras.ops.softmax(ref.eval_batch(X[:6], M[:6])[0]).numpy()
    out["fit_updates"] = np.array(classifier.trainer.n_updates)
    out["replicas"] = np.array(classifier.distribute_strategy.num_replicas_in_sync)
    np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
