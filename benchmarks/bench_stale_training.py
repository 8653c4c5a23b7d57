"""Training on stale features for RelBench's cut protocol, measured on a cut val split.

Under the cut protocol the database ends at the test timestamp while test rows run years
past it, so every test row is featurised as of the cut (``as_of``): its features are
0 to 3 years stale, while every training row's features are fresh. This script asks
whether a model trained on features that are stale in the same way does better: each
training row (entity, t) is repeated with its features computed as of ``t - lag`` for
several lags (label unchanged), optionally with the lag in days as one more column (known
at predict time: the row's time minus the cut).

Nothing here looks at test unless ``--test``: the val rows are cut the same way at the
val timestamp (features as of ``min(t, val_timestamp)``, as the cut database would give
them), the head is chosen there, and variants are compared on that "val cut" score.
Features: AggregateFeatures (30D, 365D, 3650D windows, 1 hop, as the quality benchmark);
heads: sktve's HGB grid.

    python benchmarks/bench_stale_training.py --relf1 ../shared/data/rel-f1 --tasks driver-dnf

Writes ``<out-dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import mean_absolute_error, roc_auc_score

HERE = Path(__file__).resolve().parent
YEAR = pd.Timedelta(days=365)
# name: (lags in years, add the lag as a column)
VARIANTS: dict[str, tuple[list[float], bool]] = {
    "fresh": ([0.0], False),
    "stale": ([0.0, 0.5, 1.0, 2.0, 3.0], False),
    "stale+lag": ([0.0, 0.5, 1.0, 2.0, 3.0], True),
}


def featurise(agg: Any, X: pd.DataFrame, time_col: str, lag_years: float, clip, lag_col: bool):
    """Features of ``X``'s rows as of ``min(t - lag, clip)``; the row times are untouched."""
    shifted = X.copy()
    feature_time = X[time_col] - lag_years * YEAR
    if clip is not None:
        feature_time = feature_time.where(feature_time <= clip, clip)
    shifted[time_col] = feature_time
    features = pd.DataFrame(np.asarray(agg.transform(shifted)), columns=agg.get_feature_names_out())
    if lag_col:
        features["stale_days"] = (X[time_col] - feature_time).dt.days.to_numpy()
    return features


def task_metric(binary: bool, truth: np.ndarray, pred: np.ndarray) -> float:
    """AUROC x 100 (higher is better) or MAE (lower is better)."""
    return 100 * roc_auc_score(truth, pred) if binary else mean_absolute_error(truth, pred)


def scorer(model: Any, binary: bool):
    """The model's score per row: positive-class probability or prediction."""
    return (lambda F: model.predict_proba(F)[:, 1]) if binary else model.predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relf1", default=os.environ.get("SKTVE_RELF1", "../shared/data/rel-f1"))
    parser.add_argument("--tasks", default="driver-dnf,driver-top3,driver-position")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--test",
        action="store_true",
        help="also score test: cut (features as of the test timestamp) and all rows",
    )
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="stale_training")
    args = parser.parse_args()

    import relbench

    from sktve import AggregateFeatures
    from sktve.database import load_database
    from sktve.heads import head_grid

    dataset = relbench.load_dataset(args.relf1)
    # Every row: val and the cut read only rows at or before their (clipped) times, and
    # ``--test`` also scores the all-rows protocol.
    database = load_database(dataset, upto_test_timestamp=False)
    val_cut = pd.Timestamp(dataset.val_timestamp)
    test_cut = pd.Timestamp(dataset.test_timestamp)
    results: dict[str, Any] = {}
    for task_name in args.tasks.split(","):
        task = dataset.load_task(task_name)
        binary = task.task_type.value == "binary_classification"
        tables = {s: task.get_table(s, mask_input_cols=False).df for s in ("train", "val", "test")}
        cols = [task.entity_col, task.time_col]
        X = {s: t[cols].reset_index(drop=True) for s, t in tables.items()}
        y = {s: t[task.target_col].to_numpy() for s, t in tables.items()}
        agg = AggregateFeatures(
            database=database,
            entity_table=task.entity_table,
            entity_col=task.entity_col,
            time_col=task.time_col,
            window=["30D", "365D", "3650D"],
            max_hops=1,
        ).fit(X["train"])

        metric = partial(task_metric, binary)

        results[task_name] = {}
        for name in args.variants.split(","):
            lags, lag_col = VARIANTS[name]
            started = time.perf_counter()
            F_train = pd.concat(
                [featurise(agg, X["train"], task.time_col, lag, None, lag_col) for lag in lags],
                ignore_index=True,
            )
            y_train = np.concatenate([y["train"]] * len(lags))
            F_val = featurise(agg, X["val"], task.time_col, 0.0, None, lag_col)
            F_val_cut = featurise(agg, X["val"], task.time_col, 0.0, val_cut, lag_col)
            best = None
            for head in head_grid("hgb", binary=binary, random_state=0):
                model = clone(head).fit(F_train, y_train)
                predict = scorer(model, binary)
                on_cut = metric(y["val"], predict(F_val_cut))
                if best is None or (on_cut > best[0] if binary else on_cut < best[0]):
                    best = (on_cut, metric(y["val"], predict(F_val)), predict, repr(head))
            entry = {
                "lags_years": lags,
                "lag_column": lag_col,
                "train_rows": len(F_train),
                "val_cut": best[0],
                "val": best[1],
                "head": best[3],
            }
            if args.test:
                entry["test_cut"] = metric(
                    y["test"],
                    best[2](featurise(agg, X["test"], task.time_col, 0.0, test_cut, lag_col)),
                )
                entry["test_all_rows"] = metric(
                    y["test"], best[2](featurise(agg, X["test"], task.time_col, 0.0, None, lag_col))
                )
            entry["seconds"] = round(time.perf_counter() - started, 1)
            results[task_name][name] = entry
            print(task_name, name, {k: v for k, v in entry.items() if k != "head"}, flush=True)

    out = Path(args.out_dir) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "bench_stale_training",
                "protocol": "head chosen and variants compared on val featurised as of "
                "min(t, val_timestamp); test only with --test",
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "results": results,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
