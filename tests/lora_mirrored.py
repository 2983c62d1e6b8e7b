"""`backbone.enable_lora` on a backbone built under a MirroredStrategy of 2 logical CPU devices, then `fit`.

    python tests/lora_mirrored.py OUT.json

A fresh process (logical devices are set up before TensorFlow starts), used by
tests/test_models_lora.py. Writes the adapters' variable kinds, the replicas, and which variables
the fit changed.
"""
import json
import sys

import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

from test_models_lora import STORIES, changed, tiny_choice  # noqa: E402
from gpt1_tf.network import lora  # noqa: E402
from gpt1_tf.network.config import OptConfig  # noqa: E402
from gpt1_tf.train.devices import make_strategy  # noqa: E402


def main(path):
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    with make_strategy(cpus).scope():
        model = tiny_choice()
    model.backbone.enable_lora(4)  # outside the scope: enable_lora opens the backbone's own
    body = model.backbone.transformer
    adapters = [v for _, _, conv in lora.adapted_layers(body) for v in (conv.lora_kernel_a, conv.lora_kernel_b)]
    kinds = sorted({type(v.value).__name__ for v in adapters + [body.special, body.we]})  # the body's kind too
    before = {v.path: v.numpy() for v in model.network.weights}
    model.compile(OptConfig(lr=1e-2))
    model.fit(STORIES, [0, 1, 0, 1], batch_size=2, epochs=1, shuffle=False, verbose=0)  # a choice per replica
    out = {"kinds": kinds, "replicas": model.distribute_strategy.num_replicas_in_sync,
           "changed": changed(before, model.network), "updates": model.trainer.n_updates}
    with open(path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
