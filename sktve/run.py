"""The main job: pre-train on a RelBench task, fit a head, select on val, report val and test.

Used by ``sktve run`` and ``sktve demo``. The test split is touched once, after the head's
hyper-parameters were chosen on the validation split.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from sktve.database import load_database
from sktve.heads import head_grid
from sktve.pretrainer import TVEPretrainer

__all__ = ["predict_scores", "run_task", "select_on_val", "task_metric", "task_pretrainer"]


def task_pretrainer(database: Any, task: Any, **params: Any) -> TVEPretrainer:
    """A :class:`~sktve.TVEPretrainer` for a RelBench entity task.

    The task supplies the entity table, the id and time columns of its rows, and its
    prediction horizon as ``window``; ``params`` are further TVEPretrainer parameters and
    may override any of these.

    Parameters
    ----------
    database : Database
        The task's database (e.g. ``load_database(dataset)``).
    task : relbench.base.EntityTask
    **params
        TVEPretrainer parameters.

    Returns
    -------
    TVEPretrainer
        Unfitted.
    """
    kwargs: dict[str, Any] = {
        "entity_table": task.entity_table,
        "entity_col": task.entity_col,
        "time_col": task.time_col,
        "window": task.timedelta,
    }
    kwargs.update(params)
    return TVEPretrainer(database=database, **kwargs)


def task_metric(task: Any, pred: np.ndarray, split_table: Any) -> tuple[str, float, bool]:
    """(name, value, higher_is_better) of the task's headline metric.

    Binary tasks: RelBench's ROC AUC. Regression: mean absolute error (the figure the
    RelBench paper reports; RelBench 3's default NMAE is printed beside it).
    """
    from relbench.base import TaskType

    target = split_table.df[task.target_col].to_numpy()
    if task.task_type == TaskType.BINARY_CLASSIFICATION:
        return "roc_auc", float(task.evaluate(pred, split_table)["roc_auc"]), True
    if task.task_type == TaskType.REGRESSION:
        return "mae", float(np.mean(np.abs(target - pred))), False
    raise ValueError(f"sktve run supports binary and regression tasks, not {task.task_type}.")


def _one_line(model: Any) -> str:
    return " ".join(repr(model).split())


def predict_scores(model: Any, X: Any, binary: bool) -> np.ndarray:
    """Positive-class probabilities for binary tasks, predictions for regression."""
    if binary:
        return model.predict_proba(X)[:, 1]
    return np.asarray(model.predict(X)).reshape(-1)


def select_on_val(
    candidates: list[Any],
    Z_train: Any,
    y_train: np.ndarray,
    Z_val: Any,
    task: Any,
    val_table: Any,
    binary: bool,
    report: Any = None,
) -> tuple[Any, float, str, list[float]]:
    """Fit each candidate head on train and keep the best by the task's metric on val.

    Returns
    -------
    model, val_value, metric_name, val_values (one per candidate, in order)
    """
    best = None
    values = []
    for candidate in candidates:
        model = clone(candidate).fit(Z_train, y_train)
        name, value, higher = task_metric(task, predict_scores(model, Z_val, binary), val_table)
        values.append(value)
        if report is not None:
            report(candidate, name, value)
        score = value if higher else -value
        if best is None or score > best[0]:
            best = (score, model, value, name)
    _, model, value, name = best
    return model, value, name, values


def run_task(
    source: str,
    task_name: str,
    *,
    head: str = "hgb",
    out: Path | None = None,
    random_state: int = 0,
    max_epochs: int | None = None,
    verbose: bool = True,
    pretrainer_params: dict[str, Any] | None = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Pre-train, fit a head on train, choose it on val, and evaluate once on test.

    Parameters
    ----------
    source : str
        RelBench 3 folder or dataset name.
    task_name : str
        An entity task with a binary or regression target.
    head : {"logistic", "hgb", "lightgbm", "skorch"}
    out : Path, optional
        Where to save ``pipeline.joblib`` and ``metrics.json``.
    random_state : int
    max_epochs : int, optional
        Pre-training epochs (default: the pretrainer's).
    verbose : bool
    pretrainer_params : dict, optional
        Extra TVEPretrainer parameters.
    n_jobs : int, optional
        CPU threads for pre-training and the heads (None: one; -1: every core).

    Returns
    -------
    dict with val and test metrics, timings and the chosen head parameters.
    """
    import relbench
    from relbench.base import TaskType

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    dataset = relbench.load_dataset(source)
    task = dataset.load_task(task_name)
    if task.task_type not in (TaskType.BINARY_CLASSIFICATION, TaskType.REGRESSION):
        raise ValueError(
            f"task {task_name!r} is {task.task_type}; sktve run needs binary or "
            "regression entity tasks."
        )
    binary = task.task_type == TaskType.BINARY_CLASSIFICATION
    candidates = head_grid(head, binary=binary, random_state=random_state)
    database = load_database(dataset)
    tables = {
        split: task.get_table(split, mask_input_cols=False) for split in ("train", "val", "test")
    }
    cols = [task.entity_col, task.time_col]
    X = {split: table.df[cols] for split, table in tables.items()}
    y_train = tables["train"].df[task.target_col].to_numpy()
    say(
        f"[sktve] {task_name}: {len(X['train'])} train / {len(X['val'])} val / "
        f"{len(X['test'])} test rows; database {database}"
    )

    from sktve._threads import limit_threads, resolve_n_threads

    params = {"random_state": random_state, "verbose": verbose, "n_jobs": n_jobs}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    params.update(pretrainer_params or {})
    tve = task_pretrainer(database, task, **params)
    started = time.perf_counter()
    Z_train = tve.fit_transform(X["train"])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    Z_val = tve.transform(X["val"])
    transform_seconds = time.perf_counter() - started
    say(
        f"[sktve] pre-trained in {fit_seconds:.1f}s ({tve.n_steps_} steps, "
        f"{tve.steps_per_second_:.1f} steps/s); val transform {transform_seconds:.1f}s"
    )

    # HistGradientBoosting's OpenMP threads busy-wait too: heads run in the same budget.
    with limit_threads(resolve_n_threads(n_jobs)):
        model, val_value, metric_name, _ = select_on_val(
            candidates,
            Z_train,
            y_train,
            Z_val,
            task,
            tables["val"],
            binary,
            report=lambda head, name, value: say(
                f"[sktve]   head {_one_line(head)}: val {name} {value:.4f}"
            ),
        )
        Z_test = tve.transform(X["test"])
        _, test_value, _ = task_metric(task, predict_scores(model, Z_test, binary), tables["test"])
    say(
        f"[sktve] {task_name}: val {metric_name} {val_value:.4f}  test {metric_name} "
        f"{test_value:.4f}  (head {model})"
    )
    pipeline = Pipeline([("tve", tve), ("head", model)])
    result = {
        "task": task_name,
        "head": head,
        "head_params": {k: repr(v) for k, v in model.get_params(deep=False).items()},
        "metric": metric_name,
        "val": val_value,
        "test": test_value,
        "fit_seconds": fit_seconds,
        "transform_seconds_val": transform_seconds,
        "pretrain_steps": tve.n_steps_,
        "steps_per_second": tve.steps_per_second_,
        "history": tve.history_,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        joblib.dump(pipeline, out / "pipeline.joblib")
        (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
        say(f"[sktve] saved the fitted pipeline to {out / 'pipeline.joblib'}")
    return result
