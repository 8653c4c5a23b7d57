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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


def measure_task(dataset: Any, database: Any, task_name: str, variants: list[str], test: bool):
    """Each variant's val-cut, val (and test) scores on one task, head chosen on the val cut."""
    from sktve import AggregateFeatures
    from sktve.heads import head_grid
    from sktve.run import predict_scores, select_on_val, task_metric

    task = dataset.load_task(task_name)
    binary = task.task_type.value == "binary_classification"
    tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")}
    X = {
        s: t.df[[task.entity_col, task.time_col]].reset_index(drop=True) for s, t in tables.items()
    }
    y_train = tables["train"].df[task.target_col].to_numpy()
    cut = {"val": pd.Timestamp(dataset.val_timestamp), "test": pd.Timestamp(dataset.test_timestamp)}
    agg = AggregateFeatures(
        database=database,
        entity_table=task.entity_table,
        entity_col=task.entity_col,
        time_col=task.time_col,
        window=["30D", "365D", "3650D"],
        max_hops=1,
    ).fit(X["train"])

    def metric(model: Any, features: pd.DataFrame, split: str) -> float:
        """The task's metric on ``split``, AUROC x 100."""
        value = task_metric(task, predict_scores(model, features, binary), tables[split])[1]
        return 100 * value if binary else value

    results = {}
    for name in variants:
        lags, lag_col = VARIANTS[name]
        started = time.perf_counter()
        F_train = pd.concat(
            [featurise(agg, X["train"], task.time_col, lag, None, lag_col) for lag in lags],
            ignore_index=True,
        )
        F_val_cut = featurise(agg, X["val"], task.time_col, 0.0, cut["val"], lag_col)
        # The head is chosen on the val cut: the protocol the variants are compared on.
        model = select_on_val(
            head_grid("hgb", binary=binary, random_state=0),
            F_train,
            np.concatenate([y_train] * len(lags)),
            F_val_cut,
            task,
            tables["val"],
            binary,
        )[0]
        entry = {
            "lags_years": lags,
            "lag_column": lag_col,
            "train_rows": len(F_train),
            "val_cut": metric(model, F_val_cut, "val"),
            "val": metric(
                model, featurise(agg, X["val"], task.time_col, 0.0, None, lag_col), "val"
            ),
            "head": repr(model),
        }
        if test:
            for key, clip in (("test_cut", cut["test"]), ("test_all_rows", None)):
                features = featurise(agg, X["test"], task.time_col, 0.0, clip, lag_col)
                entry[key] = metric(model, features, "test")
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = entry
        print(task_name, name, {k: v for k, v in entry.items() if k != "head"}, flush=True)
    return results


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

    from sktve.database import load_database

    dataset = relbench.load_dataset(args.relf1)
    # Every row: val and the cut read only rows at or before their (clipped) times, and
    # ``--test`` also scores the all-rows protocol.
    database = load_database(dataset, upto_test_timestamp=False)
    variants = args.variants.split(",")
    results = {
        task_name: measure_task(dataset, database, task_name, variants, args.test)
        for task_name in args.tasks.split(",")
    }

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
