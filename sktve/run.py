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
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from sktve.database import load_database
from sktve.heads import head_grid
from sktve.pretrainer import TVEPretrainer

__all__ = [
    "check_out_folder",
    "predict_scores",
    "run_task",
    "select_on_val",
    "task_metric",
    "task_pretrainer",
]

RESULT_FILES = ("pipeline.joblib", "metrics.json")


def check_out_folder(out: Path, force: bool = False) -> None:
    """Refuse to overwrite an earlier run's results in ``out`` unless ``force``.

    Raises
    ------
    FileExistsError
        When ``out`` holds ``pipeline.joblib`` or ``metrics.json`` and ``force`` is False.
    """
    existing = [name for name in RESULT_FILES if (Path(out) / name).exists()]
    if existing and not force:
        raise FileExistsError(
            f"{str(out)!r} already holds {' and '.join(existing)} from an earlier run; "
            "choose another --out folder, or pass --force (force=True) to overwrite them."
        )


def _jsonable(value: Any) -> Any:
    """A parameter value as JSON: numbers, strings, lists and dicts as themselves."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return str(value)
    return repr(value)


def _settings(estimator: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    return {k: _jsonable(v) for k, v in sorted(params.items()) if k not in skip}


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
    force: bool = False,
    rows: str = "cut",
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
    force : bool, default=False
        Overwrite results already in ``out`` (otherwise a ``FileExistsError``, raised
        before any work).
    rows : {"cut", "all"}, default="cut"
        ``"cut"``: the database as RelBench hands it to models, rows up to the test
        timestamp, with the pretrainer's ``as_of`` there (test rows after it are
        featurised as of the cut). ``"all"``: every row of the folder; each feature still
        reads only rows at or before its row's time.
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
    dict
        What ``metrics.json`` holds: the val and test metric, the dataset, task, rows
        protocol and cut, random_state, threads, the pretrainer's and the chosen head's
        settings as JSON values, the sktve version and timings.
    """
    from relbench.base import TaskType

    import sktve
    from sktve.database import open_relbench_dataset

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    if rows not in ("cut", "all"):
        raise ValueError(f"rows must be 'cut' or 'all', got {rows!r}.")
    if out is not None:
        check_out_folder(out, force)
    started_run = time.perf_counter()
    dataset = open_relbench_dataset(source)
    task = dataset.load_task(task_name)
    if task.task_type not in (TaskType.BINARY_CLASSIFICATION, TaskType.REGRESSION):
        raise ValueError(
            f"task {task_name!r} is {task.task_type}; sktve run needs binary or "
            "regression entity tasks."
        )
    binary = task.task_type == TaskType.BINARY_CLASSIFICATION
    candidates = head_grid(head, binary=binary, random_state=random_state)
    database = load_database(dataset, upto_test_timestamp=rows == "cut")
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
    if rows == "cut":
        # Test rows run past the cut; they are featurised as of it (declared, not derived).
        params["as_of"] = dataset.test_timestamp
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
    n_threads = resolve_n_threads(n_jobs)
    started = time.perf_counter()
    with limit_threads(n_threads):
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
        select_seconds = time.perf_counter() - started
        started = time.perf_counter()
        Z_test = tve.transform(X["test"])
        _, test_value, _ = task_metric(task, predict_scores(model, Z_test, binary), tables["test"])
        test_seconds = time.perf_counter() - started
    say(
        f"[sktve] {task_name}: val {metric_name} {val_value:.4f}  test {metric_name} "
        f"{test_value:.4f}  (head {model})"
    )
    pipeline = Pipeline([("tve", tve), ("head", model)])
    result = {
        "dataset": str(source),
        "dataset_name": dataset.manifest.name if hasattr(dataset, "manifest") else None,
        "task": task_name,
        "rows": rows,
        "cut": {
            "test_timestamp": str(dataset.test_timestamp),
            "val_timestamp": str(dataset.val_timestamp),
            "database_cut_at_test_timestamp": rows == "cut",
            "as_of": str(tve.as_of_) if tve.as_of_ is not None else None,
            "database_rows": int(database.num_rows()),
        },
        "n_rows": {split: len(frame) for split, frame in X.items()},
        "random_state": random_state,
        "threads": n_threads,
        "sktve_version": sktve.__version__,
        "pretrainer": _settings(tve, skip=("database", "verbose")),
        "head": head,
        "head_params": _settings(model),
        "metric": metric_name,
        "val": val_value,
        "test": test_value,
        "timings": {
            "pretrain_seconds": fit_seconds,
            "transform_val_seconds": transform_seconds,
            "head_selection_seconds": select_seconds,
            "test_seconds": test_seconds,
            "total_seconds": time.perf_counter() - started_run,
        },
        "pretrain_steps": tve.n_steps_,
        "steps_per_second": tve.steps_per_second_,
        "history": tve.history_,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        joblib.dump(pipeline, out / "pipeline.joblib")
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        say(f"[sktve] saved the fitted pipeline to {out / 'pipeline.joblib'}")
    return result
