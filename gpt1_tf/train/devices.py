"""Tower devices: one GPU per tower when there are enough, else every tower in sequence on one device.

The original placed one tower per GPU. With fewer GPUs than --n_gpu, the towers run one after
the other on the first GPU (or the CPU): the global batch, its split into n_gpu parts, the
dropout masks and the averaged gradients stay those of n_gpu towers (`Trainer` sums the towers'
gradients in the original's order), with one copy of the parameters and the Adam state and one
tower's activations at a time. Listing physical devices does not initialise TensorFlow's.
"""
import tensorflow as tf

from gpt1_tf.errors import Gpt1Error


def setup_towers(n_gpu):
    """Devices for n_gpu towers: one replica device per tower, or one device for all of them.

    Returns (device names, one-line description); `Trainer` runs n_gpu / len(devices) towers in
    sequence on each device.
    """
    if n_gpu < 1:
        raise Gpt1Error(f"--n_gpu must be at least 1, got {n_gpu}")
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= n_gpu:
        return [f"/gpu:{i}" for i in range(n_gpu)], f"towers: {n_gpu} on {n_gpu} GPU{'s' * (n_gpu > 1)}"
    kind, found = ("GPU", f"found {len(gpus)} GPU") if gpus else ("CPU", "no GPU found")
    if n_gpu == 1:
        return [f"/{kind.lower()}:0"], f"towers: 1 on the {kind} ({found})"
    return [f"/{kind.lower()}:0"], (f"towers: {n_gpu} in sequence on one {kind}, their gradients averaged "
                                    f"({found}, asked for {n_gpu})")


def make_strategy(devices):
    """MirroredStrategy over the replica devices; gradients are reduced on the first device."""
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device=devices[0]))
