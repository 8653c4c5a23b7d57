"""Downstream quality on RelBench rel-f1: TVE embeddings against aggregate and entity baselines.

For every task and seed, pre-trains one ``TVEPretrainer`` (and one untrained encoder,
``max_epochs=0``) on the task's train table and reuses them for every method below. Each
method fits its head on train, chooses the head's hyper-parameters on val only (the small
grids of :func:`sktve.heads.head_grid`), then predicts test once with the chosen head.

Methods (``--methods``, comma-separated):

- ``tve-logistic``        TVE embeddings + logistic regression (binary) / ridge (regression)
- ``tve-hgb``             TVE embeddings + HistGradientBoosting
- ``untrained-logistic``  the same encoder untrained + logistic / ridge
- ``untrained-hgb``       the same encoder untrained + HistGradientBoosting
- ``entity-hgb``          the drivers table's own columns (dob year and month, nationality as a
                          category, whether a driver code exists) + HistGradientBoosting: the
                          RelBench LightGBM protocol (entity columns joined to each row)
- ``agg-hgb``             AggregateFeatures (history windows ``--agg-windows``, defaults
                          otherwise) + HistGradientBoosting
- ``tve+agg-hgb``         TVE embeddings and AggregateFeatures side by side + HistGradientBoosting
- ``tv-hgb``              the pre-training head's predicted task vectors
                          (``TVEPretrainer(output="task_vector")``) + HistGradientBoosting
- ``tv+agg-hgb``          predicted task vectors and AggregateFeatures + HistGradientBoosting
- ``ft-tve``              ``TVEClassifier`` / ``TVERegressor`` fine-tuned from the TVE encoder
- ``ft-random``           the same from random initialisation (the supervised RDL-style GNN)
- ``ft-tve+agg``          fine-tuned from TVE with AggregateFeatures as side features, and
                          the HGB that ``agg-hgb`` chose on val as the side estimator
- ``ft-random+agg``       the same from random initialisation
- ``ft-tve|agg-hgb``      a blend: w * (ft-tve's prediction) + (1 - w) * (agg-hgb's), probabilities
                          for binary tasks, predictions for regression, w in 0, 0.1, ..., 1
                          chosen on val (needs ft-tve and agg-hgb in the same run)
- ``ft-random|agg-hgb``   the same blend with ft-random

Fine-tuners use their defaults (regression: ``loss="absolute_error"``, the task's metric),
with early stopping on the latest timestamps of the train table; val is used only to
score them (and to choose the side estimator's HGB), test is predicted once.

``--train-years N`` fits heads and fine-tuning on the training rows of the last N years
only (TVE pre-training still reads every training row), to measure what older rows add.
``--decay-half-life H`` weighs each training row of the fine-tuners by ``0.5 ** (age / H)``,
its age in years counted back from the latest training time (``fit(..., sample_weight=)``);
the heads stay unweighted (``bench_time_decay.py`` found no half-life that helps them).
``--label-fraction F`` keeps the labels of a random fraction F of the training entities
(drawn with ``--label-seed``): heads and fine-tuning see only those entities' training rows,
while TVE pre-training and AggregateFeatures' fit, which read no labels, see every training
row. Val and test are unchanged. It measures what pre-training is worth when labels are few.

``--rows both`` fits every model once on the database with every row, then predicts test
twice: with every row, and on the database cut at the test timestamp with ``as_of`` set
there (RelBench's protocol). Fitting reads nothing past the train boundary + window, so
the fitted models are those a fit on the cut database gives (the time-correctness tests
check this property; the run checks it for the first task's TVE encoder). Each protocol
is written to its own results file (``<name>.json`` and ``<name>_cut.json``).

    python benchmarks/bench_quality_relf1.py --relf1 ../shared/data/rel-f1 \\
        --tasks driver-top3,driver-dnf,driver-position --seeds 0,1,2
    python benchmarks/bench_quality_relf1.py --rows both --methods agg-hgb,tve-hgb,ft-tve,...
    python benchmarks/bench_quality_relf1.py --quick      # one task, one seed, 2 epochs

Writes ``benchmarks/results/quality_relf1.json``, ``quality_relf1.md``, PNG plots
(pre-training loss curves, PCA of test embeddings) and ``quality_relf1_noise.json`` / ``.md``
(each method's standard error over the split's drivers and its paired difference from
``agg-hgb``, ``bench_split_noise.py``) next to them; ``--quick`` writes to
``benchmarks/results/quick/`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine, timed_features  # noqa: E402
from bench_time_decay import decay_weights  # noqa: E402

HEAD_THREADS = 1  # set from --head-threads
METHODS = (
    "tve-logistic",
    "tve-hgb",
    "untrained-logistic",
    "untrained-hgb",
    "entity-hgb",
    "agg-hgb",
    "tve+agg-hgb",
    "tv-hgb",
    "tv+agg-hgb",
    "ft-tve",
    "ft-random",
    "ft-tve+agg",
    "ft-random+agg",
    "ft-tve|agg-hgb",
    "ft-random|agg-hgb",
    "ft-tve+agg|agg-hgb",
)
# Blends: (fine-tuned method, aggregate method) whose val/test scores are averaged with the
# weight that scores best on val.
BLEND_METHODS = {
    "ft-tve|agg-hgb": ("ft-tve", "agg-hgb"),
    "ft-random|agg-hgb": ("ft-random", "agg-hgb"),
    "ft-tve+agg|agg-hgb": ("ft-tve+agg", "agg-hgb"),
}
BLEND_WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)
FINETUNE_METHODS = {
    "ft-tve": ("tve", False),
    "ft-random": ("random", False),
    "ft-tve+agg": ("tve", True),
    "ft-random+agg": ("random", True),
}
METHOD_LABELS = {
    "tve-logistic": "TVE + logistic/ridge",
    "tve-hgb": "TVE + HGB",
    "untrained-logistic": "untrained encoder + logistic/ridge",
    "untrained-hgb": "untrained encoder + HGB",
    "entity-hgb": "entity columns + HGB",
    "agg-hgb": "AggregateFeatures + HGB",
    "tve+agg-hgb": "TVE + AggregateFeatures + HGB",
    "tv-hgb": "predicted task vectors + HGB",
    "tv+agg-hgb": "predicted task vectors + AggregateFeatures + HGB",
    "ft-tve": "fine-tuned from TVE",
    "ft-random": "fine-tuned from random init",
    "ft-tve+agg": "fine-tuned from TVE + AggregateFeatures (side features, HGB start)",
    "ft-random+agg": "fine-tuned from random init + AggregateFeatures (side features, HGB start)",
    "ft-tve|agg-hgb": "fine-tuned from TVE, blended with AggregateFeatures + HGB (weight on val)",
    "ft-random|agg-hgb": "fine-tuned from random init, blended with AggregateFeatures + HGB",
    "ft-tve+agg|agg-hgb": "fine-tuned from TVE with side features, blended with the aggregates",
}
# Published test numbers on the same task tables (RelBench paper; see ../shared/DESIGN.md).
REFERENCES = {
    "relbench_lightgbm": {"driver-top3": 0.7392, "driver-dnf": 0.6856, "driver-position": 4.170},
    "relbench_rdl_gnn": {"driver-top3": 0.7554, "driver-dnf": 0.7262, "driver-position": 4.022},
    "calibration_handwritten_history_hgb": {
        "driver-top3": 0.900,
        "driver-dnf": 0.797,
        "driver-position": 2.86,
    },
}
REFERENCE_LABELS = {
    "relbench_lightgbm": "RelBench LightGBM (paper)",
    "relbench_rdl_gnn": "RelBench RDL GNN (paper)",
    "calibration_handwritten_history_hgb": "hand-written history aggregation + HGB (calibration)",
}


ROWS_NOTES = {
    "both": "fitted once on every row; test predicted with every row and on the cut database",
    "cut": "the database as RelBench hands it to models: rows up to the test timestamp "
    "(2010-01-01), while test rows run to 2013; test features see an empty recent past",
    "all": "every row of the folder (through 2023); each feature and embedding of a row "
    "still reads only rows at or before that row's time, and pre-training reads nothing "
    "past its train boundary",
}


def select_and_test(
    candidates: list[Any],
    feats: dict[str, Any],
    y_train: np.ndarray,
    task: Any,
    tables: dict[str, Any],
    binary: bool,
) -> dict[str, Any]:
    """Fit every candidate on train, keep the best on val, predict test once with it."""
    from threadpoolctl import threadpool_limits

    from sktve.run import predict_scores, select_on_val, task_metric

    # HistGradientBoosting's OpenMP threads busy-wait: on a shared 2-core machine two of
    # them made a 1,353-row fit take 53 s instead of 0.2 s with one. Heads run single-threaded.
    with threadpool_limits(limits=HEAD_THREADS, user_api="openmp"):
        started = time.perf_counter()
        model, val_value, metric, values = select_on_val(
            candidates, feats["train"], y_train, feats["val"], task, tables["val"], binary
        )
        val_grid = [round(v, 5) for v in values]
        select_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = {"test": predict_scores(model, feats["test"], binary)}
        _, test_value, _ = task_metric(task, scores["test"], tables["test"])
        test_seconds = time.perf_counter() - started
        scores["val"] = predict_scores(model, feats["val"], binary)
        test_cut = None
        if "test_cut" in feats:
            scores["test_cut"] = predict_scores(model, feats["test_cut"], binary)
            _, test_cut, _ = task_metric(task, scores["test_cut"], tables["test"])
    params = model.get_params(deep=True)
    keep = ("learning_rate", "max_leaf_nodes", "C", "alpha")
    chosen = {k.split("__")[-1]: v for k, v in params.items() if k.split("__")[-1] in keep}
    return {
        "metric": metric,
        "val": val_value,
        "test": test_value,
        "val_grid": val_grid,
        "chosen_head": {k: chosen[k] for k in sorted(chosen)},
        "head_select_seconds": round(select_seconds, 2),
        "head_test_seconds": round(test_seconds, 3),
        **({} if test_cut is None else {"test_cut": test_cut}),
        "model": model,
        "scores": scores,
    }


@contextmanager
def cut_view(estimator: Any, database: Any, as_of: Any):
    """A fitted ``estimator`` (and its side features) on the cut database with ``as_of`` set.

    The cut is frozen at fit (``as_of_``); the models here were fitted on every row, which
    by the time-correctness contract learns what a fit on the cut database learns (checked
    once per run), so the view sets both the parameter and the fitted cut.
    """
    parts = [estimator]
    if getattr(estimator, "side_features_", None) is not None:
        parts.append(estimator.side_features_)
    saved = [(p, p.get_params(deep=False), p.as_of_) for p in parts]
    for p in parts:
        p.set_params(database=database, as_of=as_of)
        p.as_of_ = pd.Timestamp(as_of)
    try:
        yield estimator
    finally:
        for p, params, fitted_cut in saved:
            p.set_params(database=params["database"], as_of=params["as_of"])
            p.as_of_ = fitted_cut


def with_cut_test(feats: dict, transform: Any, estimator: Any, X_test: Any, cut: Any) -> dict:
    """Add ``feats["test_cut"]``: ``transform(X_test)`` with ``estimator`` on the cut database."""
    if cut is None:
        return feats
    with cut_view(estimator, *cut):
        return {**feats, "test_cut": transform(X_test)}


def finetune_and_test(
    estimator: Any,
    X: dict,
    y_train: np.ndarray,
    task: Any,
    tables: dict,
    binary: bool,
    cut: Any,
    sample_weight: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fine-tune on train (its own early stopping), score val, predict test once (per protocol)."""
    from bench_pretrainer_relf1 import PeakRSS

    from sktve.run import predict_scores, task_metric

    with PeakRSS() as rss:
        started = time.perf_counter()
        estimator.fit(X["train"], y_train, sample_weight=sample_weight)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        val_scores = predict_scores(estimator, X["val"], binary)
        test_scores = predict_scores(estimator, X["test"], binary)
        predict_seconds = time.perf_counter() - started
        outcome: dict[str, Any] = {"scores": {"val": val_scores, "test": test_scores}}
        if cut is not None:
            with cut_view(estimator, *cut):
                cut_scores = predict_scores(estimator, X["test"], binary)
            outcome["test_cut"] = task_metric(task, cut_scores, tables["test"])[1]
            outcome["scores"]["test_cut"] = cut_scores
    metric, val, _ = task_metric(task, val_scores, tables["val"])
    outcome.update(
        metric=metric,
        val=val,
        test=task_metric(task, test_scores, tables["test"])[1],
        val_grid=[round(val, 5)],
        chosen_head={
            "best_epoch": estimator.best_epoch_,
            "epochs": len(estimator.history_),
            "steps": estimator.n_steps_,
            # With probe_head: the head-only epochs before fine-tuning, and the one kept.
            "probe_epoch": estimator.probe_epoch_,
            "probe_epochs": len(estimator.probe_history_),
            # A regressor answering in integers (a count): its blends do too, as sktve run's.
            "integer_output": bool(getattr(estimator, "integer_output_", False)),
        },
        head_select_seconds=0.0,
        head_test_seconds=0.0,
        finetune_history=estimator.history_,
    )
    cost = {
        # Pre-training is shared with the TVE methods and reported there (fit_seconds of
        # tve-*); this is fine-tuning alone, and val + test prediction.
        "fit_seconds": round(fit_seconds, 2),
        "transform_seconds": round(predict_seconds, 2),
        "peak_rss_gib": round(rss.peak, 2),
    }
    return outcome, cost


def blend_weights(spec: str) -> np.ndarray:
    """``--blend-weights``: ``"grid"`` (0, 0.1, ..., 1, picked on val) or one fixed weight."""
    if spec == "grid":
        return BLEND_WEIGHTS
    try:
        weight = float(spec)
    except ValueError:
        weight = -1.0
    if not 0.0 <= weight <= 1.0:
        raise SystemExit(f"--blend-weights must be 'grid' or a weight in [0, 1]; got {spec!r}")
    return np.array([weight])


def blend_and_test(
    first: dict[str, Any],
    second: dict[str, Any],
    task: Any,
    tables: dict,
    weights: np.ndarray = BLEND_WEIGHTS,
) -> dict[str, Any]:
    """w * first + (1 - w) * second, with w the best of ``weights`` on val; test scored once.

    Rounded to integers when ``first`` is a network answering in integers (its
    ``chosen_head["integer_output"]``), as :func:`sktve.run.blend` rounds.
    """
    from sktve.run import task_metric

    a, b = first["scores"], second["scores"]
    rounded = bool(first.get("chosen_head", {}).get("integer_output"))

    def mix(w: float, split: str) -> np.ndarray:
        scores = w * a[split] + (1 - w) * b[split]
        return np.rint(scores) if rounded else scores

    val_values = []
    for w in weights:
        metric, value, higher = task_metric(task, mix(w, "val"), tables["val"])
        val_values.append(value if higher else -value)
    best = int(np.argmax(val_values))  # first of ties: the smallest weight on ``first``
    w = float(weights[best])
    outcome = {
        "metric": metric,
        "val": abs(val_values[best]),
        "test": task_metric(task, mix(w, "test"), tables["test"])[1],
        "val_grid": [round(abs(v), 5) for v in val_values],
        "chosen_head": {"weight_on_finetuned": w, "rounded": rounded},
        "head_select_seconds": 0.0,
        "head_test_seconds": 0.0,
    }
    # The blend's own scores, so that --save-scores keeps them beside its parts'.
    outcome["scores"] = {split: mix(w, split) for split in a if split in b}
    if "test_cut" in outcome["scores"]:
        outcome["test_cut"] = task_metric(task, outcome["scores"]["test_cut"], tables["test"])[1]
    return outcome


class ScoreLog:
    """Per-row scores of every (task, seed, method) and the labels, for offline study.

    Combining methods (blend weights, stacking) can then be compared on val without
    refitting anything; ``--save-scores PATH`` writes one ``.npz`` with keys
    ``"{task}|{seed}|{method}|{split}"`` for scores, ``"{task}|y|{split}"`` for labels,
    ``"{task}|ids|{split}"`` for each row's entity (the unit ``bench_split_noise.py``
    resamples) and ``"{task}|task_type"``.
    """

    def __init__(self, path: str | None) -> None:
        self.path = None if path is None else Path(path)
        # Kept in memory either way: the split-noise summary of every run reads them.
        self.arrays: dict[str, np.ndarray] = {}

    def labels(self, task: str, tables: dict, relbench_task: Any) -> None:
        for split in ("val", "test"):
            frame = tables[split].df
            self.arrays[f"{task}|y|{split}"] = frame[relbench_task.target_col].to_numpy()
            self.arrays[f"{task}|ids|{split}"] = frame[relbench_task.entity_col].to_numpy()
        self.arrays[f"{task}|task_type"] = np.array(relbench_task.task_type.value)

    def add(self, task: str, seed: int, method: str, outcome: dict[str, Any]) -> None:
        for split, scores in outcome.get("scores", {}).items():
            self.arrays[f"{task}|{seed}|{method}|{split}"] = np.asarray(scores)

    def write(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(self.path, **self.arrays)
            print(f"wrote {len(self.arrays)} score arrays to {self.path}", flush=True)

    def write_noise(self, out_dir: Path, name: str) -> None:
        """``<name>.json`` / ``.md``: each method's standard error over the split's entities
        and its paired difference from AggregateFeatures + HGB (``bench_split_noise.py``)."""
        from bench_split_noise import AGGREGATES, collect, write_noise

        saved = collect(self.arrays)
        if not any(method == AGGREGATES for e in saved.values() for _, method in e["scores"]):
            return  # nothing to compare with
        write_noise(saved, ["this run"], out_dir, name)
        print(f"wrote {out_dir / name}.json and .md (split noise)", flush=True)


def labelled_rows(X_train: pd.DataFrame, entity_col: str, fraction: float, seed: int) -> np.ndarray:
    """Mask of the training rows whose entity is among a random ``fraction`` of them.

    Labels are scarce per entity in practice (some customers were followed up), so whole
    entities are kept or dropped; at least one entity is kept.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"--label-fraction must lie in (0, 1], got {fraction}")
    entities = np.unique(X_train[entity_col].to_numpy())
    n_keep = max(1, round(fraction * len(entities)))
    keep = np.random.default_rng(seed).choice(entities, size=n_keep, replace=False)
    return X_train[entity_col].isin(keep).to_numpy()


def label_subset(
    X: dict, y_train: np.ndarray, entity_col: str, fraction: float, seed: int, binary: bool
) -> tuple[dict, np.ndarray, dict[str, Any]]:
    """``X`` with its train rows cut to :func:`labelled_rows`, their labels, and a summary."""
    mask = labelled_rows(X["train"], entity_col, fraction, seed)
    if binary and len(np.unique(y_train[mask])) < 2:
        raise ValueError(
            f"--label-fraction {fraction} with seed {seed} left a single class among "
            f"{mask.sum()} training rows: raise the fraction or change the seed"
        )
    subset = {**X, "train": X["train"][mask].reset_index(drop=True)}
    info = {
        "label_fraction": fraction,
        "label_seed": seed,
        "labelled_entities": int(subset["train"][entity_col].nunique()),
        "entities": int(X["train"][entity_col].nunique()),
        "labelled_rows": int(mask.sum()),
        "rows": len(mask),
    }
    return subset, y_train[mask], info


def zero_empty_train_columns(features: dict) -> dict:
    """``features`` with the train columns that hold no value on any train row set to 0.

    Under ``--label-fraction`` the aggregates are fitted on every training row but the head
    sees the labelled ones only, where a column can be all NaN
    (:func:`sktve.heads.zero_empty_columns`).
    """
    from sktve.heads import zero_empty_columns

    return {**features, "train": zero_empty_columns(features["train"])}


def fit_then_transform(estimator: Any, X_fit: pd.DataFrame | None) -> Any:
    """``estimator.fit_transform``, or with ``X_fit``: fit on it, transform the rows given.

    Under ``--label-fraction`` what reads no labels is fitted on every training row.
    """
    if X_fit is None:
        return estimator.fit_transform
    return lambda rows: estimator.fit(X_fit).transform(rows)


def entity_features(drivers: pd.DataFrame, X: pd.DataFrame, entity_col: str) -> pd.DataFrame:
    """The drivers table's own columns joined to each task row (RelBench LightGBM protocol)."""
    table = pd.DataFrame(
        {
            entity_col: drivers[entity_col].to_numpy(),
            "dob_year": pd.to_datetime(drivers["dob"]).dt.year.astype("float64"),
            "dob_month": pd.to_datetime(drivers["dob"]).dt.month.astype("float64"),
            "nationality": pd.Categorical(drivers["nationality"].astype(object)),
            "has_code": drivers["code"].notna().astype("float64"),
        }
    )
    out = X[[entity_col]].merge(table, on=entity_col, how="left")
    return out.drop(columns=[entity_col]).reset_index(drop=True)


def heads(kind: str, binary: bool, seed: int, size: str = "full") -> list[Any]:
    """The head grid of ``kind``; ``size="small"`` keeps HGB's lr 0.1 at 100 iterations."""
    from sktve.heads import head_grid

    grid = head_grid(kind, binary=binary, random_state=seed)
    if kind == "hgb" and size == "small":  # the 2-core time box
        grid = [h.set_params(max_iter=100) for h in grid if h.learning_rate == 0.1]
    return grid


def summarise(runs: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> dict:
    summary: dict[str, dict[str, Any]] = {}
    for method in methods:
        summary[method] = {}
        for task in tasks:
            rows = [r for r in runs if r["method"] == method and r["task"] == task]
            if not rows:
                continue
            test = np.array([r["test"] for r in rows])
            val = np.array([r["val"] for r in rows])
            fit = np.array([r["fit_seconds"] for r in rows])
            transform = np.array([r["transform_seconds"] for r in rows])
            head = np.array([r["head_select_seconds"] for r in rows])
            summary[method][task] = {
                "metric": rows[0]["metric"],
                "n_seeds": len(rows),
                "test_mean": float(test.mean()),
                "test_std": float(test.std(ddof=1)) if len(rows) > 1 else 0.0,
                "val_mean": float(val.mean()),
                "val_std": float(val.std(ddof=1)) if len(rows) > 1 else 0.0,
                "fit_seconds_mean": round(float(fit.mean()), 1),
                "transform_seconds_mean": round(float(transform.mean()), 2),
                "head_select_seconds_mean": round(float(head.mean()), 1),
                "peak_rss_gib_max": max(r["peak_rss_gib"] for r in rows),
            }
    return summary


def _cell(entry: dict[str, Any] | None, key: str = "test") -> str:
    if not entry:
        return "-"
    mean, std = entry[f"{key}_mean"], entry[f"{key}_std"]
    if entry["metric"] == "mae":
        return f"{mean:.3f} ± {std:.3f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _ref(value: float, task: str) -> str:
    return f"{value:.3f}" if task == "driver-position" else f"{100 * value:.2f}"


def markdown(result: dict[str, Any]) -> str:
    tasks = result["tasks"]
    metric_names = {"driver-top3": "AUROC ↑", "driver-dnf": "AUROC ↑", "driver-position": "MAE ↓"}
    header = "| method | " + " | ".join(f"{t} ({metric_names.get(t, '')})" for t in tasks) + " |"
    lines = [
        f"Test split, mean ± std over seeds {result['seeds']} (AUROC × 100); heads chosen on val. "
        f"Database rows: {result['rows']} ({ROWS_NOTES[result['rows']]}).",
        "",
        header,
        "|---" * (len(tasks) + 1) + "|",
    ]
    for method in result["methods"]:
        cells = [_cell(result["summary"].get(method, {}).get(t)) for t in tasks]
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    for key, label in REFERENCE_LABELS.items():
        cells = [_ref(REFERENCES[key][t], t) if t in REFERENCES[key] else "-" for t in tasks]
        lines.append(f"| *{label}* | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Val (model selection split), mean ± std:",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---" * (len(tasks) + 1) + "|",
    ]
    for method in result["methods"]:
        cells = [_cell(result["summary"].get(method, {}).get(t), "val") for t in tasks]
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Seconds (mean over seeds): feature fit on train / transform of val + test / head "
        "selection (grid fits + val); peak RSS (GiB, whole process).",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---" * (len(tasks) + 1) + "|",
    ]
    for method in result["methods"]:
        cells = []
        for t in tasks:
            e = result["summary"].get(method, {}).get(t)
            cells.append(
                "-"
                if not e
                else f"{e['fit_seconds_mean']:.1f} / {e['transform_seconds_mean']:.1f} / "
                f"{e['head_select_seconds_mean']:.1f} s, {e['peak_rss_gib_max']:.2f} GiB"
            )
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_losses(histories: dict[str, dict[int, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in histories if histories[t]]
    if not tasks:
        return
    fig, axes = plt.subplots(
        1, len(tasks), figsize=(max(6.0, 4.2 * len(tasks)), 3.6), squeeze=False
    )
    for ax, task in zip(axes[0], tasks):
        for i, (seed, history) in enumerate(sorted(histories[task].items())):
            epochs = [h["epoch"] for h in history]
            color = f"C{i}"
            ax.plot(
                epochs, [h["train_loss"] for h in history], color=color, label=f"seed {seed} train"
            )
            ax.plot(
                epochs,
                [h["holdout_loss"] for h in history],
                color=color,
                linestyle="--",
                label=f"seed {seed} held-out",
            )
        ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel("scaled cosine loss")
        ax.legend(fontsize=7)
    fig.suptitle("TVE pre-training loss on rel-f1 (train vs held-out cutoffs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pca_2d(Z: np.ndarray) -> list[list[float]]:
    from sklearn.decomposition import PCA

    P = PCA(n_components=2, random_state=0).fit_transform(np.asarray(Z, dtype=np.float64))
    return np.round(P, 4).tolist()


def plot_pca(embeddings: dict[str, dict[str, Any]], path: Path) -> None:
    """``embeddings[task]``: ``y``, ``target``, ``seed`` and 2-D points per encoder kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(embeddings)
    if not tasks:
        return
    kinds = ("trained", "untrained")
    fig, axes = plt.subplots(
        len(kinds),
        len(tasks),
        figsize=(max(6.0, 4.6 * len(tasks)), 3.8 * len(kinds)),
        squeeze=False,
    )
    for j, task in enumerate(tasks):
        entry = embeddings[task]
        for i, kind in enumerate(kinds):
            ax = axes[i][j]
            if entry.get(kind) is None:
                ax.axis("off")
                continue
            P = np.asarray(entry[kind])
            y = np.asarray(entry["y"])
            order = np.argsort(y, kind="stable")  # draw positives / large values last
            points = ax.scatter(
                P[order, 0], P[order, 1], c=y[order], s=6, cmap="viridis", alpha=0.8
            )
            fig.colorbar(points, ax=ax, label=entry["target"])
            ax.set_title(f"{task}: {kind} encoder (seed {entry['seed']})", fontsize=9)
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
    fig.suptitle("PCA of test-split embeddings, coloured by the downstream label")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_agg_params_argument(parser: argparse.ArgumentParser) -> None:
    """``--agg-params``: further AggregateFeatures parameters (both quality benchmarks)."""
    parser.add_argument(
        "--agg-params",
        type=json.loads,
        default={},
        help="further AggregateFeatures parameters as JSON (the agg-* methods' features and "
        "the side features), e.g. '{\"seasonal\": true}'",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--tasks", default="driver-top3,driver-dnf,driver-position")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--agg-windows", default="30D,365D,3650D")
    parser.add_argument(
        "--agg-hops",
        type=int,
        default=1,
        help="AggregateFeatures max_hops (1: the entity's own fact tables; 2 is sktve's "
        "default but gave 1,372 instead of 283 features on driver-top3, a 3.5x slower HGB "
        "grid, and equal val AUROC)",
    )
    parser.add_argument(
        "--rows",
        choices=("cut", "all", "both"),
        default="cut",
        help="cut: the database RelBench hands models (rows up to the test timestamp), with "
        "as_of there; all: every row the folder holds, each feature still reading only rows "
        "at or before its row's time; both: fit once on every row, predict test both ways",
    )
    parser.add_argument("--torch-threads", type=int, default=2)
    add_agg_params_argument(parser)
    parser.add_argument(
        "--tve-params",
        type=json.loads,
        default={},
        help="further TVEPretrainer parameters as JSON, e.g. '{\"history_counts\": false}'",
    )
    parser.add_argument(
        "--ft-params",
        type=json.loads,
        default={},
        help="further TVEClassifier / TVERegressor parameters of the ft-* methods as JSON, "
        "e.g. '{\"encoder_lr_scale\": 0.1}'",
    )
    parser.add_argument(
        "--hgb-grid",
        choices=("full", "small"),
        default="full",
        help="full: sktve.heads.head_grid('hgb') (lr 0.03/0.1 x 3/7/31 leaves, 200 iterations); "
        "small: lr 0.1 x 3/7/31 leaves, 100 iterations (about 4x cheaper)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="combine result JSONs of separate runs (e.g. one per task) into one",
    )
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="pre-training epochs (default: sktve's)"
    )
    parser.add_argument("--quick", action="store_true", help="first task, first seed, 2 epochs")
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--name", default="quality_relf1", help="output file stem")
    parser.add_argument(
        "--head-threads", type=int, default=1, help="OpenMP threads of the HGB heads"
    )
    parser.add_argument(
        "--save-scores", default=None, help="write every method's val/test scores to this .npz"
    )
    parser.add_argument(
        "--blend-weights",
        default="grid",
        help="blend weight on the fine-tuned network: 'grid' (0, 0.1, ..., 1, best on val) or "
        "a fixed weight such as 0.3 (bench_blend_rules.py chose 0.3 by CV inside val)",
    )
    parser.add_argument(
        "--train-years",
        type=float,
        default=None,
        help="heads and fine-tuning learn from the training rows of the last this many years "
        "before the latest training timestamp only (TVE pre-training still reads every "
        "training row); default: every training row",
    )
    parser.add_argument(
        "--decay-half-life",
        type=float,
        default=None,
        help="fine-tuning weighs each training row by 0.5 ** (age / this many years), its age "
        "counted back from the latest training time; the heads stay unweighted; default: "
        "every training row weighs 1",
    )
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        help="heads and fine-tuning learn from the training rows of this random fraction of "
        "the training entities only (TVE pre-training and AggregateFeatures' fit, which read "
        "no labels, still see every training row); default: every entity",
    )
    parser.add_argument(
        "--label-seed", type=int, default=0, help="seed of the --label-fraction draw"
    )
    args = parser.parse_args()
    weights = blend_weights(args.blend_weights)  # a bad value fails now, not after fits
    if args.merge:
        out_dir = Path(args.out_dir or HERE / "results")
        out_dir.mkdir(parents=True, exist_ok=True)
        merge(args.merge, out_dir, args.name)
        return
    global HEAD_THREADS
    HEAD_THREADS = args.head_threads

    import relbench
    import torch
    from sklearn.base import clone

    from sktve import TVEClassifier, TVERegressor, load_database
    from sktve.aggregates import AggregateFeatures
    from sktve.run import task_pretrainer

    torch.set_num_threads(args.torch_threads)
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    max_epochs = args.max_epochs
    if args.quick:
        tasks, seeds = tasks[:1], seeds[:1]
        max_epochs = 2 if max_epochs is None else max_epochs
    out_dir = Path(args.out_dir or HERE / "results" / ("quick" if args.quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    agg_windows = args.agg_windows.split(",")
    need_tve = any(m.startswith("tve") for m in methods)
    need_untrained = any(m.startswith("untrained") for m in methods)
    need_agg = any("agg" in m for m in methods)
    need_tve = need_tve or any(m.startswith(("tv", "ft-")) for m in methods)
    # ft-random alone takes the pretrainer's settings, not its weights: no pre-training.
    need_fitted_tve = any(m.startswith(("tv", "ft-tve")) for m in methods)
    if (
        any(m.endswith("+agg") and m.startswith("ft-") for m in methods)
        and "agg-hgb" not in methods
    ):
        parser.error("the ft-*+agg methods take agg-hgb's val-chosen HGB: add agg-hgb")
    for blend, parts in BLEND_METHODS.items():
        if blend in methods and not set(parts) <= set(methods):
            parser.error(f"{blend} blends {' and '.join(parts)}: add them to --methods")

    started_all = time.perf_counter()
    dataset = relbench.load_dataset(args.relf1)
    database = load_database(dataset, upto_test_timestamp=args.rows == "cut")
    # RelBench's cut: rows after the test timestamp are featurised as of it (declared).
    as_of = pd.Timestamp(dataset.test_timestamp) if args.rows == "cut" else None
    cut = None
    if args.rows == "both":
        cut = (
            load_database(dataset, upto_test_timestamp=True),
            pd.Timestamp(dataset.test_timestamp),
        )
    fit_check: dict[str, Any] = {}
    drivers = dataset.get_db().table_dict["drivers"].df
    runs: list[dict[str, Any]] = []
    score_log = ScoreLog(args.save_scores)
    embeddings: dict[str, dict[str, Any]] = {}
    pretrain_info: list[dict[str, Any]] = []
    agg_info: dict[str, Any] = {}
    label_info: dict[str, Any] = {}

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started_all:7.1f}s] {message}", flush=True)

    def record(task_name, seed, method, cost, outcome, **extra):
        score_log.add(task_name, seed, method, outcome)
        outcome = {k: v for k, v in outcome.items() if k not in ("model", "scores")}
        run = {"task": task_name, "seed": seed, "method": method, **outcome, **cost, **extra}
        runs.append(run)
        log(
            f"{task_name} seed {seed} {method:20s} val {outcome['val']:.4f} "
            f"test {outcome['test']:.4f}  fit {cost['fit_seconds']:.1f}s "
            f"transform {cost['transform_seconds']:.1f}s "
            f"head {outcome['head_select_seconds']:.1f}s "
            f"peak {cost['peak_rss_gib']:.2f} GiB"
        )

    for task_name in tasks:
        task = dataset.load_task(task_name)
        binary = task.task_type.value == "binary_classification"
        tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")}
        score_log.labels(task_name, tables, task)
        cols = [task.entity_col, task.time_col]
        X = {s: t.df[cols].reset_index(drop=True) for s, t in tables.items()}
        y_train = tables["train"].df[task.target_col].to_numpy()
        log(
            f"{task_name}: {len(X['train'])} train / {len(X['val'])} val / {len(X['test'])} "
            f"test rows, window {task.timedelta}"
        )
        X_pretrain = X["train"]  # TVE pre-training reads every training row
        if args.train_years is not None:
            times = X["train"][task.time_col]
            since = times.max() - pd.Timedelta(days=round(365.25 * args.train_years))
            recent = (times > since).to_numpy()
            X["train"] = X["train"][recent].reset_index(drop=True)
            y_train = y_train[recent]
            log(
                f"{task_name}: heads and fine-tuning on the {len(X['train'])} training rows "
                f"after {since.date()} (--train-years {args.train_years:g})"
            )
        if args.label_fraction is not None:
            X, y_train, info = label_subset(
                X, y_train, task.entity_col, args.label_fraction, args.label_seed, binary
            )
            label_info[task_name] = info
            log(f"{task_name}: heads and fine-tuning on labelled entities only: {info}")
        decay = None
        if args.decay_half_life is not None:
            train_times = X["train"][task.time_col].to_numpy(dtype="datetime64[ns]")
            decay = decay_weights(train_times, args.decay_half_life)
            log(
                f"{task_name}: fine-tuning rows weighted by age, half-life "
                f"{args.decay_half_life:g} years (weights {decay.min():.3g} to 1)"
            )
        logistic = partial(heads, "logistic", binary, size=args.hgb_grid)
        hgb = partial(heads, "hgb", binary, size=args.hgb_grid)

        # Seed-independent features: computed once per task. Their heads (HGB without early
        # stopping or subsampling) are deterministic too, so they are fitted once and the
        # same numbers stand for every seed (std 0 by construction, said in the results).
        entity_feats = entity_cost = None
        if "entity-hgb" in methods:
            featurize = partial(entity_features, drivers, entity_col=task.entity_col)
            entity_feats, entity_cost = timed_features(featurize, featurize, X)
            if cut is not None:  # static columns: the cut changes nothing
                entity_feats["test_cut"] = entity_feats["test"]
            outcome = select_and_test(hgb(seeds[0]), entity_feats, y_train, task, tables, binary)
            for seed in seeds:
                record(task_name, seed, "entity-hgb", entity_cost, outcome, deterministic=True)
        agg_feats = agg_cost = None
        if need_agg:
            agg = AggregateFeatures(
                database=database,
                entity_table=task.entity_table,
                entity_col=task.entity_col,
                time_col=task.time_col,
                window=agg_windows,
                max_hops=args.agg_hops,
                as_of=as_of,
                **args.agg_params,
            )
            agg_fit = fit_then_transform(agg, None if args.label_fraction is None else X_pretrain)
            agg_feats, agg_cost = timed_features(agg_fit, agg.transform, X)
            if args.label_fraction is not None:
                agg_feats = zero_empty_train_columns(agg_feats)
            agg_feats = with_cut_test(agg_feats, agg.transform, agg, X["test"], cut)
            agg_info[task_name] = {
                "windows": agg_windows,
                "max_hops": args.agg_hops,
                "n_features": len(agg.get_feature_names_out()),
                "dropped_constant": len(agg.dropped_constant_),
                "dropped_by_cap": len(agg.dropped_by_cap_),
                **agg_cost,
            }
            log(f"{task_name}: AggregateFeatures {agg_info[task_name]}")
            if "agg-hgb" in methods:
                outcome = select_and_test(hgb(seeds[0]), agg_feats, y_train, task, tables, binary)
                agg_head = clone(outcome["model"])
                agg_outcome = outcome
                for seed in seeds:
                    record(task_name, seed, "agg-hgb", agg_cost, outcome, deterministic=True)

        for seed in seeds:
            encoders = {}
            if need_tve:
                trained = {} if max_epochs is None else {"max_epochs": max_epochs}
                encoders["trained"] = task_pretrainer(
                    database, task, random_state=seed, as_of=as_of, **trained, **args.tve_params
                )
            if need_untrained:
                encoders["untrained"] = task_pretrainer(
                    database,
                    task,
                    random_state=seed,
                    as_of=as_of,
                    **{**args.tve_params, "max_epochs": 0},
                )
            feats, costs = {}, {}
            for kind, tve in encoders.items():
                if kind == "trained" and not need_fitted_tve:
                    continue
                feats[kind], costs[kind] = timed_features(
                    lambda rows, tve=tve, X_pre=X_pretrain: tve.fit(X_pre).transform(rows),
                    tve.transform,
                    X,
                )
                feats[kind] = with_cut_test(feats[kind], tve.transform, tve, X["test"], cut)
                if cut is not None and kind == "trained" and not fit_check:
                    # The claim behind --rows both, checked once: a fit on the cut database
                    # learns exactly what the fit on every row learned.
                    on_cut = clone(tve).set_params(database=cut[0]).fit(X_pretrain)
                    fit_check = {
                        "task": task_name,
                        "seed": seed,
                        "encoder_identical": on_cut.encoder_state_ == tve.encoder_state_,
                        "embeddings_identical": bool(
                            np.array_equal(on_cut.transform(X["val"]), feats[kind]["val"])
                        ),
                    }
                    log(f"fit on the cut database vs every row: {fit_check}")
                pretrain_info.append(
                    {
                        "task": task_name,
                        "seed": seed,
                        "encoder": kind,
                        "epochs": len(tve.history_),
                        "best_epoch": tve.best_epoch_,
                        "steps": tve.n_steps_,
                        "steps_per_second": round(tve.steps_per_second_, 2),
                        "pretrain_rows": tve.n_pretrain_rows_,
                        **costs[kind],
                        "history": tve.history_,
                    }
                )
                log(f"{task_name} seed {seed}: {kind} encoder {costs[kind]}, {tve.n_steps_} steps")
            if seed == seeds[0] and feats:
                embeddings[task_name] = {
                    "y": tables["test"].df[task.target_col].to_numpy().tolist(),
                    "target": task.target_col,
                    "seed": seed,
                    **{kind: pca_2d(f["test"]) for kind, f in feats.items()},
                }
            for kind, prefix in (("trained", "tve"), ("untrained", "untrained")):
                if kind not in feats:
                    continue
                for head_name, grid in (("logistic", logistic), ("hgb", hgb)):
                    method = f"{prefix}-{head_name}"
                    if method in methods:
                        outcome = select_and_test(
                            grid(seed), feats[kind], y_train, task, tables, binary
                        )
                        record(task_name, seed, method, costs[kind], outcome)
            if "tve+agg-hgb" in methods:
                both = {
                    s: np.hstack([feats["trained"][s], agg_feats[s]])
                    for s in ("train", "val", "test")
                }
                cost = {
                    "fit_seconds": round(
                        costs["trained"]["fit_seconds"] + agg_cost["fit_seconds"], 2
                    ),
                    "transform_seconds": round(
                        costs["trained"]["transform_seconds"] + agg_cost["transform_seconds"], 2
                    ),
                    "peak_rss_gib": max(costs["trained"]["peak_rss_gib"], agg_cost["peak_rss_gib"]),
                }
                if "test_cut" in agg_feats:
                    both["test_cut"] = np.hstack(
                        [feats["trained"]["test_cut"], agg_feats["test_cut"]]
                    )
                outcome = select_and_test(hgb(seed), both, y_train, task, tables, binary)
                record(task_name, seed, "tve+agg-hgb", cost, outcome)
            if any(m.startswith("tv-") or m.startswith("tv+") for m in methods):
                tve = encoders["trained"].set_params(output="task_vector")
                tv_feats, tv_cost = timed_features(tve.transform, tve.transform, X)
                tv_feats = with_cut_test(tv_feats, tve.transform, tve, X["test"], cut)
                tve.set_params(output="embedding")
                if "tv-hgb" in methods:
                    outcome = select_and_test(hgb(seed), tv_feats, y_train, task, tables, binary)
                    record(task_name, seed, "tv-hgb", tv_cost, outcome)
                if "tv+agg-hgb" in methods:
                    joined = {s: np.hstack([tv_feats[s], agg_feats[s]]) for s in tv_feats}
                    outcome = select_and_test(hgb(seed), joined, y_train, task, tables, binary)
                    record(task_name, seed, "tv+agg-hgb", tv_cost, outcome)
            finetuned: dict[str, tuple[dict, dict]] = {}
            for method, (init, with_agg) in FINETUNE_METHODS.items():
                if method not in methods:
                    continue
                params = {
                    "entity_table": task.entity_table,
                    "entity_col": task.entity_col,
                    "time_col": task.time_col,
                    "init": init,
                    "pretrainer": encoders["trained"],
                    "as_of": as_of,
                    "random_state": seed,
                }
                if not binary:
                    params["loss"] = "absolute_error"
                params.update(args.ft_params)  # last: --ft-params may override any of these
                if with_agg:
                    params["side_features"] = AggregateFeatures(
                        window=agg_windows, max_hops=args.agg_hops, **args.agg_params
                    )
                    params["side_estimator"] = clone(agg_head)
                estimator = (TVEClassifier if binary else TVERegressor)(database=database, **params)
                outcome, cost = finetune_and_test(
                    estimator, X, y_train, task, tables, binary, cut, sample_weight=decay
                )
                record(task_name, seed, method, cost, outcome)
                finetuned[method] = (outcome, cost)
            for method, (ft_method, _) in BLEND_METHODS.items():
                if method not in methods:
                    continue
                ft_outcome, ft_cost = finetuned[ft_method]
                outcome = blend_and_test(ft_outcome, agg_outcome, task, tables, weights)
                cost = {
                    "fit_seconds": round(ft_cost["fit_seconds"] + agg_cost["fit_seconds"], 2),
                    "transform_seconds": round(
                        ft_cost["transform_seconds"] + agg_cost["transform_seconds"], 2
                    ),
                    "peak_rss_gib": max(ft_cost["peak_rss_gib"], agg_cost["peak_rss_gib"]),
                }
                record(task_name, seed, method, cost, outcome)

    score_log.write()
    score_log.write_noise(out_dir, f"{args.name}_noise")
    protocols = {args.rows: runs}
    if cut is not None:
        protocols = {
            "all": runs,
            "cut": [{**r, "test": r["test_cut"], "test_all": r["test"]} for r in runs],
        }
    for rows_kind, protocol_runs in protocols.items():
        protocol_name = args.name if rows_kind != "cut" or cut is None else f"{args.name}_cut"
        write_protocol(
            args,
            rows_kind,
            protocol_runs,
            protocol_name,
            out_dir,
            tasks,
            seeds,
            methods,
            max_epochs,
            agg_windows,
            embeddings,
            agg_info,
            pretrain_info,
            fit_check,
            time.perf_counter() - started_all,
            label_info,
        )


def write_protocol(
    args,
    rows_kind,
    runs,
    name,
    out_dir,
    tasks,
    seeds,
    methods,
    max_epochs,
    agg_windows,
    embeddings,
    agg_info,
    pretrain_info,
    fit_check,
    total_seconds,
    label_info=None,
) -> None:
    """One protocol's results: JSON, markdown and plots."""
    import torch

    summary = summarise(runs, tasks, methods)
    result = {
        "benchmark": "quality_relf1",
        "dataset": str(args.relf1),
        "tasks": tasks,
        "seeds": seeds,
        "methods": methods,
        "quick": args.quick,
        "rows": rows_kind,
        "fitted_on": "every row" if args.rows == "both" else rows_kind,
        "fit_check_cut_vs_all": fit_check,
        "settings": {
            "tve": "TVEPretrainer defaults, window = task.timedelta"
            + ("" if max_epochs is None else f", max_epochs={max_epochs}")
            + "".join(f", {k}={v!r}" for k, v in args.tve_params.items()),
            "untrained": "TVEPretrainer(max_epochs=0), same seed",
            "aggregate_windows": agg_windows,
            "aggregate_max_hops": args.agg_hops,
            "aggregate_params": args.agg_params,
            "train_years": args.train_years,
            "decay_half_life_years": args.decay_half_life,
            "label_fraction": args.label_fraction,
            "labels": label_info or None,
            "rows": ROWS_NOTES[rows_kind],
            "as_of": "the test timestamp" if rows_kind == "cut" else None,
            "finetune": "TVEClassifier / TVERegressor defaults (regression loss "
            "absolute_error), started from the seed's TVE encoder or at random; +agg: "
            "AggregateFeatures side features and agg-hgb's val-chosen HGB as side estimator"
            + "".join(f", {k}={v!r}" for k, v in args.ft_params.items()),
            "heads": "sktve.heads.head_grid: logistic C in (0.01, 0.1, 1) / ridge alpha in "
            "(1, 10, 100); HGB "
            + (
                "learning_rate in (0.03, 0.1) x max_leaf_nodes in (3, 7, 31), 200 iterations"
                if args.hgb_grid == "full"
                else "learning_rate 0.1 x max_leaf_nodes in (3, 7, 31), 100 iterations (small grid)"
            )
            + "; chosen on val, test predicted once",
            "entity_columns": "drivers: dob year, dob month, nationality (category), has code",
            "head_threads": args.head_threads,
            "blend_weights": args.blend_weights,
            "deterministic_methods": "entity-hgb and agg-hgb have no seed-dependent step; "
            "they are fitted once per task and repeated for each seed",
            "timing": "fit_seconds = feature fit on train (TVE: pre-training; shared by the "
            "methods using the same encoder); transform_seconds = val + test; peak RSS of "
            "the whole process while computing the features",
        },
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "references": REFERENCES,
        "pca_test_embeddings": embeddings,
        "summary": summary,
        "aggregate_features": agg_info,
        "runs": runs,
        "pretraining": pretrain_info,
        "total_seconds": round(total_seconds, 1),
    }
    write_outputs(result, out_dir, name)
    print(f"wrote {out_dir / name}.json, .md and the PNGs", flush=True)


def write_outputs(result: dict[str, Any], out_dir: Path, name: str) -> None:
    """JSON, markdown table and the two plots, all from ``result``."""
    histories: dict[str, dict[int, list[dict]]] = {t: {} for t in result["tasks"]}
    for entry in result["pretraining"]:
        if entry["encoder"] == "trained":
            histories[entry["task"]][entry["seed"]] = entry["history"]
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / f"{name}.md").write_text(markdown(result))
    plot_losses(histories, out_dir / f"{name}_loss.png")
    plot_pca(result["pca_test_embeddings"], out_dir / f"{name}_pca.png")
    print(markdown(result))


def merge(paths: list[str], out_dir: Path, name: str) -> None:
    parts = [json.loads(Path(p).read_text()) for p in paths]
    result = dict(parts[0])
    result["tasks"] = list(dict.fromkeys(t for part in parts for t in part["tasks"]))
    # Parts may hold other methods on the same tasks (e.g. a later run of new methods).
    result["methods"] = [m for m in METHODS if any(m in part["methods"] for part in parts)]
    result["seeds"] = sorted({s for part in parts for s in part["seeds"]})
    # A (task, seed, method) run by two parts is kept once, from the first part; the later
    # copies must agree (runs are deterministic given the seed and thread count), which the
    # merged file records.
    identity = {
        "runs": lambda r: (r["task"], r["seed"], r["method"]),
        "pretraining": lambda r: (r["task"], r["seed"], r["encoder"]),
    }
    repeats = []
    for key, ident in identity.items():
        kept: dict[tuple, dict] = {}
        for part in parts:
            for r in part[key]:
                if ident(r) not in kept:
                    kept[ident(r)] = r
                elif key == "runs":
                    first = kept[ident(r)]
                    repeats.append(
                        {
                            "run": list(ident(r)),
                            "val_diff": abs(first["val"] - r["val"]),
                            "test_diff": abs(first["test"] - r["test"]),
                        }
                    )
        result[key] = list(kept.values())
    result["repeated_runs"] = {
        "count": len(repeats),
        "max_val_diff": max((r["val_diff"] for r in repeats), default=0.0),
        "max_test_diff": max((r["test_diff"] for r in repeats), default=0.0),
    }
    for key in ("aggregate_features", "pca_test_embeddings"):
        result[key] = {k: v for part in parts for k, v in part[key].items()}
    result["summary"] = summarise(result["runs"], result["tasks"], result["methods"])
    result["total_seconds"] = round(sum(part["total_seconds"] for part in parts), 1)
    result["merged_from"] = [Path(p).name for p in paths]
    write_outputs(result, out_dir, name)


if __name__ == "__main__":
    main()
