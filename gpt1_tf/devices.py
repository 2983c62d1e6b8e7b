"""Tower devices: real GPUs when there are enough, else logical devices carved from one device.

The original placed one tower per GPU. With fewer GPUs than --n_gpu, the available device (one
GPU, or the CPU) is split into n_gpu logical devices so the global batch, its split and the
arithmetic stay those of n_gpu towers. Must run before TensorFlow initialises its devices.
"""
import tensorflow as tf

from gpt1_tf.errors import Gpt1Error


def setup_towers(n_gpu, *, gpu_memory_mb=None):
    """Configure devices for n_gpu towers; returns (device names, one-line description)."""
    if n_gpu < 1:
        raise Gpt1Error(f"--n_gpu must be at least 1, got {n_gpu}")
    gpus = tf.config.list_physical_devices("GPU")
    try:
        if len(gpus) >= n_gpu:
            devices = [f"/gpu:{i}" for i in range(n_gpu)]
            return devices, f"towers: {n_gpu} on {n_gpu} GPUs"
        if gpus:
            if n_gpu > 1:
                memory = gpu_memory_mb or _split_gpu_memory(gpus[0], n_gpu)
                tf.config.set_logical_device_configuration(
                    gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=memory)] * n_gpu)
            devices = [d.name for d in tf.config.list_logical_devices("GPU")][:n_gpu]
            return devices, (f"towers: {n_gpu} logical GPUs on 1 physical GPU "
                             f"(found {len(gpus)} GPU, asked for {n_gpu})")
        cpus = tf.config.list_physical_devices("CPU")
        if n_gpu > 1:
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n_gpu)
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:n_gpu]
    except RuntimeError:
        # devices were initialised earlier in this process (a second run in one process, tests)
        devices = _existing(n_gpu)
    kind = "CPU" if not gpus else "GPU"
    return devices, (f"towers: {n_gpu} logical {kind} devices on 1 {kind} "
                     f"(no GPU found, asked for {n_gpu})" if not gpus else f"towers: {n_gpu}")


def _split_gpu_memory(gpu, n):
    """Equal share of the card's memory per logical GPU, in MB (a 10% reserve left to the runtime)."""
    try:
        total = tf.config.experimental.get_device_details(gpu).get("device_memory_size")
    except Exception:
        total = None
    if not total:
        return 4096
    return int(total / 2**20 * 0.9 / n)


def _existing(n_gpu):
    for kind in ("GPU", "CPU"):
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        if len(devices) >= n_gpu:
            return devices[:n_gpu]
    raise Gpt1Error(f"--n_gpu {n_gpu}: TensorFlow's devices were already set up with "
                    f"{len(tf.config.list_logical_devices('CPU'))} logical CPU devices in this process; "
                    "run in a fresh process")


def make_strategy(devices):
    """MirroredStrategy over the towers; gradients are reduced on the first device."""
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device=devices[0]))
