"""How much memory a fine-tuning or pretraining run needs, estimated before TensorFlow builds anything.

Pure arithmetic on the config (no TensorFlow import), so `train.py` and `pretrain.py` can refuse a
run that cannot fit with one line instead of an out-of-memory crash minutes later. Calibrated on
the full model: 8 stories x 2 endings, n_ctx 77, one tower -> ~5 GB; the original's peak RSS was
5.7 GB (measured with the original TF1 code on the project's 2-core CPU). Pretraining: see
`estimate_pretrain_bytes` (measured figures in BENCHMARKS.md).
"""
import dataclasses
import os

from gpt1_tf.network import arrays
from gpt1_tf.network.config import RECOMPUTED_ACTIVATIONS

BYTES = 4  # float32
STATE_COPIES = 4  # parameters, Adam m and v, gradients
# float32 values kept per token and layer for the backward pass (TensorFlow's unfused ops):
# attention ~14 x n_embd (c_attn, split heads, merge, c_proj, dropout, residual, ln_1), MLP ~20 x n_embd
# (c_fc, the tanh-GELU intermediates, c_proj, dropout, residual, ln_2) ...
ACT_PER_EMBD = 34
# ... of which recomputing the GELU in the backward pass saves (StepConfig.recompute; measured: 0.53 GB of a
# full-size tower of 8 stories x 2 endings x 77 tokens)
RECOMPUTED_ACT_PER_EMBD = 12
# ... and per head: scores, mask, softmax, dropout mask, dropped probabilities, each T wide
ACT_PER_HEAD_T = 5
LOGIT_COPIES = 3  # LM head logits, log-softmax, its gradient
RUNTIME_BYTES = 512 * 2**20  # TensorFlow, NumPy and the data themselves
# ... and in pretrain.py, which also holds the text encoder, the tf.data pipeline and the held-out
# windows (fitted to its measured peaks at full size, updates of 8 and 64 windows of 512 as micro-batches
# of 8, 4 and 1 windows: BENCHMARKS.md, run J; the estimate is 1.02-1.3x the measured peak)
PRETRAIN_RUNTIME_BYTES = 1536 * 2**20


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by kind; `total` is what is compared with the available memory."""

    state: int  # parameters, Adam m and v, gradients (and their sum over towers)
    activations: int  # kept for the backward pass, one tower
    logits: int  # the LM head over the whole embedding table, one tower
    runtime: int = RUNTIME_BYTES

    @property
    def total(self):
        return self.state + self.activations + self.logits + self.runtime


def n_params(cfg):
    """Number of parameters: we, 12 arrays per layer, clf/w and clf/b (`gpt1_tf.network.arrays`)."""
    return arrays.n_model_values(cfg)


def estimate_train_bytes(model_cfg, n_batch, n_towers=1, n_seqs=2, recompute=True, n_trained=None):
    """Memory of training n_towers towers of n_batch examples (of n_seqs sequences) each in sequence on one device.

    One copy of the parameters, Adam slots and gradients; with several towers, also the running
    sum of their gradients. The towers run one after the other, so the activations and logits
    are one tower's. For one tower per device (several GPUs), n_towers=1 gives each device's
    need. Sequences are taken at full n_ctx (trimming only lowers the real need). `recompute`:
    the step's (`StepConfig.recompute`), which recomputes the GELU rather than keeping it. The
    fine-tuning LM head scores every row of the table (the original's head). `n_trained`: the values
    that have gradients and Adam state (LoRA, partial fine-tuning: `TuningConfig.n_trained`); None: all.
    """
    tokens = n_batch * n_seqs * model_cfg.n_ctx  # [n_batch, K sequences (Story Cloze: 2 endings), n_ctx] per tower
    return _estimate(model_cfg, tokens, model_cfg.n_table, summed=n_towers > 1, recompute=recompute,
                     runtime=RUNTIME_BYTES, n_trained=n_trained)


def estimate_pretrain_bytes(model_cfg, n_windows, n_micro=1):
    """Memory of one replica's pretraining update: n_windows windows of n_ctx tokens as n_micro micro-batches.

    As `estimate_train_bytes`, with one micro-batch's activations and logits (over the n_vocab
    token rows: `heads.next_token_losses`) alive at a time, and with several micro-batches the
    running sum of their gradients and its next value (the graph loop's two copies). Pretraining
    always recomputes the GELU. Per replica: workers or GPUs that share one machine's memory
    each need this much.
    """
    tokens = n_windows // n_micro * model_cfg.n_ctx
    return _estimate(model_cfg, tokens, model_cfg.n_vocab, summed=2 * (n_micro > 1), recompute=True,
                     runtime=PRETRAIN_RUNTIME_BYTES)


def _estimate(model_cfg, tokens, logit_rows, summed, recompute, runtime, n_trained=None):
    """The estimate of a step over `tokens` tokens at once, its LM head over `logit_rows` rows, with
    `summed` extra gradient-sized buffers (sums over towers or micro-batches), and `runtime` bytes;
    gradients, Adam's m and v (and the sums) for `n_trained` values (None: every parameter)."""
    T, n = model_cfg.n_ctx, n_params(model_cfg)
    recomputed = recompute and model_cfg.afn in RECOMPUTED_ACTIVATIONS
    per_embd = ACT_PER_EMBD - (RECOMPUTED_ACT_PER_EMBD if recomputed else 0)
    per_token_layer = per_embd * model_cfg.n_embd + ACT_PER_HEAD_T * model_cfg.n_head * T
    return MemoryEstimate(
        state=BYTES * (n + (STATE_COPIES - 1 + summed) * (n if n_trained is None else n_trained)),
        activations=BYTES * tokens * model_cfg.n_layer * per_token_layer,
        logits=LOGIT_COPIES * BYTES * tokens * logit_rows,
        runtime=runtime,
    )


def physical_memory_bytes():
    """RAM of this machine, or the cgroup's limit when lower; None when unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = int(f.read().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if total is None or 0 < limit < total:
            total = limit
    return total


def gib(n):
    """Bytes as a short human figure: '5.3 GiB'."""
    return f"{n / 2**30:.1f} GiB"


def device_memory(n_gpu):
    """(bytes the towers' device has, towers on it, where): the first GPU's memory or this machine's RAM.

    Listing physical GPUs does not initialise TensorFlow's devices, so this may run before the
    towers are set up. One tower per GPU when there are enough, else all towers in sequence on
    the first (`devices.setup_towers`).
    """
    from gpt1_tf.runtime import quiet_tensorflow
    with quiet_tensorflow():  # the first TensorFlow import of a run, and its CUDA probing
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return physical_memory_bytes(), n_gpu, "this machine"
    try:
        available = tf.config.experimental.get_device_details(gpus[0]).get("device_memory_size")
    except Exception:
        available = None
    towers = 1 if len(gpus) >= n_gpu else n_gpu
    return available, towers, "each GPU" if towers == 1 else "the GPU"


def check_memory(model_cfg, n_batch, n_gpu, n_seqs=2, recompute=True, n_trained=None):
    """Refuse, with one line, a run whose estimated memory clearly exceeds what the towers' device has."""
    available, towers, where = device_memory(n_gpu)
    need = estimate_train_bytes(model_cfg, n_batch, towers, n_seqs, recompute, n_trained)
    if available and need.total > available:
        how = f"{towers} towers in sequence" if towers > 1 else "one tower"
        _refuse(need, f"{how} of {n_batch} examples x {n_seqs} sequences x {model_cfg.n_ctx} tokens", where, available,
                f"lower --n_batch or --n_ctx (now --n_batch {n_batch} --n_ctx {model_cfg.n_ctx})")


def check_pretrain_memory(model_cfg, n_windows, n_micro):
    """Refuse, with one line, a pretraining run whose replica (n_windows windows per update) cannot fit.

    The line names the --n_micro that would fit, where one does.
    """
    available, _, where = device_memory(1)  # a replica per GPU, or this machine
    need = estimate_pretrain_bytes(model_cfg, n_windows, n_micro)
    if not available or need.total <= available:
        return
    fits = [k for k in range(n_micro + 1, n_windows + 1)
            if n_windows % k == 0 and estimate_pretrain_bytes(model_cfg, n_windows, k).total <= available]
    fix = f"--n_micro {fits[0]} would fit" if fits else "lower --n_ctx or the model's size"
    _refuse(need, f"a replica's micro-batches of {n_windows // n_micro} windows x {model_cfg.n_ctx} tokens, "
                  f"--n_micro {n_micro}", where, available, fix)


def _refuse(need, what, where, available, fix):
    from gpt1_tf.errors import Gpt1Error
    raise Gpt1Error(
        f"this run needs about {gib(need.total)} of memory ({what}: parameters and Adam state {gib(need.state)}, "
        f"activations {gib(need.activations)}, LM logits {gib(need.logits)}) but {where} has {gib(available)}; {fix}")
