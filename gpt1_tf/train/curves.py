"""Learning curves of a run log as one PNG (`train.py --analysis`, `python analysis.py LOG`).

Two steps, each testable alone: `curves_of` turns a log's evaluation records into panels of
series (the numbers to draw, null values left out), `draw` renders them with matplotlib's Agg
backend (no display) and writes the PNG atomically. matplotlib is imported in `draw` only, so
nothing else of the package loads it. Which kind of log it is (fine-tuning or pretraining) is
`gpt1_tf.train.logs`'s to say.
"""
import dataclasses
import math
import os

from gpt1_tf import metrics
from gpt1_tf.errors import DataError
from gpt1_tf.files import atomic_write
from gpt1_tf.train import logs


@dataclasses.dataclass(frozen=True)
class Series:
    """One line of a panel: its label and its points (x: update number, y: value), in the log's order."""
    label: str
    x: tuple
    y: tuple


@dataclasses.dataclass(frozen=True)
class Panel:
    """One plot: the y axis's label, its series (each with at least one point), a log scale or not."""
    ylabel: str
    series: tuple
    log_y: bool = False


@dataclasses.dataclass(frozen=True)
class Curves:
    """What one picture shows: a title over panels side by side, sharing the x axis's label."""
    title: str
    panels: tuple
    xlabel: str = "update"


@dataclasses.dataclass(frozen=True)
class Style:
    """The picture's size: width x height inches at dpi dots an inch (900 x 360 pixels by default)."""
    width: float = 9.0
    height: float = 3.6
    dpi: int = 100


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def series(evaluations, key, label, log_path):
    """`key` against n_updates over [(line, record)]; a null (or non-finite) value is left out, not drawn as 0."""
    x, y = [], []
    for line, record in evaluations:
        value = record.get(key)
        if value is None:
            continue
        if not _number(value):
            raise DataError(log_path, f"{key!r} is {value!r}, not a number", line)
        if not _number(record.get("n_updates")):
            raise DataError(log_path, "evaluation record without a numeric 'n_updates'", line)
        if math.isfinite(value):
            x.append(record["n_updates"])
            y.append(value)
    return Series(label, tuple(x), tuple(y))


def panel(ylabel, evaluations, keys, log_path, log_y=False):
    """A Panel of the series of `keys` [(key, label)] that have a point; those without any are left out."""
    found = (series(evaluations, key, label, log_path) for key, label in keys)
    return Panel(ylabel, tuple(s for s in found if s.x), log_y)


def kind_of(evaluations, log_path):
    """The log's kind (`logs.log_kind`), the same for every record; else a DataError at the first that differs."""
    first = logs.log_kind(evaluations[0][1])
    for line, record in evaluations:
        kind = logs.log_kind(record)
        if kind is None:
            raise DataError(log_path, "neither a fine-tuning record (tr_<metric>, va_<metric>: train.py) "
                                      f"nor a pretraining one ({logs.PERPLEXITY}: pretrain.py)", line)
        if kind != first:
            raise DataError(log_path, f"a {kind} record in a {first} log", line)
    return first


def pretraining_panels(evaluations, log_path):
    """pretrain.py's log: train and held-out loss; held-out perplexity (log scale)."""
    return (panel("loss", evaluations, (("tr_cost", "train"), ("va_cost", "held-out")), log_path),
            panel("held-out perplexity", evaluations, ((logs.PERPLEXITY, "held-out"),), log_path, log_y=True))


def fine_tuning_panels(evaluations, log_path):
    """train.py's log: train and valid cost; train and valid of each metric the log records, in percent."""
    names = logs.metric_names(evaluations[0][1])
    shown = {name: metrics.NAMES.get(name, name) for name in names}
    keys = [(f"{prefix}_{name}", split if len(names) == 1 else f"{split} {shown[name]}")
            for name in names for prefix, split in (("tr", "train"), ("va", "valid"))]
    return (panel("cost", evaluations, (("tr_cost", "train"), ("va_cost", "valid")), log_path),
            panel(", ".join(shown.values()) + " (%)", evaluations, keys, log_path))


def curves_of(evaluations, log_path):
    """The Curves of a log's evaluation records [(line, record)]; a DataError when there is nothing to draw yet."""
    if not evaluations:
        raise DataError(log_path, "no evaluation yet: no learning curves to draw")
    kind = kind_of(evaluations, log_path)
    panels = (pretraining_panels if kind == logs.PRETRAINING else fine_tuning_panels)(evaluations, log_path)
    panels = tuple(p for p in panels if p.series)
    if not panels:
        raise DataError(log_path, "no evaluation value yet (all null): no learning curves to draw")
    return Curves(f"{os.path.basename(log_path)} ({kind})", panels)


def draw(curves, png_path, style=None):
    """Render `curves` with matplotlib's Agg backend and write the PNG atomically (never a partial file)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazily: only a picture needs matplotlib
    from matplotlib.figure import Figure
    style = style or Style()
    fig = Figure(figsize=(style.width, style.height), dpi=style.dpi)
    FigureCanvasAgg(fig)  # Agg, whatever the process's default backend: no display
    for ax, shown in zip(fig.subplots(1, len(curves.panels), squeeze=False)[0], curves.panels):
        for line in shown.series:
            ax.plot(line.x, line.y, marker="o", markersize=3, label=line.label)
        ax.set_xlabel(curves.xlabel)
        ax.set_ylabel(shown.ylabel)
        if shown.log_y:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(curves.title)
    fig.tight_layout()
    # no bbox_inches="tight": the picture keeps the size the style says
    atomic_write(png_path, lambda f: fig.savefig(f, format="png", dpi=style.dpi))
    return png_path


def default_png(log_path):
    """The picture's place: beside the log, its name with .png (`log/rocstories.jsonl` -> `log/rocstories.png`)."""
    return os.path.splitext(log_path)[0] + ".png"


def write_curves(log_path, png_path=None, style=None):
    """Read a log, draw its learning curves into `png_path` (default: `default_png`); the path written.

    Bad input (no such file, a line that is not JSON, a log of neither kind, no evaluation yet):
    a one-line DataError and no picture.
    """
    png_path = png_path or default_png(log_path)
    if os.path.abspath(png_path) == os.path.abspath(log_path):
        raise DataError(log_path, "the picture would replace the log: name another file")
    return draw(curves_of(logs.read_evaluations(log_path), log_path), png_path, style)
