"""Parameters in the original order, the original weight shards, and `best_params.jl` files.

- `get_params` / `set_params`: the model's arrays as a list in the original variable order
  (we; 12 per layer; clf/w, clf/b), the format of the original `best_params.jl` (joblib).
- `load_shards` / `save_shards`: OpenAI's `params_0.npy` .. `params_9.npy` + `params_shapes.json`
  (the flattened float32 arrays concatenated and split in 10 files).
- `init_from_pretrained`: the original initialisation (tokens | 3 special rows | positions[:n_ctx]).
Every array is checked for shape; bad files raise a one-line `DataError` naming the file.
The order, shapes and counts of both lists are the table's in `gpt1_tf.network.arrays`.
"""
import json
import os

import joblib
import numpy as np

from gpt1_tf.network import tokens
from gpt1_tf.network.arrays import (MODEL_LAYERS, N_PER_LAYER, SHARD_FIRST, SHARD_LAYERS, layer_shapes, model_shapes,
                                    shard_layers as _shard_layers)
from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.files import atomic_write, read_text

N_SHARDS = 10
SHAPES_FILE = "params_shapes.json"
WEIGHTS_HELP = ("put GPT-1's weights there: OpenAI's params_0.npy .. params_9.npy and params_shapes.json "
                "(github.com/openai/finetune-transformer-lm, folder model/), or HuggingFace's config.json and "
                "model.safetensors (openai-community/openai-gpt)")


def weights_help(advice=None):
    """WEIGHTS_HELP, then a program's own advice (train.py's `--n_transfer -1`, generate.py's `--params`)."""
    return WEIGHTS_HELP + (f"; {advice}" if advice else "")


def expected_shapes(cfg):
    """Shapes of the model's arrays in the original order, for a `ModelConfig` (`arrays.model_shapes`)."""
    return model_shapes(cfg)


def head_of(cfg):
    """What a params file's classifier is: the task format and classes of the model that wrote it."""
    return {"task_format": cfg.task_format, "n_classes": cfg.n_classes}


def head_path(params_path):
    """The file beside a `best_params.jl` that says whose head it holds (the .jl stays the original's list)."""
    return os.path.splitext(params_path)[0] + ".head.json"


def _describe(head):
    n = head["n_classes"]
    return f"{head['task_format']}" + (f" with {n} classes" if n else "")


def get_params(model, copy=True):
    """The model's parameters as NumPy arrays in the original order, LoRA merged (`merged_in_order`).

    `copy=False`: read-only views of the variables' current buffers, no memory added (an update
    after this writes new buffers, so the views keep these values); for writing them out.
    """
    if not copy:
        import tensorflow as tf  # the model's own, already imported
        return [np.asarray(tf.convert_to_tensor(p)) for p in model.merged_in_order()]
    return [np.asarray(p.numpy()) for p in model.merged_in_order()]


def check_params(arrays, cfg, source, *, missing_head=None, release=False):
    """Raise DataError unless `arrays` is a list of the right number of arrays of the right shapes.

    `missing_head`: the head file a params file lacks (`head_path`), named when the classifier differs.
    `release`: each entry of the list `arrays` is set to None once checked, so that arrays mapped
    from a file are let go one by one: checking finiteness reads every page, and the whole list
    held at once added the file's 465 MB to a full-size run's peak when it read its best params back
    (`restore_params`).
    """
    want = expected_shapes(cfg)
    if not isinstance(arrays, (list, tuple)):
        raise DataError(source, f"expected a list of {len(want)} arrays, found {type(arrays).__name__}")
    if len(arrays) != len(want):
        raise DataError(source, f"expected {len(want)} arrays (n_layer {cfg.n_layer}), found {len(arrays)}")
    for i, shape in enumerate(want):
        _check_array(i, arrays[i], shape, cfg, source, missing_head, clf=i == len(want) - 2)
        if release and isinstance(arrays, list):
            arrays[i] = None


def _check_array(i, a, shape, cfg, source, missing_head, clf):
    """check_params' checks of the i-th array: its shape (`clf`: clf/w, named apart), dtype and values."""
    found = getattr(a, "shape", None)
    if clf and found is not None and len(found) == 2 and found[0] == shape[0] and found[1] != shape[1]:
        raise DataError(source, _other_classifier(tuple(found), tuple(shape), cfg, missing_head))
    if found is None or tuple(found) != tuple(shape):
        raise DataError(source, f"array {i} has shape {found}, expected {tuple(shape)}")
    if not np.issubdtype(np.asarray(a).dtype, np.floating):
        raise DataError(source, f"array {i} has dtype {np.asarray(a).dtype}, expected float32")
    if not all(np.all(np.isfinite(rows)) for _, _, rows in row_blocks(a)):
        raise DataError(source, f"array {i} has non-finite values")


def _other_classifier(found, shape, cfg, missing_head):
    """The problem of a classifier of another shape: another task's params, or (no head file) an unknown head."""
    if missing_head is None:
        return (f"its classifier clf/w has shape {found}, this model's {_describe(head_of(cfg))} head has {shape}: "
                "the heads differ (the params of another task?); nothing loaded")
    return (f"its classifier clf/w has shape {found}, not the {shape} of a {_describe(head_of(cfg))} head, and "
            f"{os.path.basename(missing_head)} is missing beside it (train.py writes it with the params to say their "
            "head: task format and classes); put it back; nothing loaded")


def set_params(model, arrays, source="params"):
    """Assign arrays (original order) to the model, each shape checked."""
    check_params(arrays, model.cfg, source)
    for p, a in zip(model.params_in_order(), arrays):
        p.assign(np.asarray(a, dtype=np.float32))
    _merged_assigned(model)


def save_params(path, arrays, cfg=None):
    """joblib dump of the list of arrays (the original `best_params.jl`), atomically; with `cfg`, its head beside it."""
    if cfg is not None:
        atomic_write(head_path(path), lambda f: f.write(json.dumps(head_of(cfg)).encode()))
    atomic_write(path, lambda f: joblib.dump([np.asarray(a) for a in arrays], f))


def restore_params(model, path):
    """A `best_params.jl` back into `model`, checked first; each array mapped from the file and let go once used.

    Two passes over the mapped file: every array checked (and unmapped) before any is assigned, so
    a bad file loads nothing; then each assigned and unmapped in turn. The file is never held
    whole: when the check held every array, a full-size run reading its best parameters back rose
    ~0.5 GiB above its training plateau (5.78 against 5.26 GiB). Both passes go block by block
    (`row_blocks`) and each block is assigned into the variable in place: restoring a full-size
    file adds 74-90 MiB to the RSS at its peak, against 372 MiB when each array was mapped whole and
    assigned as a new buffer (`benchmarks/bench_restore.py`; BENCHMARKS.md, run J).
    """
    _check_file(read_params_file(path, mmap=True), path, model.cfg, release=True)
    arrays = read_params_file(path, mmap=True)
    for i, p in enumerate(model.params_in_order()):
        for start, stop, rows in row_blocks(arrays[i]):
            _assign_rows(p, start, stop, rows.astype(np.float32, copy=False))
        arrays[i] = None  # unmapped now, not all at the end
    _merged_assigned(model)


def _merged_assigned(model):
    """Merged arrays (LoRA's W + s A B, the special rows) are in the base variables now: the adapters add nothing more."""
    from gpt1_tf.network import lora
    lora.clear_adapters(getattr(model, "transformer", model))


def _assign_rows(variable, start, stop, rows):
    """variable[start:stop] = rows, in place (the op without a read first: a read would share the
    variable's buffer, and the assignment would copy all of it)."""
    import tensorflow as tf  # the model's own, already imported
    tf.raw_ops.ResourceStridedSliceAssign(ref=variable.handle, begin=[start], end=[stop], strides=[1], value=rows)


BLOCK_BYTES = 16 << 20


def row_blocks(a, block_bytes=None):
    """(start, stop, a[start:stop]) over the rows of array `a` [n, ...], in blocks of about `block_bytes`.

    A C-ordered `np.memmap` (a params file read with `mmap`) is read block by block from its file
    rather than through the mapping, so that no page of the file stays resident: touching the
    mapping of the embedding table kept its 125 MB in the RSS until the array was let go.
    """
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    if a.ndim == 0:
        yield 0, 1, a
        return
    n = a.shape[0]
    step = max(1, (block_bytes or BLOCK_BYTES) // max(1, a.nbytes // max(n, 1)))
    if not (isinstance(a, np.memmap) and a.filename and a.flags.c_contiguous) or n <= step:
        for start in range(0, n, step):
            yield start, min(n, start + step), a[start:start + step]
        return
    with open(a.filename, "rb") as f:
        for start in range(0, n, step):
            stop = min(n, start + step)
            yield start, stop, _read_rows(f, a, start, stop)


def _read_rows(f, a, start, stop):
    """Rows start:stop of the C-ordered memmap `a`, read from its open file `f`."""
    row_bytes = a.nbytes // a.shape[0]
    f.seek(a.offset + start * row_bytes)
    data = f.read((stop - start) * row_bytes)
    if len(data) != (stop - start) * row_bytes:
        raise DataError(a.filename, "the file ends inside an array: truncated?")
    return np.frombuffer(data, a.dtype).reshape((stop - start,) + a.shape[1:])


def read_params_file(path, mmap=False):
    """The unchecked contents of a `best_params.jl` (a joblib file); `mmap`: arrays mapped from the file, not read."""
    if not os.path.exists(path):
        raise DataError(path, "no such params file")
    try:
        return joblib.load(path, mmap_mode="r" if mmap else None)
    except Exception as err:  # joblib/pickle raise many types on corrupt input
        raise DataError(path, f"not a readable joblib params file ({type(err).__name__}: {err})".splitlines()[0])


def load_params(path, cfg, mmap=False):
    """Load a `best_params.jl` and check it against `cfg` (`mmap`: see `read_params_file`)."""
    arrays = read_params_file(path, mmap)
    _check_file(arrays, path, cfg)
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def _check_file(arrays, path, cfg, release=False):
    """check_params on a params file's contents, then its recorded head (`release`: see check_params)."""
    check_params(arrays, cfg, path, missing_head=None if os.path.exists(head_path(path)) else head_path(path),
                 release=release)
    _check_head(path, cfg)


def recorded_head(path):
    """The head `best_params.head.json` records beside a params file, or None (the original's files have none)."""
    if not os.path.exists(head_path(path)):
        return None
    try:
        head = json.loads(read_text(head_path(path), "params head"))
        return {"task_format": head["task_format"], "n_classes": head["n_classes"]}
    except (ValueError, KeyError, TypeError):
        raise DataError(head_path(path), "not a head description ({\"task_format\": ..., \"n_classes\": ...})") from None


def _check_head(path, cfg):
    """Refuse a params file whose recorded head (`head_path`) is not this model's, even when the shapes agree."""
    head = recorded_head(path)
    if head is None:
        return  # written by the original code or by hand: the shapes were all there is to check
    if head != head_of(cfg):
        raise DataError(path, f"holds a {_describe(head)} head, this model's is {_describe(head_of(cfg))}: "
                              "the heads differ (the params of another task?); nothing loaded")


# --- the original shard format -------------------------------------------------------------------

def load_shards(model_dir, advice=None):
    """Read params_shapes.json and params_0..9.npy: the list of arrays (positions, tokens, layers...).

    `advice`: what the reading program adds to WEIGHTS_HELP when the folder or a file is missing.
    """
    shapes_path = os.path.join(model_dir, SHAPES_FILE)
    if not os.path.isdir(model_dir):
        raise DataError(model_dir, f"no such model directory: {weights_help(advice)}")
    if not os.path.exists(shapes_path):
        raise DataError(shapes_path, f"missing: {weights_help(advice)}")
    try:
        shapes = json.loads(read_text(shapes_path, "weight shapes"))
    except ValueError as err:
        raise DataError(shapes_path, f"not valid JSON ({str(err).splitlines()[0]})") from None
    if not _is_shape_list(shapes):
        raise DataError(shapes_path, "expected a JSON list of shapes (lists of positive integers), at least 2")
    if (len(shapes) - len(SHARD_FIRST)) % N_PER_LAYER:
        raise DataError(shapes_path, f"{len(shapes)} shapes: expected {len(SHARD_FIRST)} + {N_PER_LAYER} per layer")
    sizes = [int(np.prod(s)) for s in shapes]
    flat = []
    for name in shard_names():
        path = os.path.join(model_dir, name)
        if not os.path.exists(path):
            raise DataError(path, f"missing shard: {weights_help(advice)}")
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as err:
            raise DataError(path, f"not a readable .npy file ({type(err).__name__}: {err})".splitlines()[0])
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
            raise DataError(path, f"expected a 1-D float array, found shape {a.shape} dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise DataError(path, f"{bad} non-finite values (NaN or Inf): a corrupt weight shard")
        flat.append(a.astype(np.float32, copy=False))
    total = sum(len(a) for a in flat)
    if total != sum(sizes):
        raise DataError(os.path.join(model_dir, "params_*.npy"),
                        f"shards hold {total} values, params_shapes.json expects {sum(sizes)} (truncated or mismatched)")
    offsets = np.cumsum(sizes)
    arrays = np.split(np.concatenate(flat, 0), offsets)[:-1]
    return [a.reshape(s) for a, s in zip(arrays, shapes)]


def _is_shape_list(shapes):
    """A list of at least 2 shapes, each a non-empty list of positive ints (JSON `true` is no int here)."""
    def is_dim(d):
        return type(d) is int and d > 0
    return (isinstance(shapes, list) and len(shapes) >= 2
            and all(isinstance(s, list) and s and all(is_dim(d) for d in s) for s in shapes))


def shard_names(n_shards=N_SHARDS):
    """The shards' file names, params_0.npy .. params_9.npy (beside SHAPES_FILE)."""
    return tuple(f"params_{n}.npy" for n in range(n_shards))


def save_shards(arrays, model_dir, n_shards=N_SHARDS):
    """Write arrays (the shard order: positions, tokens, then 12 per layer) as the original files."""
    os.makedirs(model_dir, exist_ok=True)
    flat = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])
    for name, piece in zip(shard_names(n_shards), np.array_split(flat, n_shards)):
        atomic_write(os.path.join(model_dir, name), lambda f, piece=piece: np.save(f, piece))
    shapes = [list(np.shape(a)) for a in arrays]
    atomic_write(os.path.join(model_dir, SHAPES_FILE),
                 lambda f: f.write(json.dumps(shapes).encode()))


def shard_layers(shards):
    """Number of transformer layers in a shard list."""
    return _shard_layers(len(shards))


def init_from_pretrained(shards, cfg, special_rows, n_transfer, source="model/"):
    """Initial arrays for the first transferred variables, as the original built them.

    we = concat(tokens, special_rows, positions[:n_ctx]); then layer arrays. n_transfer counts
    transformer layers: -1 loads nothing, 0 only `we`, k the first k layers too (12 = all of GPT-1).
    When the model has fewer layers than n_transfer, its n_layer layers are loaded (the original
    crashed). Returns the list to assign to the first len(list) variables in the original order.
    """
    if n_transfer < 0:
        return []
    positions, tokens = shards[0], shards[1]
    if tokens.shape != (cfg.n_vocab, cfg.n_embd):
        raise DataError(source, f"token embedding has shape {tokens.shape}, the model expects "
                                f"{(cfg.n_vocab, cfg.n_embd)} (n_vocab, n_embd)")
    if positions.ndim != 2 or positions.shape[1] != cfg.n_embd or positions.shape[0] < cfg.n_ctx:
        raise DataError(source, f"position embedding has shape {positions.shape}, the model needs at least "
                                f"{(cfg.n_ctx, cfg.n_embd)} (n_ctx, n_embd)")
    special_rows = np.asarray(special_rows, dtype=np.float32)
    assert special_rows.shape == (cfg.n_special, cfg.n_embd), special_rows.shape
    we = np.concatenate([tokens, special_rows, positions[:cfg.n_ctx]], 0)
    n_layers = min(n_transfer, cfg.n_layer)
    if n_layers > shard_layers(shards):
        raise Gpt1Error(f"--n_transfer {n_transfer} asks for {n_layers} layers but {source} holds "
                        f"{shard_layers(shards)}")
    layer_arrays = shards[SHARD_LAYERS][:N_PER_LAYER * n_layers]
    want = layer_shapes(cfg.n_embd) * n_layers
    for i, (a, shape) in enumerate(zip(layer_arrays, want)):
        if tuple(a.shape) != tuple(shape):
            raise DataError(source, f"array {i + len(SHARD_FIRST)} (layer {i // N_PER_LAYER}) has shape {a.shape}, "
                                    f"the model expects {tuple(shape)}")
    return [we] + list(layer_arrays)


def export_shards(model, model_dir):
    """Write a model's transformer (not the classifier) as OpenAI-format shards.

    The position rows hold only the model's n_ctx positions (the original table had 512).
    """
    cfg = model.cfg
    params = get_params(model)
    we = params[0]
    token_rows = we[:cfg.n_vocab]
    position_rows = we[tokens.position_id(cfg.n_vocab, 0, cfg.n_special):]
    save_shards([position_rows, token_rows] + params[MODEL_LAYERS], model_dir)
