"""`python train.py --dataset rocstories ...`: the original fine-tuning procedure on TensorFlow 2.

Reads top to bottom as the original: args -> seeds -> data -> model and optimizer on the towers
-> pretrained weights -> epochs of updates with evaluations -> best params -> submission -> analysis.
Added: checkpoints and --resume, atomic writes, progress bars, TensorBoard scalars, a numeric
guard, a memory check before TensorFlow starts, and one-line errors for bad input.

Test hooks (environment variables, for tests/test_reliability.py; not for normal use):
  GPT1_TF_INJECT_NAN_AT=<k>   the k-th training batch of the run (1-based, counted over epochs and
                              across --resume; the update number unless one was skipped) gets a NaN
                              loss and NaN gradients, as a numeric blow-up would.
  GPT1_TF_KILL_AT=<point>:<k> the process SIGKILLs itself the k-th time it reaches <point>, one of
                              KILL_POINTS: inside checkpoint writing, evaluation and best-params saving.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time

import numpy as np

from gpt1_tf.errors import Gpt1Error
from gpt1_tf.files import atomic_write

DATASETS = ("rocstories",)
EVAL_UPDATES = (1000, 2000, 4000, 8000, 16000, 32000)  # first-epoch evaluations of the original
# flags that may differ between an interrupted run and its --resume
# (--nan_policy too: a run stopped on a NaN may go on with --resume --nan_policy skip)
RESUME_FREE = ("resume", "save_every", "stop_after_updates", "nan_policy")
KEEP_CHECKPOINTS = 2
KILL_POINTS = ("eval", "best_params", "tf_written", "pruning")
_kill_counts = {}


def _kill_point(point):
    """Test hook: SIGKILL this process at the k-th `point` when GPT1_TF_KILL_AT=<point>:<k>."""
    assert point in KILL_POINTS, point
    where, _, k = os.environ.get("GPT1_TF_KILL_AT", "").partition(":")
    if where == point:
        _kill_counts[point] = _kill_counts.get(point, 0) + 1
        if _kill_counts[point] == int(k or 1):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def build_parser():
    p = argparse.ArgumentParser(
        prog="train.py", description="Fine-tune GPT-1 on ROCStories (Story Cloze), as OpenAI's original train.py.")
    # --- the original's flags and defaults ---
    p.add_argument("--desc", type=str, default=None, help="run name for log/save files (default: the dataset)")
    p.add_argument("--dataset", type=str, default=None, help="rocstories")
    p.add_argument("--log_dir", type=str, default="log/")
    p.add_argument("--save_dir", type=str, default="save/")
    p.add_argument("--data_dir", type=str, default="data/")
    p.add_argument("--submission_dir", type=str, default="submission/")
    p.add_argument("--submit", action="store_true", help="save best params and write the test predictions")
    p.add_argument("--analysis", action="store_true", help="print validation and test accuracy (needs --submit)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n_iter", type=int, default=3, help="epochs")
    p.add_argument("--n_batch", type=int, default=8, help="examples per tower")
    p.add_argument("--max_grad_norm", type=float, default=1)
    p.add_argument("--lr", type=float, default=6.25e-5)
    p.add_argument("--lr_warmup", type=float, default=0.002)
    p.add_argument("--n_ctx", type=int, default=512)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--embd_pdrop", type=float, default=0.1)
    p.add_argument("--attn_pdrop", type=float, default=0.1)
    p.add_argument("--resid_pdrop", type=float, default=0.1)
    p.add_argument("--clf_pdrop", type=float, default=0.1)
    p.add_argument("--l2", type=float, default=0.01)
    p.add_argument("--vector_l2", action="store_true")
    p.add_argument("--n_gpu", type=int, default=4, help="towers; the global batch is n_batch * n_gpu")
    p.add_argument("--opt", type=str, default="adam", choices=["adam"])
    p.add_argument("--afn", type=str, default="gelu", choices=["gelu", "swish", "relu"])
    p.add_argument("--lr_schedule", type=str, default="warmup_linear",
                   choices=["warmup_cosine", "warmup_linear", "warmup_constant"])
    p.add_argument("--encoder_path", type=str, default=None, help="default: the packaged encoder_bpe_40000.json")
    p.add_argument("--bpe_path", type=str, default=None, help="default: the packaged vocab_40000.bpe")
    p.add_argument("--n_transfer", type=int, default=12, help="pretrained layers to load; -1: train from scratch")
    p.add_argument("--lm_coef", type=float, default=0.5)
    p.add_argument("--b1", type=float, default=0.9)
    p.add_argument("--b2", type=float, default=0.999)
    p.add_argument("--e", type=float, default=1e-8)
    # --- added ---
    p.add_argument("--model_dir", type=str, default="model/", help="where params_*.npy and params_shapes.json are")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--save_every", type=int, default=1000, help="checkpoint every this many updates (and every epoch)")
    p.add_argument("--n_valid", type=int, default=374, help="validation stories split off the val file")
    p.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism on GPUs too (always on for CPU runs)")
    p.add_argument("--nan_policy", choices=["stop", "skip"], default="stop",
                   help="on a non-finite loss or gradient: stop (exit 1) or skip that update")
    p.add_argument("--xla", action="store_true",
                   help="compile the train/eval steps with XLA (static shapes: batches trimmed to a multiple of 8, "
                        "no packing; for GPUs)")
    p.add_argument("--mixed_precision", nargs="?", const="bfloat16", choices=["bfloat16", "float16"], default=None,
                   help="matmuls in bfloat16 (the default when given without a value) or float16 with dynamic "
                        "loss scaling; parameters, layer norms, softmaxes and losses stay float32. For GPUs")
    p.add_argument("--no_trim", action="store_true", help="do not trim batches to their longest sequence")
    p.add_argument("--exact", action="store_true",
                   help="the original's arithmetic bit for bit (padded batches, full LM head, no XLA): slower")
    p.add_argument("--stop_after_updates", type=int, default=None,
                   help="checkpoint and stop after this many updates (continue later with --resume)")
    return p


def validate_args(args):
    if args.dataset is None:
        raise Gpt1Error("--dataset is required (rocstories)")
    if args.dataset not in DATASETS:
        raise Gpt1Error(f"--dataset {args.dataset!r} is not supported; use one of: {', '.join(DATASETS)}")
    if args.n_ctx > 512:
        raise Gpt1Error(f"--n_ctx {args.n_ctx} > 512: GPT-1's position table has 512 rows")
    if args.n_embd % args.n_head:
        raise Gpt1Error(f"--n_embd {args.n_embd} must be divisible by --n_head {args.n_head}")
    for name in ("n_iter", "n_batch", "n_gpu", "n_ctx", "n_embd", "n_head", "n_layer", "save_every", "n_valid"):
        if getattr(args, name) < 1:
            raise Gpt1Error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.n_ctx < 8:
        raise Gpt1Error(f"--n_ctx {args.n_ctx} is too small (at least 8)")
    if args.analysis and not args.submit:
        raise Gpt1Error("--analysis reads the submission file: add --submit")
    if args.exact and args.mixed_precision:
        raise Gpt1Error("--exact is the original's float32 arithmetic: drop --mixed_precision")
    if args.desc is None:
        args.desc = args.dataset


def args_fingerprint(args):
    """Hash of the flags that define a run (a resumed run must use the same)."""
    d = {k: v for k, v in sorted(vars(args).items()) if k not in RESUME_FREE}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


class ResultLogger:
    """The original jsonl log (first line: all arguments + time), rewritten atomically on each line."""

    def __init__(self, path, lines=None, **kwargs):
        self.path = path
        if lines is None:
            kwargs.setdefault("time", time.time())
            lines = [json.dumps(kwargs)]
        self.lines = list(lines)
        self._flush()

    def log(self, **kwargs):
        kwargs.setdefault("time", time.time())
        self.lines.append(json.dumps(kwargs))
        self._flush()

    def _flush(self):
        atomic_write(self.path, lambda f: f.write(("\n".join(self.lines) + "\n").encode()))


def load_data(args, text_encoder):
    """Read, encode and transform the Story Cloze files; returns a dict of arrays and n_ctx."""
    from gpt1_tf import datasets
    splits = datasets.rocstories(args.data_dir, n_valid=args.n_valid)
    (trX1, trX2, trX3, trY), (vaX1, vaX2, vaX3, vaY), (teX1, teX2, teX3) = datasets.encode_dataset(
        splits, encoder=text_encoder)
    n_vocab = len(text_encoder.encoder)
    max_len = datasets.max_len_for(args.n_ctx)
    n_ctx = datasets.compute_n_ctx([(trX1, trX2, trX3), (vaX1, vaX2, vaX3), (teX1, teX2, teX3)], args.n_ctx)

    def transform(X1, X2, X3):
        return datasets.transform_roc(X1, X2, X3, n_ctx=n_ctx, max_len=max_len, n_vocab=n_vocab)

    trX, trM = transform(trX1, trX2, trX3)
    vaX, vaM = transform(vaX1, vaX2, vaX3)
    teX, teM = transform(teX1, teX2, teX3)
    return dict(trX=trX, trM=trM, trY=trY, vaX=vaX, vaM=vaM, vaY=vaY, teX=teX, teM=teM,
                n_ctx=n_ctx, n_vocab=n_vocab)


class Run:
    """State and side effects of one fine-tuning run (paths, logger, checkpoints)."""

    def __init__(self, args, trainer, data, *, log_lines=None):
        import tensorflow as tf
        from tqdm import tqdm
        self.tf, self.tqdm = tf, tqdm
        self.args, self.trainer, self.data = args, trainer, data
        self.n_batch_train = args.n_batch * args.n_gpu
        self.n_valid = len(data["vaY"])
        self.best_score = 0.0
        self.n_epochs = 0
        self.params_path = os.path.join(args.save_dir, args.desc, "best_params.jl")
        self.ckpt_dir = os.path.join(args.save_dir, args.desc, "checkpoints")
        self.log_path = os.path.join(args.log_dir, f"{args.desc}.jsonl")
        self.logger = None
        self.writer = None
        parts = dict(model=trainer.model, optimizer=trainer.optimizer)
        if trainer.loss_scale is not None:
            parts["loss_scale"] = trainer.loss_scale
        self.ckpt = tf.train.Checkpoint(**parts)
        self._last_checkpoint = None

    # --- evaluation (the original iter_apply / log / iter_predict) ---------------------------------
    def iter_apply(self, Xs, Ms, Ys, desc):
        from gpt1_tf.datasets import iter_data
        logits, cost = [], 0.0
        for xmb, mmb, ymb in iter_data(Xs, Ms, Ys, n_batch=self.n_batch_train, truncate=False,
                                       verbose=True, desc=desc):
            lg, losses = self.trainer.eval_batch(xmb, mmb, ymb)
            logits.append(lg)
            cost += float(np.mean(losses)) * len(xmb)  # the original: mean clf loss * n, summed
        return np.concatenate(logits, 0), cost

    def log(self):
        from sklearn.metrics import accuracy_score
        d, n_valid = self.data, self.n_valid
        tr_logits, tr_cost = self.iter_apply(d["trX"][:n_valid], d["trM"][:n_valid], d["trY"][:n_valid], "eval train")
        _kill_point("eval")
        va_logits, va_cost = self.iter_apply(d["vaX"], d["vaM"], d["vaY"], "eval valid")
        tr_cost = tr_cost / len(d["trY"][:n_valid])
        va_cost = va_cost / n_valid
        tr_acc = accuracy_score(d["trY"][:n_valid], np.argmax(tr_logits, 1)) * 100.
        va_acc = accuracy_score(d["vaY"], np.argmax(va_logits, 1)) * 100.
        n_updates = self.trainer.n_updates
        self.logger.log(n_epochs=self.n_epochs, n_updates=n_updates, tr_cost=tr_cost, va_cost=va_cost,
                        tr_acc=tr_acc, va_acc=va_acc)
        self.tqdm.write('%d %d %.3f %.3f %.2f %.2f' % (self.n_epochs, n_updates, tr_cost, va_cost, tr_acc, va_acc))
        with self.writer.as_default(step=n_updates):
            for k, v in dict(tr_cost=tr_cost, va_cost=va_cost, tr_acc=tr_acc, va_acc=va_acc).items():
                self.tf.summary.scalar(k, v)
        if self.args.submit and va_acc > self.best_score:
            self.best_score = va_acc
            self.save_params()
            _kill_point("best_params")

    def save_params(self):
        from gpt1_tf.pretrained import get_params, save_params
        save_params(self.params_path, get_params(self.trainer.model))

    def predict(self):
        from gpt1_tf.datasets import iter_data
        logits = []
        for xmb, mmb in iter_data(self.data["teX"], self.data["teM"], n_batch=self.n_batch_train,
                                  truncate=False, verbose=True, desc="predict"):
            logits.append(self.trainer.eval_batch(xmb, mmb)[0])
        predictions = np.argmax(np.concatenate(logits, 0), 1)
        path = os.path.join(self.args.submission_dir, "ROCStories.tsv")
        text = "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(predictions))
        atomic_write(path, lambda f: f.write(text.encode()))
        return path

    # --- checkpoints --------------------------------------------------------------------------
    # A checkpoint is a TF checkpoint `ckpt-<update>-e<epoch>p<batch>.*` (model + optimizer) and its
    # JSON sidecar `state-<update>.json` (loop state, RNG, log lines) pointing at it. The sidecar is
    # written atomically after the TF files, so a sidecar only ever names a complete TF checkpoint;
    # each TF prefix is written once (a new name when one update is saved twice, at the end of an
    # epoch), so a complete checkpoint is never overwritten in place. Files no kept sidecar names
    # (a killed write, TF's `_temp` folders, stale `.tmp` files) are removed by `_prune`.
    def checkpoint(self, position, rng_state, n_skipped=0):
        """Model + optimizer (TF checkpoint) and the loop state (JSON sidecar), then prune old ones."""
        n = self.trainer.n_updates
        name = f"ckpt-{n:08d}-e{self.n_epochs}p{position}"
        if name == self._last_checkpoint:
            return  # already saved at this point (e.g. --save_every and --stop_after_updates together)
        prefix = self.ckpt.write(os.path.join(self.ckpt_dir, name))
        _kill_point("tf_written")
        state = dict(n_updates=n, n_epochs=self.n_epochs, position=position, best_score=self.best_score,
                     n_skipped=n_skipped, rng_state=_rng_to_json(rng_state), log_lines=self.logger.lines,
                     fingerprint=args_fingerprint(self.args), tf_prefix=os.path.basename(prefix))
        atomic_write(os.path.join(self.ckpt_dir, f"state-{n:08d}.json"), lambda f: f.write(json.dumps(state).encode()))
        self._last_checkpoint = name
        self._prune(keep=KEEP_CHECKPOINTS)

    def _sidecars(self):
        if not os.path.isdir(self.ckpt_dir):
            return []
        return sorted(f for f in os.listdir(self.ckpt_dir) if f.startswith("state-") and f.endswith(".json"))

    def _prune(self, keep):
        """Keep the newest `keep` checkpoints; remove older sidecars first, then every file none names."""
        if not os.path.isdir(self.ckpt_dir):
            return
        sidecars = self._sidecars()
        kept, old = sidecars[len(sidecars) - keep:] if keep else [], sidecars[:len(sidecars) - keep]
        for name in old:  # a sidecar goes before its TF files: never a sidecar naming missing files
            os.unlink(os.path.join(self.ckpt_dir, name))
        if old:
            _kill_point("pruning")
        prefixes = set()
        for name in kept:
            try:
                with open(os.path.join(self.ckpt_dir, name), encoding="utf-8") as f:
                    prefixes.add(json.load(f)["tf_prefix"])
            except Exception:  # corrupt: restore_latest skips it; its TF files are not worth keeping
                pass
        for name in os.listdir(self.ckpt_dir):
            if name in kept or not (name.startswith("ckpt-") or name.startswith(".state-")):
                continue
            if any(name == p + ".index" or name.startswith(p + ".data-") for p in prefixes):
                continue
            path = os.path.join(self.ckpt_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)  # TF's ckpt-..._temp folder of a killed write
            else:
                os.unlink(path)

    def start_fresh(self):
        """A new run: drop an earlier run's checkpoints (they would outrank this run's when pruned)."""
        if self._sidecars():
            print(f"{self.ckpt_dir}: removing the checkpoints of an earlier run (no --resume)", file=sys.stderr)
        self._prune(keep=0)

    def remove_stale_temp_files(self):
        """`.tmp` files a killed atomic write left next to this run's outputs (never read)."""
        owned = (self.log_path, self.params_path, os.path.join(self.args.submission_dir, "ROCStories.tsv"))
        for path in owned:
            directory, base = os.path.split(path)
            if os.path.isdir(directory or "."):
                for name in os.listdir(directory or "."):
                    if name.startswith(f".{base}.") and name.endswith(".tmp"):
                        os.unlink(os.path.join(directory, name))

    def restore_latest(self):
        """Restore the newest readable checkpoint (older ones as fall-back); returns its state or None."""
        for name in reversed(self._sidecars()):
            path = os.path.join(self.ckpt_dir, name)
            try:
                with open(path, encoding="utf-8") as f:
                    state = json.load(f)
                fingerprint, prefix = state["fingerprint"], os.path.join(self.ckpt_dir, state["tf_prefix"])
            except Exception as err:  # a garbled sidecar
                _warn_unreadable(path, err)
                continue
            if fingerprint != args_fingerprint(self.args):
                raise Gpt1Error(f"{path}: this checkpoint was made with other flags; resume with the same "
                                "flags, or remove the checkpoint directory to start over")
            try:
                self.ckpt.read(prefix).assert_existing_objects_matched()
                if self.trainer.n_updates != state["n_updates"]:
                    raise ValueError(f"holds update {self.trainer.n_updates}, its sidecar says {state['n_updates']}")
            except Exception as err:  # truncated or garbled TF files (checksums): fall back
                _warn_unreadable(prefix, err)
                continue
            self.n_epochs, self.best_score = state["n_epochs"], state["best_score"]
            self._last_checkpoint = state["tf_prefix"]
            return state
        if self._sidecars():  # the model may hold half a failed restore: do not train on it
            raise Gpt1Error(f"{self.ckpt_dir}: no readable checkpoint to resume from; remove the folder "
                            "and run again without --resume")
        return None


def _warn_unreadable(path, err):
    reason = f"{type(err).__name__}: {err}".splitlines()[0][:160]
    print(f"warning: {path}: unreadable checkpoint ({reason}); falling back to an older one", file=sys.stderr)


def _rng_to_json(state):
    kind, keys, pos, has_gauss, cached = state
    return [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _rng_from_json(state):
    kind, keys, pos, has_gauss, cached = state
    return (kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


def check_memory(args, model_cfg):
    """Refuse, with one line, a run whose estimated memory clearly exceeds what the towers' device has.

    Runs before TensorFlow sets up its devices (listing physical GPUs does not initialise them).
    """
    from gpt1_tf.memory import estimate_train_bytes, gib, physical_memory_bytes
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            available = tf.config.experimental.get_device_details(gpus[0]).get("device_memory_size")
        except Exception:
            available = None
        # one tower per GPU when there are enough, else all towers share the first (devices.py)
        towers = 1 if len(gpus) >= args.n_gpu else args.n_gpu
        where = "each GPU" if towers == 1 else "the GPU"
    else:
        available, towers, where = physical_memory_bytes(), args.n_gpu, "this machine"
    if not available:
        return  # unknown: let TensorFlow find out
    need = estimate_train_bytes(model_cfg, args.n_batch, towers)
    if need.total > available:
        lower = "--n_batch" + (", --n_gpu" if towers > 1 else "") + " or --n_ctx"
        raise Gpt1Error(
            f"this run needs about {gib(need.total)} of memory ({towers} tower(s) of {args.n_batch} stories x 2 "
            f"endings x {model_cfg.n_ctx} tokens: parameters and Adam state {gib(need.state)}, activations "
            f"{gib(need.activations)}, LM logits {gib(need.logits)}) but {where} has {gib(available)}; "
            f"lower {lower} (now --n_batch {args.n_batch} --n_gpu {args.n_gpu} --n_ctx {args.n_ctx})")


def train(args):
    """The whole run; raises Gpt1Error on bad input before anything is written."""
    validate_args(args)
    from gpt1_tf import pretrained
    from gpt1_tf.config import ModelConfig, OptConfig
    from gpt1_tf.text_utils import TextEncoder

    # --- inputs, all validated before TensorFlow starts and before any file is written ---
    text_encoder = TextEncoder(args.encoder_path, args.bpe_path)
    data = load_data(args, text_encoder)
    n_ctx, n_vocab = data["n_ctx"], data["n_vocab"]
    shards = None
    if args.n_transfer >= 0 and not args.resume:
        shards = pretrained.load_shards(args.model_dir)
    model_cfg = ModelConfig(n_vocab=n_vocab, n_ctx=n_ctx, n_embd=args.n_embd, n_head=args.n_head,
                            n_layer=args.n_layer, afn=args.afn, embd_pdrop=args.embd_pdrop,
                            attn_pdrop=args.attn_pdrop, resid_pdrop=args.resid_pdrop, clf_pdrop=args.clf_pdrop,
                            compute_dtype=args.mixed_precision or "float32")
    check_memory(args, model_cfg)
    n_train = len(data["trY"])
    n_batch_train = args.n_batch * args.n_gpu
    n_updates_total = (n_train // n_batch_train) * args.n_iter
    if n_updates_total < 1:
        raise Gpt1Error(f"{n_train} training stories make no full batch of n_batch * n_gpu = {n_batch_train}")
    opt_cfg = OptConfig(lr=args.lr, lr_schedule=args.lr_schedule, lr_warmup=args.lr_warmup,
                        t_total=n_updates_total, b1=args.b1, b2=args.b2, e=args.e, l2=args.l2,
                        vector_l2=args.vector_l2, max_grad_norm=args.max_grad_norm)
    random.seed(args.seed)
    np.random.seed(args.seed)
    # the original draws the 3 special rows from the global NumPy RNG whatever n_transfer is
    special_rows = (np.random.randn(3, args.n_embd) * 0.02).astype(np.float32)
    init = pretrained.init_from_pretrained(shards, model_cfg, special_rows, args.n_transfer,
                                           source=args.model_dir) if shards is not None else []

    # --- towers: logical devices must be configured before TensorFlow initialises them ---
    from gpt1_tf.devices import make_strategy, setup_towers
    devices, towers_note = setup_towers(args.n_gpu)
    import keras
    import tensorflow as tf
    from sklearn.utils import shuffle
    from tqdm import tqdm

    from gpt1_tf.datasets import iter_data
    from gpt1_tf.trainer import Trainer

    if args.deterministic or not (tf.config.list_physical_devices("GPU") or args.exact):
        # same seed -> same run: always on CPU (cheap there), on request on GPUs. Not with --exact on
        # CPU: determinism swaps in other kernels (e.g. for sparse softmax cross-entropy) whose float
        # path is not the original's; --exact's own CPU kernels are deterministic already.
        tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(args.seed)
    state = np.random.get_state()
    keras.utils.set_random_seed(args.seed)  # initialisers of a fresh model
    np.random.set_state(state)  # ... without touching the NumPy stream the original uses

    print(towers_note)
    print(f"n_ctx {n_ctx}, {n_train} train / {len(data['vaY'])} valid / {len(data['teX'])} test stories, "
          f"{n_updates_total} updates of {n_batch_train}")
    strategy = make_strategy(devices)
    trainer = Trainer(model_cfg, opt_cfg, strategy=strategy, lm_coef=args.lm_coef, seed=args.seed,
                      trim=not args.no_trim, jit_compile=args.xla, exact=args.exact)
    for p, a in zip(trainer.params, init):
        p.assign(a)

    run = Run(args, trainer, data)
    state = run.restore_latest() if args.resume else None
    if args.resume and state is None:
        if args.n_transfer >= 0:
            raise Gpt1Error("--resume found no checkpoint and the pretrained weights were not loaded; "
                            "run again without --resume")
        print("no checkpoint to resume from: starting a new run", file=sys.stderr)
    run.remove_stale_temp_files()
    if state is not None:
        run.logger = ResultLogger(run.log_path, lines=state["log_lines"])
        np.random.set_state(_rng_from_json(state["rng_state"]))
        start_position = state["position"]
        n_skipped = state.get("n_skipped", 0)
        print(f"resumed at update {state['n_updates']} (epoch {state['n_epochs']}, batch {start_position})")
    else:
        run.start_fresh()
        run.logger = ResultLogger(run.log_path, **vars(args))
        start_position = 0
        n_skipped = 0
        if args.submit:
            run.save_params()
    run.writer = tf.summary.create_file_writer(os.path.join(args.log_dir, args.desc))

    inject_nan_at = int(os.environ.get("GPT1_TF_INJECT_NAN_AT") or 0)  # test hook (module docstring)
    n_batches = n_train // n_batch_train
    for _ in range(run.n_epochs, args.n_iter):
        rng_state = np.random.get_state()
        trX, trM, trY = shuffle(data["trX"], data["trM"], data["trY"], random_state=np.random.mtrand._rand)
        bar = tqdm(iter_data(trX, trM, trY, n_batch=n_batch_train, truncate=True), total=n_batches,
                   desc=f"epoch {run.n_epochs + 1}/{args.n_iter}", ncols=100, leave=False, file=sys.stderr)
        for position, (xmb, mmb, ymb) in enumerate(bar):
            if position < start_position:
                continue
            n_update = trainer.n_updates
            grads, clf_losses, norm = trainer.compute_gradients(xmb, mmb, ymb, n_update)
            cost = float(tf.reduce_mean(clf_losses))
            if run.n_epochs * n_batches + position + 1 == inject_nan_at:
                grads, cost, norm = [g * np.float32("nan") for g in grads], float("nan"), float("nan")
            if trainer.overflowed(clf_losses, norm):  # float16 loss scaling: skip, scale halved
                run.logger.log(n_epochs=run.n_epochs, n_updates=n_update, loss_scale_overflow=n_update + 1,
                               loss_scale=trainer.loss_scale.value())
                continue
            if not (np.isfinite(cost) and np.isfinite(float(norm))):
                if args.nan_policy == "stop":
                    raise Gpt1Error(f"non-finite loss ({cost}) or gradient norm ({float(norm)}) at update "
                                    f"{n_update + 1}; stopped. Last checkpoint and best params are kept; "
                                    "lower --lr or use --nan_policy skip")
                n_skipped += 1
                run.logger.log(n_epochs=run.n_epochs, n_updates=n_update, skipped_update=n_update + 1,
                               n_skipped=n_skipped)
                tqdm.write(f"warning: non-finite loss or gradient norm at update {n_update + 1}: skipped "
                           f"({n_skipped} so far)", file=sys.stderr)
                continue
            lr = float(trainer.optimizer.scheduled_lr())  # this update's rate (read before it counts)
            trainer.apply_gradients(grads)
            n_updates = trainer.n_updates
            bar.set_postfix(loss=f"{cost:.3f}")
            with run.writer.as_default(step=n_updates):
                tf.summary.scalar("train_clf_loss", cost)
                tf.summary.scalar("lr", lr)
            evaluate = n_updates in EVAL_UPDATES and run.n_epochs == 0
            stop = args.stop_after_updates is not None and n_updates >= args.stop_after_updates
            if evaluate:
                run.log()
            if evaluate or stop or n_updates % args.save_every == 0:
                run.checkpoint(position + 1, rng_state, n_skipped)
            if stop:
                bar.close()
                run.writer.flush()
                print(f"stopped after update {n_updates} (--stop_after_updates); continue with --resume")
                return trainer
        bar.close()
        start_position = 0
        run.n_epochs += 1
        run.log()
        run.checkpoint(0, np.random.get_state(), n_skipped)
    run.writer.flush()

    if args.submit:
        pretrained.set_params(trainer.model, pretrained.load_params(run.params_path, model_cfg), run.params_path)
        path = run.predict()
        print(f"wrote {path}")
        if args.analysis:
            from gpt1_tf.analysis import rocstories as rocstories_analysis
            rocstories_analysis(args.data_dir, path, run.log_path)
    return trainer


def main(argv=None):
    """Entry point: one-line errors and a non-zero exit, no traceback, for bad input."""
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except Gpt1Error as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run again with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    return 0
