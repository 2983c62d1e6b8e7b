"""The metrics the paper reports for each task, computed with scikit-learn and SciPy, in percent.

`metric_names(task, regression)` gives a task's metrics, the first of which the best-params rule
uses (the paper's headline figure): accuracy for most tasks; Matthews correlation for CoLA; F1 then
accuracy for MRPC and QQP; Pearson then Spearman for STS-B and any real-valued similarity score.
`predictions` turns the head's logits into predictions, `scores` compares them with the labels.
"""
import numpy as np

TASK_METRICS = {"cola": ("mcc",), "mrpc": ("f1", "acc"), "qqp": ("f1", "acc"), "stsb": ("pearson", "spearman")}
REGRESSION_METRICS = ("pearson", "spearman")
NAMES = {"acc": "Accuracy", "mcc": "Matthews corr.", "f1": "F1", "pearson": "Pearson", "spearman": "Spearman"}


def metric_names(task, regression=False):
    """The metrics of `task` (a --dataset name); the first one chooses the best parameters."""
    if regression:
        return REGRESSION_METRICS
    return TASK_METRICS.get(task, ("acc",))


def predictions(logits, regression=False):
    """Class (or choice) of each row of logits [N, n]; a regression head's score (logits[:, 0])."""
    logits = np.asarray(logits)
    return logits[:, 0].astype(np.float64) if regression else np.argmax(logits, 1)


def score(name, y_true, y_pred):
    """One metric, in percent (x 100, as the original reported accuracy)."""
    from sklearn import metrics
    if name == "acc":
        return metrics.accuracy_score(y_true, y_pred) * 100.
    if name == "mcc":
        return metrics.matthews_corrcoef(y_true, y_pred) * 100.
    if name == "f1":
        return metrics.f1_score(y_true, y_pred) * 100.
    from scipy import stats
    if np.std(y_pred) == 0 or np.std(y_true) == 0:
        return 0.0  # a constant prediction (early in training) correlates with nothing
    if name == "pearson":
        return float(stats.pearsonr(y_true, y_pred)[0]) * 100.
    if name == "spearman":
        return float(stats.spearmanr(y_true, y_pred)[0]) * 100.
    raise ValueError(f"unknown metric {name!r}; one of {', '.join(NAMES)}")


def scores(names, y_true, y_pred):
    """{name: value in percent} for each metric name."""
    return {name: score(name, y_true, y_pred) for name in names}
