"""What the last refit on train + val rows is worth on rel-f1 (a protocol diagnostic).

rel-f1's training rows end in 2004, its val rows run from 2005 to 2008-2009 and its test
rows from 2010: a final model that also learns from the val period's labels (which the
database cut at the test timestamp holds too: their windows end before 2010-01-01) may
forecast 2010-2013 better. That is scikit-learn's usual last step (``GridSearchCV``
refits the chosen settings on every labelled row); RelBench's published baselines learn
from the training rows only, so a comparison with them after such a refit is not like
for like.

Two arms per task, in one process:

- **train only**: AggregateFeatures + the HGB grid chosen on val (``agg-hgb``), the TVE
  network fine-tuned with defaults (``ft-tve``; regression with the absolute error), and
  their blend with a fixed weight on the network (``blend``, 0.3: the quality
  benchmarks' ``--blend-weights 0.3``), as ``bench_quality_relf1.py`` fits them;
- **train + val**: the same settings (the HGB that val chose, default fine-tuning,
  the same weight) fitted on the training and val rows together.

Val cannot score the second arm (it learns from val), so nothing is chosen from it. Test
is predicted on every row and on the database cut at the test timestamp with ``as_of``
there (RelBench's protocol); every fit reads nothing past 2010-01-01, so the cut and
every-row predictions come from the same fits. Differences are paired over test
drivers (``sktve.bootstrap``), per seed, then averaged::

    python benchmarks/bench_refit_train_val.py --relf1 ../shared/data/rel-f1 \\
        --tasks driver-dnf --name refit_train_val_dnf

Writes ``benchmarks/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine, write_result  # noqa: E402
from bench_quality_relf1 import cut_view, heads, select_and_test, with_cut_test  # noqa: E402

ARMS = ("train", "train+val")
METHODS = ("agg-hgb", "ft-tve", "blend")
PROTOCOLS = ("test", "test_cut")
RDL_GNN = {"driver-top3": 75.54, "driver-dnf": 72.62, "driver-position": 4.022}


def predict_both(estimator: Any, transform: Any, X_test: pd.DataFrame, cut: tuple) -> dict:
    """Test scores on every row, then on the cut database (``transform`` -> scores)."""
    scores = {"test": transform(X_test)}
    with cut_view(estimator, *cut):
        scores["test_cut"] = transform(X_test)
    return scores


def compare(
    y: np.ndarray, ids: np.ndarray, first: np.ndarray, second: np.ndarray, binary: bool, seed: int
) -> dict[str, float]:
    """``first`` minus ``second`` on the test rows, paired over drivers (AUROC in points)."""
    from sktve.bootstrap import paired_difference

    metric = "roc_auc" if binary else "mae"
    scale = 100.0 if binary else 1.0
    d = paired_difference(y, first, second, metric, groups=ids, n_resamples=500, random_state=seed)
    return {"difference": d["difference"] * scale, "se": d["se"] * scale}


def summarise(runs: list[dict[str, Any]], tasks: list[str]) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        for protocol in PROTOCOLS:
            for method in METHODS:
                mine = [r for r in runs if r["task"] == task and r["method"] == method]
                if not mine:
                    continue

                def mean(arm: str, key: str, runs_: list = mine, p: str = protocol) -> float:
                    return float(np.mean([r[arm][p][key] for r in runs_]))

                rows.append(
                    {
                        "task": task,
                        "protocol": protocol,
                        "method": method,
                        "seeds": len(mine),
                        "train": mean("train", "value"),
                        "train+val": mean("train+val", "value"),
                        "refit_minus_train": mean("train+val", "minus_train"),
                        "refit_minus_train_se": mean("train+val", "minus_train_se"),
                        "refit_minus_refit_agg": mean("train+val", "minus_agg"),
                        "refit_minus_refit_agg_se": mean("train+val", "minus_agg_se"),
                        "train_minus_train_agg": mean("train", "minus_agg"),
                        "train_minus_train_agg_se": mean("train", "minus_agg_se"),
                    }
                )
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "Test, mean over seeds " + str(result["seeds"]) + " (AUROC x 100, MAE); paired "
        "differences over test drivers with the mean of the seeds' standard errors "
        "(positive = first better, also for MAE). `train`: fitted on the training rows; "
        "`train+val`: the same settings fitted on training and val rows. `test`: every "
        "row; `test_cut`: the database cut at the test timestamp (RelBench's protocol; "
        f"the RDL GNN's published cut scores: {RDL_GNN}).",
        "",
        "| task | protocol | method | train | train+val | refit minus train | "
        "method minus agg-hgb, train | method minus agg-hgb, train+val |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["summary"]:
        mae = r["task"] == "driver-position"
        fmt = "{:.3f}" if mae else "{:.2f}"
        sign = -1.0 if mae else 1.0  # positive = better

        def gain(key: str, row: dict = r, s: float = sign) -> str:
            return f"{s * row[key]:+.3f} ± {row[key + '_se']:.3f}"

        same = r["method"] == "agg-hgb"
        lines.append(
            f"| {r['task']} | {r['protocol']} | {r['method']} | {fmt.format(r['train'])} | "
            f"{fmt.format(r['train+val'])} | {gain('refit_minus_train')} | "
            f"{'' if same else gain('train_minus_train_agg')} | "
            f"{'' if same else gain('refit_minus_refit_agg')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--tasks", default="driver-top3,driver-dnf,driver-position")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--blend-weight", type=float, default=0.3)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--name", default="refit_train_val")
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()

    import relbench
    import torch
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from sktve import AggregateFeatures, TVEClassifier, TVERegressor, load_database
    from sktve.run import predict_scores, task_metric, task_pretrainer

    torch.set_num_threads(args.torch_threads)
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    out_dir = Path(args.out_dir or HERE / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    started_all = time.perf_counter()
    dataset = relbench.load_dataset(args.relf1)
    database = load_database(dataset, upto_test_timestamp=False)  # every row
    cut = (load_database(dataset, upto_test_timestamp=True), pd.Timestamp(dataset.test_timestamp))
    runs: list[dict[str, Any]] = []

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started_all:7.1f}s] {message}", flush=True)

    for task_name in tasks:
        task = dataset.load_task(task_name)
        binary = task.task_type.value == "binary_classification"
        tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")}
        cols = [task.entity_col, task.time_col]
        X = {s: t.df[cols].reset_index(drop=True) for s, t in tables.items()}
        y = {s: t.df[task.target_col].to_numpy() for s, t in tables.items()}
        fit_rows = {
            "train": (X["train"], y["train"]),
            "train+val": (
                pd.concat([X["train"], X["val"]], ignore_index=True),
                np.concatenate([y["train"], y["val"]]),
            ),
        }
        ids = X["test"][task.entity_col].to_numpy()
        log(f"{task_name}: {len(X['train'])} train / {len(X['val'])} val / {len(X['test'])} test")

        # The aggregates: the HGB val chooses on the train-only features, refitted as chosen.
        agg_scores: dict[str, dict] = {}
        chosen = None
        for arm in ARMS:
            X_fit, y_fit = fit_rows[arm]
            agg = AggregateFeatures(
                database=database,
                entity_table=task.entity_table,
                entity_col=task.entity_col,
                time_col=task.time_col,
                window=["30D", "365D", "3650D"],
                max_hops=1,
            )
            feats = {"train": agg.fit(X_fit).transform(X_fit)}
            if arm == "train":
                feats.update(val=agg.transform(X["val"]), test=agg.transform(X["test"]))
                feats = with_cut_test(feats, agg.transform, agg, X["test"], cut)
                grid = heads("hgb", binary, 0)
                outcome = select_and_test(grid, feats, y_fit, task, tables, binary)
                chosen = clone(outcome["model"])
                agg_scores[arm] = {p: outcome["scores"][p] for p in PROTOCOLS}
            else:
                with threadpool_limits(limits=1, user_api="openmp"):
                    head = clone(chosen).fit(feats["train"], y_fit)
                    agg_scores[arm] = predict_both(
                        agg,
                        lambda rows, h=head, a=agg, b=binary: predict_scores(
                            h, a.transform(rows), b
                        ),
                        X["test"],
                        cut,
                    )
            log(f"{task_name}: agg-hgb fitted on {arm}")

        for seed in seeds:
            scores: dict[str, dict[str, dict]] = {"agg-hgb": agg_scores, "ft-tve": {}, "blend": {}}
            epochs: dict[str, Any] = {}
            for arm in ARMS:
                X_fit, y_fit = fit_rows[arm]
                params: dict[str, Any] = {
                    "entity_table": task.entity_table,
                    "entity_col": task.entity_col,
                    "time_col": task.time_col,
                    "pretrainer": task_pretrainer(database, task, random_state=seed),
                    "random_state": seed,
                }
                if not binary:
                    params["loss"] = "absolute_error"
                estimator = (TVEClassifier if binary else TVERegressor)(database=database, **params)
                t0 = time.perf_counter()
                estimator.fit(X_fit, y_fit)
                fit_seconds = time.perf_counter() - t0
                scores["ft-tve"][arm] = predict_both(
                    estimator,
                    lambda rows, e=estimator, b=binary: predict_scores(e, rows, b),
                    X["test"],
                    cut,
                )
                w = args.blend_weight
                scores["blend"][arm] = {
                    p: w * scores["ft-tve"][arm][p] + (1 - w) * agg_scores[arm][p]
                    for p in PROTOCOLS
                }
                epochs[arm] = {
                    "best_epoch": estimator.best_epoch_,
                    "epochs": len(estimator.history_),
                    "fit_seconds": round(fit_seconds, 1),
                }
                log(f"{task_name} seed {seed}: ft-tve fitted on {arm} ({fit_seconds:.0f} s)")
            for method in METHODS:
                run: dict[str, Any] = {"task": task_name, "seed": seed, "method": method}
                for arm in ARMS:
                    run[arm] = {}
                    for p in PROTOCOLS:
                        mine = scores[method][arm][p]
                        agg_same = agg_scores[arm][p]
                        metric_value = task_metric(task, mine, tables["test"])[1]
                        entry = {"value": metric_value * (100.0 if binary else 1.0)}
                        d = compare(y["test"], ids, mine, scores[method]["train"][p], binary, seed)
                        entry.update(minus_train=d["difference"], minus_train_se=d["se"])
                        d = compare(y["test"], ids, mine, agg_same, binary, seed)
                        entry.update(minus_agg=d["difference"], minus_agg_se=d["se"])
                        run[arm][p] = entry
                if method == "ft-tve":
                    run["finetuning"] = epochs
                runs.append(run)

    result = {
        "benchmark": "bench_refit_train_val",
        "dataset": args.relf1,
        "tasks": tasks,
        "seeds": seeds,
        "blend_weight": args.blend_weight,
        "machine": machine(),
        "torch_threads": args.torch_threads,
        "runs": runs,
        "summary": summarise(runs, tasks),
        "total_seconds": round(time.perf_counter() - started_all, 1),
    }
    write_result(out_dir, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
