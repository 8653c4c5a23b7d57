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
Models (``--models``): AggregateFeatures (30D, 365D, 3650D windows, 1 hop, as the
quality benchmark) with sktve's HGB grid (``agg-hgb``, the default), and the fine-tuned
networks (``ft-tve``, ``ft-random``, ``ft-tve+agg``; one run per ``--seeds`` seed, plus
the metric of their scores averaged over the seeds).

    python benchmarks/bench_stale_training.py --relf1 ../shared/data/rel-f1 --tasks driver-dnf
    python benchmarks/bench_stale_training.py --relf1 ../shared/data/rel-f1 \
        --tasks driver-position --variants fresh,stale --models ft-tve,ft-random --test
    python benchmarks/bench_stale_training.py --relf1 bank_folder --tasks account-dispute \
        --stale-lags 0D,30D,60D --variants fresh,stale --models agg-hgb,ft-tve

Writes ``<out-dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
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


def write_results(
    args: argparse.Namespace,
    benchmark: str,
    protocol: str,
    results: dict[str, Any],
    scores: dict[str, np.ndarray] | None,
    **extra: Any,
) -> None:
    """Write ``<out_dir>/<name>.json`` and, with ``--save-scores``, the per-row scores."""
    from bench_pretrainer_relf1 import machine  # the quality benchmarks' machine record

    out = Path(args.out_dir) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": benchmark,
        "protocol": protocol,
        "machine": machine(),
        **extra,
        "results": results,
    }
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    if args.save_scores:
        np.savez_compressed(args.save_scores, **scores)
        print(f"wrote {args.save_scores}")


def featurise(
    agg: Any,
    X: pd.DataFrame,
    time_col: str,
    lag_years: float,
    clip: pd.Timestamp | None,
    lag_col: bool,
) -> pd.DataFrame:
    """Features of ``X``'s rows as of ``min(t - lag, clip)``; the row times are untouched."""
    from sktve._as_of import clamp_times
    from sktve.staleness import shift_times

    shifted = shift_times(X, (lag_years * YEAR).to_timedelta64(), time_col)
    feature_time = pd.Series(clamp_times(shifted[time_col], clip), index=X.index)
    shifted[time_col] = feature_time
    features = pd.DataFrame(np.asarray(agg.transform(shifted)), columns=agg.get_feature_names_out())
    if lag_col:
        features["stale_days"] = (X[time_col] - feature_time).dt.days.to_numpy()
    return features


def featurise_rows(X: pd.DataFrame, time_col: str, clip: pd.Timestamp | None) -> pd.DataFrame:
    """``X`` with its times clamped to ``clip``: what ``as_of=clip`` does to a row."""
    from sktve._as_of import clamp_times

    return X.assign(**{time_col: clamp_times(X[time_col], clip)})


def task_score(task: Any, split_table: Any, scores: np.ndarray) -> float:
    """The task's metric (``sktve.run.task_metric``) of ``scores``: AUROC x 100, or MAE."""
    from sktve.run import task_metric

    _, value, higher = task_metric(task, scores, split_table)
    return 100 * value if higher else value


def lag_spans(lags_years: list[float]) -> list[pd.Timedelta]:
    """The lags in years as time spans (a year: 365 days), for ``stale_lags``."""
    return [lag * YEAR for lag in lags_years]


def measure_task(
    dataset: Any,
    database: Any,
    task_name: str,
    variants: list[str],
    models: list[str],
    seeds: list[int],
    test: bool,
    scores_out: dict[str, np.ndarray] | None = None,
    pretrain_until_test: bool = False,
    variant_table: dict[str, tuple[list[float], bool]] = VARIANTS,
) -> dict[str, Any]:
    """Each (model, variant)'s val-cut, val (and test) scores on one task.

    ``agg-hgb``: AggregateFeatures + an HGB head chosen on the val cut (deterministic: one
    run). ``ft-tve`` / ``ft-random`` / ``ft-tve+agg``: the fine-tuned estimators (from TVE,
    from random init, from TVE with side features and the variant's val-cut-chosen HGB as
    start), one run per seed, the TVE encoder pre-trained once per seed on the fresh
    training rows; they fit with the variant's lags as ``stale_lags``: every training row
    once per lag, label unchanged, the early-stopping split holding out the latest 15% of
    the rows' own timestamps with every copy of them. With ``scores_out``, every run's
    per-row scores go there under ``"{task}|{model}/{variant}|{seed}|{view}"`` (seed 0 for
    agg-hgb), the labels under ``"{task}|y|{split}"``.
    """
    from sktve import AggregateFeatures, TVEClassifier, TVERegressor
    from sktve.heads import head_grid
    from sktve.run import predict_scores, select_on_val, task_pretrainer

    task = dataset.load_task(task_name)
    binary = task.task_type.value == "binary_classification"
    tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")}
    X = {
        s: t.df[[task.entity_col, task.time_col]].reset_index(drop=True) for s, t in tables.items()
    }
    y_train = tables["train"].df[task.target_col].to_numpy()
    cut = {"val": pd.Timestamp(dataset.val_timestamp), "test": pd.Timestamp(dataset.test_timestamp)}
    windows = ["30D", "365D", "3650D"]
    agg = AggregateFeatures(
        database=database,
        entity_table=task.entity_table,
        entity_col=task.entity_col,
        time_col=task.time_col,
        window=windows,
        max_hops=1,
    ).fit(X["train"])

    def metric(scores: np.ndarray, split: str) -> float:
        return task_score(task, tables[split], scores)

    # (result key, split, clip): the val cut, val, and with ``test`` the test cut and all rows.
    views = [("val_cut", "val", cut["val"]), ("val", "val", None)]
    if test:
        views += [("test_cut", "test", cut["test"]), ("test_all_rows", "test", None)]

    def scored(predict: Any, entry: dict[str, Any], kept: dict | None = None) -> dict[str, Any]:
        """``entry`` with each view's metric of ``predict(split, clip)``; the per-row scores
        are appended to ``kept[view]`` for the mean over seeds."""
        for view, split, clip in views:
            scores = predict(split, clip)
            entry[view] = metric(scores, split)
            if kept is not None:
                kept.setdefault(view, []).append(scores)
        return entry

    results: dict[str, Any] = {}
    agg_heads = {}
    # Per-row scores, (model/variant) -> view -> one array per run, for --save-scores and
    # the networks' mean over seeds.
    seed_scores: dict[str, dict[str, list[np.ndarray]]] = {}
    # The aggregates' heads: agg-hgb's results, and ft-tve+agg's starting point.
    for name in variants if {"agg-hgb", "ft-tve+agg"} & set(models) else []:
        lags, lag_col = variant_table[name]
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
        agg_heads[name] = model
        if "agg-hgb" not in models:
            continue
        entry = scored(
            lambda split, clip, head=model, lag_col=lag_col: predict_scores(
                head, featurise(agg, X[split], task.time_col, 0.0, clip, lag_col), binary
            ),
            {"lags_years": lags, "lag_column": lag_col, "train_rows": len(F_train)},
            kept=seed_scores.setdefault(f"agg-hgb/{name}", {}),
        )
        entry["head"] = repr(model)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results[f"agg-hgb/{name}"] = entry
        print(task_name, "agg-hgb", name, {k: v for k, v in entry.items() if k != "head"})

    networks = [m for m in models if m.startswith("ft-")]
    for seed in seeds if networks else []:
        started = time.perf_counter()
        # With pretrain_until_test the encoder also reads the years up to the test
        # timestamp: for the test views only (val lies inside that period).
        until = cut["test"] if pretrain_until_test else None
        pretrainer = task_pretrainer(database, task, random_state=seed, pretrain_until=until).fit(
            X["train"]
        )
        pretrain_seconds = round(time.perf_counter() - started, 1)
        for model_name in networks:
            for name in variants:
                lags, lag_col = variant_table[name]
                if lag_col:
                    continue  # the network has no column for the lag
                started = time.perf_counter()
                params: dict[str, Any] = {
                    "init": "random" if model_name == "ft-random" else "tve",
                    "pretrainer": pretrainer,
                    "stale_lags": lag_spans(lags),
                }
                if not binary:
                    params["loss"] = "absolute_error"
                if model_name == "ft-tve+agg":
                    params["side_features"] = AggregateFeatures(window=windows, max_hops=1)
                    params["side_estimator"] = agg_heads[name]
                estimator = (TVEClassifier if binary else TVERegressor)(
                    database=database,
                    entity_table=task.entity_table,
                    entity_col=task.entity_col,
                    time_col=task.time_col,
                    random_state=seed,
                    **params,
                )

                estimator.fit(X["train"], y_train)
                entry = scored(
                    lambda split, clip, est=estimator: predict_scores(
                        est, featurise_rows(X[split], task.time_col, clip), binary
                    ),
                    kept=seed_scores.setdefault(f"{model_name}/{name}", {}),
                    entry={
                        "seed": seed,
                        "lags_years": lags,
                        "pretrain_seconds": pretrain_seconds,
                        "best_epoch": estimator.best_epoch_,
                    },
                )
                entry["seconds"] = round(time.perf_counter() - started, 1)
                results.setdefault(f"{model_name}/{name}", []).append(entry)
                print(task_name, model_name, name, entry, flush=True)
    # The networks' scores averaged over the seeds: what an ensemble of them would give.
    for key, kept in seed_scores.items():
        if key.startswith("agg-hgb"):
            continue  # deterministic: one run
        results[f"{key}/seed-mean"] = {
            view: metric(np.mean(kept[view], axis=0), split) for view, split, _ in views
        }
        print(task_name, key, "seed-mean", results[f"{key}/seed-mean"], flush=True)
    if scores_out is not None:
        for split in ("val", "test"):
            scores_out[f"{task_name}|y|{split}"] = tables[split].df[task.target_col].to_numpy()
        for key, kept in seed_scores.items():
            for view, runs in kept.items():
                for run, scores in zip(seeds if key.startswith("ft-") else [0], runs):
                    scores_out[f"{task_name}|{key}|{run}|{view}"] = scores
    return results


def blend_on_val_cut(
    scores: dict[str, np.ndarray], task: Any, weight: float = 0.3
) -> dict[str, Any]:
    """``weight`` x ft-tve + (1 - weight) x agg-hgb, each in the variant its val cut chose.

    ``scores`` as ``measure_task``'s ``scores_out``: agg-hgb's variant is the one with the
    best val-cut score, the network's the one with the best val-cut mean over its seeds;
    0.3 is the weight rule of the quality benchmarks (``bench_blend_rules.py``). Every view
    of every seed is blended (test views only where the scores hold them), and so is the
    average of the seeds' networks.
    """
    task_name = task.name
    tables = {s: task.get_table(s, mask_input_cols=False) for s in ("val", "test")}
    binary = task.task_type.value == "binary_classification"

    def metric(values: np.ndarray, view: str) -> float:
        return task_score(task, tables["val" if view.startswith("val") else "test"], values)

    sign = 1.0 if binary else -1.0
    runs: dict[str, dict[str, dict[int, np.ndarray]]] = {}  # key -> view -> seed -> scores
    for name, values in scores.items():
        of_task, key, *rest = name.split("|")
        if of_task == task_name and key != "y":
            runs.setdefault(key, {}).setdefault(rest[1], {})[int(rest[0])] = values

    def chosen(model: str) -> str:
        keys = [k for k in runs if k.split("/")[0] == model]
        return max(
            keys,
            key=lambda k: (
                sign * np.mean([metric(v, "val_cut") for v in runs[k]["val_cut"].values()])
            ),
        )

    agg_key, ft_key = chosen("agg-hgb"), chosen("ft-tve")
    per_seed = []
    for seed in sorted(runs[ft_key]["val_cut"]):
        entry: dict[str, Any] = {"seed": seed}
        for view, by_seed in runs[ft_key].items():
            blended = weight * by_seed[seed] + (1 - weight) * runs[agg_key][view][0]
            entry[view] = metric(blended, view)
        per_seed.append(entry)
    views = [v for v in per_seed[0] if v != "seed"]
    return {
        "agg_hgb": agg_key,
        "ft_tve": ft_key,
        "weight_on_ft_tve": weight,
        "runs": per_seed,
        "mean": {v: float(np.mean([e[v] for e in per_seed])) for v in views},
        # The seeds' networks averaged into one (3x the fine-tuning), alone and blended.
        "seed_mean_network": {
            v: metric(np.mean(list(runs[ft_key][v].values()), axis=0), v) for v in views
        },
        "seed_mean_blend": {
            v: metric(
                weight * np.mean(list(runs[ft_key][v].values()), axis=0)
                + (1 - weight) * runs[agg_key][v][0],
                v,
            )
            for v in views
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relf1", default=os.environ.get("SKTVE_RELF1", "../shared/data/rel-f1"))
    parser.add_argument("--tasks", default="driver-dnf,driver-top3,driver-position")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--models",
        default="agg-hgb",
        help="comma-separated: agg-hgb, ft-tve, ft-random, ft-tve+agg (networks skip stale+lag)",
    )
    parser.add_argument(
        "--stale-lags",
        default=None,
        help="comma-separated time spans replacing the stale variants' lags (default: 0, "
        "half a year, 1, 2 and 3 years, for rel-f1's years-long cut), e.g. '0D,30D,60D' "
        "for a database whose test rows run weeks past the cut",
    )
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the fine-tuned networks")
    parser.add_argument(
        "--test",
        action="store_true",
        help="also score test: cut (features as of the test timestamp) and all rows",
    )
    parser.add_argument(
        "--save-scores", metavar="PATH", help="also write every run's per-row scores (.npz)"
    )
    parser.add_argument(
        "--blend-from",
        metavar="PATH",
        help="fit nothing: blend ft-tve with agg-hgb (weight 0.3, variants chosen on the val "
        "cut) from scores saved by --save-scores with both models",
    )
    parser.add_argument(
        "--pretrain-until-test",
        action="store_true",
        help="pre-train the networks' encoder up to the test timestamp (pretrain_until): "
        "for test only, as val then lies inside the pre-training period",
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
    variant_table = dict(VARIANTS)
    if args.stale_lags:
        lags = [pd.Timedelta(lag) / YEAR for lag in args.stale_lags.split(",")]
        variant_table.update({"stale": (lags, False), "stale+lag": (lags, True)})
    models = args.models.split(",")
    scores: dict[str, np.ndarray] = {}
    results: dict[str, dict[str, Any]] = {}
    if args.blend_from:
        scores.update(np.load(args.blend_from))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
        for task_name in args.tasks.split(","):
            results[task_name] = measure_task(
                dataset,
                database,
                task_name,
                variants,
                models,
                seeds,
                args.test,
                scores,
                args.pretrain_until_test,
                variant_table,
            )
    if args.blend_from or {"agg-hgb", "ft-tve"} <= set(models):
        for task_name in args.tasks.split(","):
            blend = blend_on_val_cut(scores, dataset.load_task(task_name))
            results.setdefault(task_name, {})["ft-tve|agg-hgb"] = blend
            print(task_name, "ft-tve|agg-hgb", {k: v for k, v in blend.items() if k != "runs"})

    write_results(
        args,
        "bench_stale_training",
        "head chosen and variants compared on val featurised as of min(t, val_timestamp); "
        "test only with --test",
        results,
        scores,
    )


if __name__ == "__main__":
    main()
