"""Training throughput: tokens per second and model FLOP utilisation (MFU), for the progress bar and the log.

The one owner of three things:

- `flops_per_token`: the model FLOPs of one trained token (nanoGPT's estimate, forward and backward);
- the machine's peak, what MFU divides by: on a GPU the vendor's dense matmul figure of a known model
  (`GPU_PEAKS`; None, so no MFU, for another), on a CPU this machine's float matmul rate in the
  compute dtype, measured once (`measure_matmul_peak`) and cached in a small JSON file
  (`peak_cache_path`) keyed by CPU model, core count, TensorFlow version and dtype;
- `Meter`: fed the tokens and seconds of each update, it gives tokens/s and MFU.

Nothing here measures anything until asked: the programs ask once, when a run opens its log.
No TensorFlow import at module level.
"""
import collections
import json
import math
import os
import sys

from gpt1_tf.files import atomic_write
from gpt1_tf.network import arrays

CACHE_ENV = "GPT1_TF_CACHE"  # a folder for the cached peaks, instead of $XDG_CACHE_HOME/gpt1_tf
CACHE_FILE = "matmul_peak.json"
# dense matmul FLOP/s of one GPU by a part of its name, per dtype; "tf32" is float32 on the tensor cores
# (TensorFlow's default on Ampere and later). Vendors' data sheets, without sparsity.
GPU_PEAKS = {
    "H200": {"bfloat16": 989e12, "float16": 989e12, "tf32": 494e12, "float32": 67e12},
    "H100 PCIe": {"bfloat16": 756e12, "float16": 756e12, "tf32": 378e12, "float32": 51e12},
    "H100": {"bfloat16": 989e12, "float16": 989e12, "tf32": 494e12, "float32": 67e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "tf32": 156e12, "float32": 19.5e12},
}


def flops_per_token(model_cfg, n_ctx=None, *, lm_head=True):
    """Model FLOPs of one trained token, forward and backward: 6 N + 12 L n_embd T (nanoGPT's `estimate_mfu`).

    N: the weights that multiply activations in a matmul, from `gpt1_tf.network.arrays`: each
    layer's four conv1d weights (c_attn, attn c_proj, c_fc, mlp c_proj: 12 n_embd^2) and the whole
    embedding table `we` (n_table x n_embd), which the tied LM head multiplies by (`lm_head=False`,
    a step without the LM head, e.g. fine-tuning with --lm_coef 0: not counted, a lookup is no
    matmul); not the biases, the layer norms, nor the classifier. 6 N: 2 per weight forward, 4
    backward. 12 L n_embd T: the attention scores and their weighting of the values, T the sequence
    length the attention sees (`n_ctx`, default the config's).
    """
    T = model_cfg.n_ctx if n_ctx is None else n_ctx
    sizes = {"n_embd": model_cfg.n_embd, "n_table": model_cfg.n_table}
    layer = sum(math.prod(a.shape(sizes)) for a in arrays.LAYER if a.conv)
    table = sum(math.prod(a.shape(sizes)) for a in arrays.MODEL_FIRST) if lm_head else 0
    n = table + model_cfg.n_layer * layer
    return 6 * n + 12 * model_cfg.n_layer * model_cfg.n_embd * T


class Meter:
    """Tokens/s and MFU of the updates fed to `update(tokens, seconds)`.

    The first update is kept apart (`first_seconds`): it compiles the step, and is no rate. `recent`
    is over the last `window` updates (the progress bar); `interval()` over those since its previous
    call (the log's evaluation records). `peak`: the FLOP/s MFU divides by (None: no MFU).
    """

    def __init__(self, flops_per_token, peak=None, window=20):
        self.flops_per_token, self.peak = flops_per_token, peak
        self.first_seconds = None
        self._recent = collections.deque(maxlen=window)
        self._tokens = self._seconds = 0.0

    def update(self, tokens, seconds):
        if self.first_seconds is None:
            self.first_seconds = seconds
            return
        self._recent.append((tokens, seconds))
        self._tokens += tokens
        self._seconds += seconds

    def recent(self):
        """(tokens/s, MFU) over the last updates; None for what is unknown."""
        return self._rates(sum(t for t, _ in self._recent), sum(s for _, s in self._recent))

    def interval(self):
        """(tokens/s, MFU) over the updates since the previous call (None, None when there were none)."""
        rates = self._rates(self._tokens, self._seconds)
        self._tokens = self._seconds = 0.0
        return rates

    def mfu(self, tokens_per_s):
        """The fraction of the peak that tokens_per_s tokens a second use; None without a peak."""
        if tokens_per_s is None or not self.peak:
            return None
        return tokens_per_s * self.flops_per_token / self.peak

    def postfix(self):
        """The progress bar's fields: {"tok/s": "1234", "mfu": "41%"} (MFU only with a peak; {} before a rate)."""
        rate, mfu = self.recent()
        fields = {} if rate is None else {"tok/s": f"{rate:.0f}"}
        if mfu is not None:
            fields["mfu"] = f"{100 * mfu:.0f}%"
        return fields

    def _rates(self, tokens, seconds):
        rate = tokens / seconds if seconds > 0 else None
        return rate, self.mfu(rate)


def rate_text(tokens_per_s, mfu):
    """The evaluation line's part: "1234 tok/s, mfu 41%" ("1234 tok/s" without MFU; "" without a rate)."""
    if tokens_per_s is None:
        return ""
    return f"{tokens_per_s:.0f} tok/s" + ("" if mfu is None else f", mfu {100 * mfu:.0f}%")


# --- the peak ------------------------------------------------------------------------------------
def strategy_peak(strategy, compute_dtype):
    """FLOP/s of every device the strategy's replicas run on (None where unknown).

    GPUs: `GPU_PEAKS` of the first one's model times the GPUs in use; a CPU: this machine's measured
    (or cached) matmul rate, once for all its logical devices. Times the workers of a cluster (each
    on a machine like this one).
    """
    import tensorflow as tf
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: TensorFlow's default device, the first GPU or the CPU
        devices = [d.name for d in tf.config.list_logical_devices("GPU")[:1]] or ["/cpu:0"]
    n_workers = max(1, strategy.num_replicas_in_sync // len(devices))
    if any("GPU" in d.upper() for d in devices):
        gpus = tf.config.list_physical_devices("GPU")
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        except Exception:  # the details are best effort: no name, no peak
            name = ""
        peak = gpu_peak(name, compute_dtype)
        n_devices = min(len(devices), len(gpus))
    else:
        peak, n_devices = cpu_peak(compute_dtype), 1
    return None if peak is None else peak * n_devices * n_workers


def gpu_peak(device_name, compute_dtype):
    """`GPU_PEAKS` of a GPU named `device_name` ("NVIDIA H100 80GB HBM3") in the compute dtype; None when unknown."""
    import tensorflow as tf
    for part, peaks in GPU_PEAKS.items():
        if part in device_name:
            if compute_dtype == "float32" and tf.config.experimental.tensor_float_32_execution_enabled():
                return peaks["tf32"]
            return peaks.get(compute_dtype)
    return None


def cpu_peak(compute_dtype):
    """This CPU's matmul FLOP/s in compute_dtype: cached, else measured (`measure_matmul_peak`) and cached.

    A cache that cannot be read (corrupt, not JSON) is measured again and rewritten; one that cannot
    be written is passed over. Either way one warning line on stderr, and the run goes on.
    """
    path, key = peak_cache_path(), peak_cache_key(compute_dtype)
    cache, problem = _read_cache(path)
    value = cache.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    peak = measure_matmul_peak(compute_dtype)
    problems = [f"{problem}: measured again"] if problem else []
    try:
        atomic_write(path, lambda f: f.write(json.dumps({**cache, key: peak}, indent=1).encode()))
    except OSError as err:
        problems.append(f"cannot write the measured matmul peak there ({err.strerror or err})")
    if problems:
        print(f"warning: {path}: {'; '.join(problems)}", file=sys.stderr)
    return peak


def _read_cache(path):
    """({key: FLOP/s}, None) of the cache file ({} when absent); ({}, what is wrong) when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            cache = json.load(f)
    except (FileNotFoundError, NotADirectoryError):  # nothing cached yet
        return {}, None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return {}, f"cannot read the cached matmul peaks ({type(err).__name__})"
    if not isinstance(cache, dict):
        return {}, "the cached matmul peaks are not a JSON object"
    return cache, None


def peak_cache_path():
    """$GPT1_TF_CACHE, else $XDG_CACHE_HOME/gpt1_tf, else ~/.cache/gpt1_tf; then CACHE_FILE."""
    folder = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "gpt1_tf")
    return os.path.join(folder, CACHE_FILE)


def peak_cache_key(compute_dtype):
    """What a measured peak depends on: "<CPU model>|<cores> cores|tf <version>|<dtype>"."""
    import tensorflow as tf
    from gpt1_tf.runtime import cpu_model
    return f"{cpu_model()}|{_n_cores()} cores|tf {tf.__version__}|{compute_dtype}"


def _n_cores():
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a container's, a taskset's)
    except AttributeError:
        return os.cpu_count() or 1


def measure_matmul_peak(compute_dtype="float32", *, n_max=2048, repeats=3, budget_s=2.5):
    """FLOP/s of square tf.matmul on this process's default device in compute_dtype: the best of a few calls.

    The size doubles from 256 up to n_max while a call stays well within the budget (a CPU without
    native bfloat16 is slow at it), so the whole measurement takes about budget_s at most.
    """
    import time
    import tensorflow as tf
    dtype = tf.as_dtype(compute_dtype)

    def seconds(a):
        start = time.perf_counter()
        float(tf.reduce_sum(tf.matmul(a, a)[:1, :1]))  # the value waits for the product
        return time.perf_counter() - start

    n = 256
    while True:
        a = tf.cast(tf.random.stateless_uniform([n, n], seed=[0, n]), dtype)
        seconds(a)  # the first call at a size picks and prepares its kernel
        best = seconds(a)
        if n >= n_max or 8 * best * (repeats + 1) > budget_s:  # the next size: 8 times the work
            break
        n *= 2
    best = min([best] + [seconds(a) for _ in range(repeats - 1)])
    return 2 * n ** 3 / best
