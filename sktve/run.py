"""The main job: fit a model on a RelBench task, choose on val, report val and test.

Used by ``sktve run`` and ``sktve demo``. The model is frozen TVE embeddings with a head
chosen on val, the TVE-pre-trained network fine-tuned on the labels, that network blended
with AggregateFeatures and a head chosen on val, or (the default) whichever of the three
has the best val; under the cut, by default (``pretrain_until="test"``), the chosen model
is then fitted again with pre-training up to the test timestamp. The test split is
touched once, after every choice was made on the validation split.
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
from sklearn.ensemble import VotingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline

from sktve._as_of import clamp_times
from sktve.bootstrap import metric_interval, paired_difference
from sktve.database import load_database
from sktve.heads import head_grid
from sktve.pretrainer import TVEPretrainer, later_cutoffs

__all__ = [
    "RoundedVotingRegressor",
    "blend",
    "check_out_folder",
    "hedge",
    "predict_scores",
    "refit_pretrained_until",
    "run_task",
    "select_on_val",
    "task_aggregates",
    "task_finetuner",
    "task_metric",
    "task_pretrainer",
]

RESULT_FILES = ("pipeline.joblib", "metrics.json")
MODELS = ("embed", "finetune", "blend", "auto")
PRETRAIN_UNTIL = ("train", "test", "both")
# Weight on the fine-tuned network in the blend: the fixed rule that held on val across
# rel-f1 and the synthetic schemas (docs: benchmarks page, "Choosing the blend weight").
BLEND_WEIGHT = 0.3
# Parameters that are data or switches, not settings worth recording.
_NOT_SETTINGS = ("database", "verbose", "pretrainer", "side_features", "side_estimator")


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


def _split_rows(task: Any, split_table: Any) -> tuple[np.ndarray, np.ndarray]:
    """(targets, entity of each row) of a split: what the bootstrap resamples."""
    frame = split_table.df
    return frame[task.target_col].to_numpy(), frame[task.entity_col].to_numpy()


def split_interval(
    task: Any, split_table: Any, scores: np.ndarray, metric: str, random_state: int
) -> dict:
    """``metric`` (:func:`task_metric`'s name) on a split with its interval over entities."""
    target, groups = _split_rows(task, split_table)
    return metric_interval(target, scores, metric, groups=groups, random_state=random_state)


def split_difference(
    task: Any,
    split_table: Any,
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    random_state: int,
) -> dict:
    """``metric`` of ``first`` minus ``second`` on a split, paired over entity resamples."""
    target, groups = _split_rows(task, split_table)
    return paired_difference(
        target, first, second, metric, groups=groups, random_state=random_state
    )


def _interval_text(interval: dict) -> str:
    return (
        f"({interval['confidence']:.0%} interval {interval['low']:.4f}-{interval['high']:.4f} "
        f"over {interval['n_groups']} entities)"
    )


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


def task_aggregates(database: Any, task: Any, **params: Any) -> Any:
    """An :class:`~sktve.AggregateFeatures` for a RelBench entity task.

    History windows: the task's horizon, a year and ten years (recent, seasonal and
    whole-history behaviour, in that order; duplicates dropped); ``params`` are further
    AggregateFeatures parameters and may override any of these.
    """
    from sktve.aggregates import AggregateFeatures

    windows = [pd.Timedelta(task.timedelta), pd.Timedelta("365D"), pd.Timedelta("3650D")]
    kwargs: dict[str, Any] = {
        "entity_table": task.entity_table,
        "entity_col": task.entity_col,
        "time_col": task.time_col,
        "window": [f"{w.days}D" for w in dict.fromkeys(windows)],
    }
    kwargs.update(params)
    return AggregateFeatures(database=database, **kwargs)


def task_finetuner(database: Any, task: Any, pretrainer: TVEPretrainer, **params: Any) -> Any:
    """A :class:`~sktve.TVEClassifier` (binary tasks) or :class:`~sktve.TVERegressor`.

    Regression trains for the conditional median (``loss="absolute_error"``), since the
    task is scored by MAE (with integer predictions where the training labels are all
    integers: ``TVERegressor``'s ``integer_output``). ``pretrainer`` (e.g.
    :func:`task_pretrainer`'s) is fitted on the rows the estimator is fitted on, unless it
    is already fitted.
    """
    from relbench.base import TaskType

    from sktve.finetune import TVEClassifier, TVERegressor

    kwargs: dict[str, Any] = {
        "entity_table": task.entity_table,
        "entity_col": task.entity_col,
        "time_col": task.time_col,
        "pretrainer": pretrainer,
    }
    if task.task_type == TaskType.BINARY_CLASSIFICATION:
        return TVEClassifier(database=database, **{**kwargs, **params})
    return TVERegressor(database=database, **{**kwargs, "loss": "absolute_error", **params})


class RoundedVotingRegressor(VotingRegressor):
    """A ``VotingRegressor`` whose predictions are rounded to the nearest integer.

    For a count scored by absolute error: its conditional median can be taken as an
    integer, and between two integers the expected absolute error is linear, so a
    prediction in between is never better than both (docs: benchmarks page, "Count
    regressions: integer predictions").
    """

    def predict(self, X: Any) -> np.ndarray:
        """The weighted average of the members' predictions, rounded.

        Parameters
        ----------
        X : array-like or DataFrame
            What the members take (for the main job's blend: entity id and time rows).

        Returns
        -------
        ndarray of float64
            Integer-valued predictions, one per row.
        """
        return np.rint(super().predict(X))


def blend(network: Any, aggregates: Any, binary: bool, weight: float = BLEND_WEIGHT) -> Any:
    """Fitted ``network`` and ``aggregates`` averaged with weights ``(weight, 1 - weight)``.

    A soft-voting ``VotingClassifier`` (averaged class probabilities) or a
    ``VotingRegressor`` over the two fitted models, frozen: fitting the blend fits
    nothing again. When the network answers in integers (``integer_output_``: integer
    targets and absolute error), so does the blend (:class:`RoundedVotingRegressor`).
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.frozen import FrozenEstimator

    members = [("network", FrozenEstimator(network)), ("aggregates", FrozenEstimator(aggregates))]
    weights = [weight, 1.0 - weight]
    if binary:
        return VotingClassifier(members, voting="soft", weights=weights)
    if getattr(network, "integer_output_", False):
        return RoundedVotingRegressor(members, weights=weights)
    return VotingRegressor(members, weights=weights)


def refit_pretrained_until(model: Any, until: pd.Timestamp, X: Any, y: Any, binary: bool) -> Any:
    """``model`` fitted again on ``(X, y)``, its encoder pre-trained up to ``until``.

    ``model`` is one of the main job's fitted models: TVE embeddings and a head (a
    Pipeline), a fine-tuned network, or a :func:`blend` of one with the aggregates. The
    same settings, head and weight; only pre-training changes, to also read the unlabelled
    data between the training rows' horizon and ``until`` (``pretrain_until``). Used for
    the model scored on test after every choice was made on val.
    """
    if isinstance(model, Pipeline):  # embeddings and a head
        return clone(model).set_params(tve__pretrain_until=until).fit(X, y)
    members = dict(getattr(model, "estimators", []))
    if members:  # a blend of two frozen members: the network is refitted, the aggregates kept
        network = refit_pretrained_until(members["network"].estimator, until, X, y, binary)
        weight = model.weights[0]
        return blend(network, members["aggregates"].estimator, binary, weight).fit(X, y)
    pretrainer = clone(model.pretrainer).set_params(pretrain_until=until)
    return clone(model).set_params(pretrainer=pretrainer).fit(X, y)


def hedge(chosen: Any, refitted: Any, binary: bool, X: Any, y: Any) -> Any:
    """The mean of ``chosen`` and ``refitted``, both fitted: a frozen two-member vote.

    Averaged positive-class probabilities (a soft ``VotingClassifier``) or predictions (a
    ``VotingRegressor``). Two integer predictions average to an integer or a half: not
    rounded, since between two integers the expected absolute error is linear, and the
    half is as good as the two members' average where rounding would pick one of them
    blindly. ``X`` and ``y``: the training rows, which fitting the vote only checks
    (nothing is refitted).
    """
    from sklearn.ensemble import VotingClassifier, VotingRegressor
    from sklearn.frozen import FrozenEstimator

    members = [("chosen", FrozenEstimator(chosen)), ("refit", FrozenEstimator(refitted))]
    if binary:
        return VotingClassifier(members, voting="soft").fit(X, y)
    return VotingRegressor(members).fit(X, y)


def run_task(
    source: str,
    task_name: str,
    *,
    model: str = "auto",
    head: str = "hgb",
    out: Path | None = None,
    force: bool = False,
    rows: str = "cut",
    random_state: int = 0,
    max_epochs: int | None = None,
    verbose: bool = True,
    pretrainer_params: dict[str, Any] | None = None,
    finetune_params: dict[str, Any] | None = None,
    n_jobs: int | None = None,
    pretrain_until: str | None = None,
) -> dict[str, Any]:
    """Fit a model on the task's training rows, report val, and evaluate once on test.

    Parameters
    ----------
    source : str
        RelBench 3 folder or dataset name.
    task_name : str
        An entity task with a binary or regression target.
    model : {"auto", "embed", "finetune", "blend"}, default="auto"
        ``"embed"``: frozen TVE embeddings and a ``head`` chosen on val. ``"finetune"``:
        the TVE-pre-trained encoder fine-tuned on the labels (:func:`task_finetuner`).
        ``"blend"``: that network averaged, weight 0.3, with AggregateFeatures
        (:func:`task_aggregates`) and a ``head`` chosen on val. ``"auto"``: all three
        (the network fine-tuned from the embeddings' pretrainer, which pre-trains once),
        keeping the one with the best val; which wins depends on the task (docs:
        benchmarks page, "The main job").
    head : {"logistic", "hgb", "lightgbm", "skorch"}, default="hgb"
        The head grid on the embeddings (``"embed"``) or the aggregates (``"blend"``);
        unused by ``"finetune"``.
    out : Path, optional
        Where to save ``pipeline.joblib`` (the fitted model: a Pipeline, a TVEClassifier /
        TVERegressor, or a VotingClassifier / VotingRegressor) and ``metrics.json``.
    force : bool, default=False
        Overwrite results already in ``out`` (otherwise a ``FileExistsError``, raised
        before any work).
    rows : {"cut", "all"}, default="cut"
        ``"cut"``: the database as RelBench hands it to models, rows up to the test
        timestamp, with ``as_of`` there (test rows after it are featurised as of the
        cut). ``"all"``: every row of the folder; each feature still reads only rows at
        or before its row's time.
    random_state : int
    max_epochs : int, optional
        Pre-training epochs (default: the pretrainer's).
    verbose : bool
    pretrainer_params : dict, optional
        Extra TVEPretrainer parameters.
    finetune_params : dict, optional
        Extra TVEClassifier / TVERegressor parameters (``"finetune"``, ``"blend"``).
    n_jobs : int, optional
        CPU threads for pre-training, fine-tuning and the heads (None: one; -1: every core).
    pretrain_until : {"train", "test", "both"}, optional
        How far the pre-training of the model scored on test reads the database.
        ``"train"``: up to the training rows' horizon, as for the models compared on val.
        ``"test"``: once the model is chosen on val, it is fitted again with pre-training
        up to the test timestamp (:class:`~sktve.TVEPretrainer`'s ``pretrain_until``),
        which also learns from the unlabelled years between the training rows and the
        test rows; the test rows, at or after that timestamp, stay time-correct.
        ``"both"``: that refit averaged with the chosen model (:func:`hedge`), since val
        cannot judge the refit (val lies inside the years it adds). None (default):
        ``"test"`` with ``rows="cut"``, ``"train"`` with ``rows="all"``, as a backtest on
        val preferred (docs: benchmarks page, "Pre-training up to the cut").

    Returns
    -------
    dict
        What ``metrics.json`` holds: the val and test metric, each with its bootstrap
        interval over the split's entities (``val_interval``, ``test_interval``; see
        :mod:`sktve.bootstrap`), the model asked for and the one kept (with every
        candidate's val for ``"auto"``, and ``models_val_difference``: each other
        candidate minus the kept one on val, paired), ``aggregates_val_difference`` (for
        ``"blend"`` and ``"auto"``: the kept model minus the AggregateFeatures pipeline
        alone on val, paired: whether pre-training adds to the aggregates on this task;
        the aggregates alone are a reference, never kept), how far the tested model's
        pre-training read (``pretrain_until``; ``hedged`` when the test model averages
        the chosen model and its refit; val is always that of the model as chosen,
        pre-trained up to the training rows' horizon), the dataset, task, rows protocol
        and cut, random_state, threads, every fitted part's settings
        as JSON values, the parts' own val metrics for ``"blend"``, the sktve version and
        timings.
    """
    from relbench.base import TaskType

    import sktve
    from sktve.database import open_relbench_dataset

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    if rows not in ("cut", "all"):
        raise ValueError(f"rows must be 'cut' or 'all', got {rows!r}.")
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}.")
    if pretrain_until is None:
        pretrain_until = "test" if rows == "cut" else "train"
    if pretrain_until not in PRETRAIN_UNTIL:
        raise ValueError(
            f"pretrain_until must be one of {list(PRETRAIN_UNTIL)} or None, got {pretrain_until!r}."
        )
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
    # Before any work: an unknown head is a usage error.
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
        f"{len(X['test'])} test rows; database {database}; model {model}"
    )

    from sktve._threads import limit_threads, resolve_n_threads

    # Test rows run past the cut; they are featurised as of it (declared, not derived).
    as_of = dataset.test_timestamp if rows == "cut" else None
    params = {"random_state": random_state, "verbose": verbose, "n_jobs": n_jobs}
    if as_of is not None:
        params["as_of"] = as_of
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    params.update(pretrainer_params or {})
    tve = task_pretrainer(database, task, **params)
    n_threads = resolve_n_threads(n_jobs)

    # (metric name, val value) of each fitted model, computed once: "auto" compares the
    # candidates, and the report and the blend's parts reuse the same numbers.
    val_of: dict[str, tuple[str, float]] = {}
    val_scores: dict[str, np.ndarray] = {}

    def val_metric(name: str, fitted: Any) -> tuple[str, float]:
        if name not in val_of:
            val_scores[name] = predict_scores(fitted, X["val"], binary)
            val_of[name] = task_metric(task, val_scores[name], tables["val"])[:2]
        return val_of[name]

    def select_head(
        features: Any, step: str, name: str, candidates: list[Any]
    ) -> tuple[Pipeline, float, float]:
        """``features`` fitted on train and the head of ``candidates`` best on val.

        Returns the pipeline and the seconds of the features' fit on train and of their
        val transform; the pipeline's val metric goes into ``val_of[name]``.
        """
        started = time.perf_counter()
        Z_train = features.fit_transform(X["train"])
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        Z_val = features.transform(X["val"])
        val_seconds = time.perf_counter() - started
        started = time.perf_counter()
        # HistGradientBoosting's OpenMP threads busy-wait too: heads run in the same budget.
        with limit_threads(n_threads):
            chosen, value, metric, _ = select_on_val(
                candidates,
                Z_train,
                y_train,
                Z_val,
                task,
                tables["val"],
                binary,
                report=lambda head, metric, value: say(
                    f"[sktve]   head {_one_line(head)}: val {metric} {value:.4f}"
                ),
            )
        # Summed over the embeddings' and the aggregates' grids ("auto" runs both).
        timings["head_selection_seconds"] = (
            timings.get("head_selection_seconds", 0.0) + time.perf_counter() - started
        )
        val_of[name] = (metric, value)
        val_scores[name] = predict_scores(chosen, Z_val, binary)
        return Pipeline([(step, features), ("head", chosen)]), fit_seconds, val_seconds

    timings: dict[str, float] = {}
    parts: dict[str, Any] = {}
    models: dict[str, Any] = {}  # the fitted candidates: one, or three for "auto"
    history, pretrainer = None, tve
    if model in ("embed", "auto"):
        models["embed"], timings["pretrain_seconds"], timings["transform_val_seconds"] = (
            select_head(tve, "tve", "embed", candidates)
        )
        say(
            f"[sktve] pre-trained in {timings['pretrain_seconds']:.1f}s ({tve.n_steps_} "
            f"steps, {tve.steps_per_second_:.1f} steps/s)"
        )
        history = tve.history_
    if model != "embed":
        network_params = {
            "random_state": random_state,
            "verbose": verbose,
            "n_jobs": n_jobs,
            "as_of": as_of,
            **(finetune_params or {}),
        }
        # With "auto" the pretrainer is already fitted on these rows and used as it is.
        network = task_finetuner(database, task, tve, **network_params)
        started = time.perf_counter()
        network.fit(X["train"], y_train)
        timings["pretrain_seconds"] = timings.get("pretrain_seconds", network.pretrain_seconds_)
        timings["finetune_seconds"] = time.perf_counter() - started - network.pretrain_seconds_
        history, pretrainer = network.history_, network.pretrainer_
        parts["network"] = {"settings": _settings(network, skip=_NOT_SETTINGS)}
        say(
            f"[sktve] pre-trained in {timings['pretrain_seconds']:.1f}s, fine-tuned in "
            f"{timings['finetune_seconds']:.1f}s (best epoch {network.best_epoch_})"
        )
        models["finetune"] = network
    if model in ("blend", "auto"):
        parts["network"]["val"] = val_metric("finetune", network)[1]
        if head not in ("hgb", "lightgbm"):
            # Aggregates are missing where a window holds no rows; these heads need
            # values, boosted trees route the missing ones themselves.
            candidates = [
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    candidate,
                )
                for candidate in candidates
            ]
        features = task_aggregates(database, task, as_of=as_of)
        aggregates, timings["aggregates_seconds"], timings["aggregates_val_seconds"] = select_head(
            features, "aggregates", "aggregates", candidates
        )
        parts["aggregates"] = {
            "settings": _settings(aggregates.named_steps["aggregates"], skip=_NOT_SETTINGS),
            "head": _one_line(aggregates.named_steps["head"]),
            "head_params": _settings(aggregates.named_steps["head"]),
            "val": val_metric("aggregates", aggregates)[1],
        }
        models["blend"] = blend(network, aggregates, binary).fit(X["train"], y_train)
        say(
            f"[sktve]   network: val {parts['network']['val']:.4f}; aggregates: val "
            f"{parts['aggregates']['val']:.4f}"
        )
    candidates_val = None
    if model == "auto":
        candidates_val = {name: val_metric(name, fitted)[1] for name, fitted in models.items()}
        higher = task.task_type == TaskType.BINARY_CLASSIFICATION
        chosen = max(candidates_val, key=lambda n: candidates_val[n] * (1 if higher else -1))
        say(f"[sktve]   val of each model {candidates_val}: keeping {chosen}")
        if chosen == "embed":
            history, pretrainer = tve.history_, tve
    else:
        chosen = model
    fitted = models[chosen]
    with limit_threads(n_threads):
        metric_name, val_value = val_metric(chosen, fitted)
    until = pd.Timestamp(dataset.test_timestamp)
    # Refitting pays only when pretrain_until adds a pre-training cutoff: the ones the
    # refit's pretrainer would add after the training rows' (effective) last time.
    last = clamp_times(X["train"][task.time_col].to_numpy(), pretrainer.as_of_).max()
    added = later_cutoffs(last, max(pretrainer.windows_), until, database.max_timestamp)
    pretrained_until = None
    if pretrain_until != "train" and len(added):
        say(f"[sktve] refitting the {chosen} model with pre-training up to {until} ...")
        started = time.perf_counter()
        with limit_threads(n_threads):  # the embeddings' head (OpenMP) refits too
            refitted = refit_pretrained_until(fitted, until, X["train"], y_train, binary)
        timings["refit_seconds"] = time.perf_counter() - started
        # The history reported: the refit's pre-training for embeddings, its fine-tuning
        # otherwise.
        if chosen == "embed":
            pretrainer = refitted.named_steps["tve"]
            history = pretrainer.history_
        else:
            network = refitted if chosen == "finetune" else dict(refitted.estimators)["network"]
            network = getattr(network, "estimator", network)  # a blend's member is frozen
            pretrainer, history = network.pretrainer_, network.history_
        if pretrain_until == "both":
            say(f"[sktve] averaging the {chosen} model with its refit")
            fitted = hedge(fitted, refitted, binary, X["train"], y_train)
        else:
            fitted = refitted
        pretrained_until = str(until)
    elif pretrain_until != "train":
        say(f"[sktve] no refit: no pre-training cutoff fits between the training rows and {until}")
    with limit_threads(n_threads):
        started = time.perf_counter()
        test_scores = predict_scores(fitted, X["test"], binary)
        _, test_value, _ = task_metric(task, test_scores, tables["test"])
        timings["test_seconds"] = time.perf_counter() - started
    # How sure each figure is: entities resampled with all their rows (bootstrap module).
    intervals = {
        split: split_interval(task, tables[split], scores, metric_name, random_state)
        for split, scores in (("val", val_scores[chosen]), ("test", test_scores))
    }
    say(
        f"[sktve] {task_name}: val {metric_name} {val_value:.4f} "
        f"{_interval_text(intervals['val'])}  test {metric_name} {test_value:.4f} "
        f"{_interval_text(intervals['test'])}"
    )
    models_val_difference = None
    if candidates_val is not None:
        models_val_difference = {
            name: split_difference(
                task, tables["val"], val_scores[name], val_scores[chosen], metric_name, random_state
            )
            for name in candidates_val
            if name != chosen
        }
        for name, difference in models_val_difference.items():
            say(
                f"[sktve]   val {metric_name} of {name} minus {chosen}: "
                f"{difference['difference']:+.4f} (standard error {difference['se']:.4f} "
                f"over {difference['n_groups']} entities)"
            )
    # Does pre-training earn its place on this task? The kept model against the
    # aggregates alone (fitted for the blend), on val only: a reference, not a candidate.
    aggregates_val_difference = None
    if "aggregates" in val_scores:
        aggregates_val_difference = split_difference(
            task,
            tables["val"],
            val_scores[chosen],
            val_scores["aggregates"],
            metric_name,
            random_state,
        )
        say(
            f"[sktve]   val {metric_name} of {chosen} minus the aggregates alone: "
            f"{aggregates_val_difference['difference']:+.4f} (standard error "
            f"{aggregates_val_difference['se']:.4f} over "
            f"{aggregates_val_difference['n_groups']} entities)"
        )
    # The head as chosen on val (a refit keeps its settings; a hedge holds two pipelines).
    embed_head = models[chosen].named_steps["head"] if chosen == "embed" else None
    timings["total_seconds"] = time.perf_counter() - started_run
    result = {
        "dataset": str(source),
        "dataset_name": dataset.manifest.name if hasattr(dataset, "manifest") else None,
        "task": task_name,
        "model": model,
        "chosen_model": chosen,
        "models_val": candidates_val,
        # Each candidate minus the kept one on val, paired over entity resamples.
        "models_val_difference": models_val_difference,
        # The kept model minus AggregateFeatures + head alone on val ("blend", "auto").
        "aggregates_val_difference": aggregates_val_difference,
        # Val is that of the model as chosen; test and the saved model are the refit, or
        # the refit averaged with the chosen model ("hedged").
        "pretrain_until": pretrained_until,
        "hedged": pretrained_until is not None and pretrain_until == "both",
        "rows": rows,
        "cut": {
            "test_timestamp": str(dataset.test_timestamp),
            "val_timestamp": str(dataset.val_timestamp),
            "database_cut_at_test_timestamp": rows == "cut",
            "as_of": str(pretrainer.as_of_) if pretrainer.as_of_ is not None else None,
            "database_rows": int(database.num_rows()),
        },
        "n_rows": {split: len(frame) for split, frame in X.items()},
        "random_state": random_state,
        "threads": n_threads,
        "sktve_version": sktve.__version__,
        "pretrainer": _settings(pretrainer, skip=_NOT_SETTINGS),
        "head": head if chosen != "finetune" else None,
        "head_params": _settings(embed_head) if embed_head is not None else None,
        "blend_weight": BLEND_WEIGHT if chosen == "blend" else None,
        "parts": parts,
        "metric": metric_name,
        "val": val_value,
        "test": test_value,
        "val_interval": intervals["val"],
        "test_interval": intervals["test"],
        "timings": timings,
        "pretrain_steps": pretrainer.n_steps_,
        "steps_per_second": pretrainer.steps_per_second_,
        "history": history,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        joblib.dump(fitted, out / "pipeline.joblib")
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        say(f"[sktve] saved the fitted model to {out / 'pipeline.joblib'}")
    return result
