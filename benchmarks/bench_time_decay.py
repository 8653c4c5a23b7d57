"""Time-decay sample weights for AggregateFeatures + HGB on rel-f1, val only.

rel-f1's training rows reach back to 1950 (driver-dnf, driver-position) and 1994
(driver-top3), its val and test rows start in 2005 and 2010: a head that weighs every era
alike learns old Formula 1 as much as recent. This weighs each training row by
``0.5 ** (age / half_life)``, its age counted back from the latest training time, for a
few half-lives, fits the HGB grid of the quality benchmarks with those weights and keeps
each half-life's best head on val. Reported: val per half-life, and the best head's val
minus the unweighted best head's, paired over val drivers (``sktve.bootstrap``). Test is
not read: this looks for a lever, and none of the runs chose one::

    python benchmarks/bench_time_decay.py --relf1 ../shared/data/rel-f1 \\
        --tasks driver-dnf --name time_decay_dnf

Writes ``benchmarks/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine, write_result  # noqa: E402

HALF_LIVES = (None, 20.0, 10.0, 5.0, 2.0)  # years; None: every row weighs 1


def decay_weights(times: np.ndarray, half_life_years: float | None) -> np.ndarray:
    """``0.5 ** (age / half_life)``, the age in years before the latest of ``times``."""
    if half_life_years is None:
        return np.ones(len(times))
    age_years = (times.max() - times) / np.timedelta64(1, "D") / 365.25
    return 0.5 ** (age_years / half_life_years)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "Val (AUROC x 100, MAE) of the best head of the HGB grid per half-life (years; "
        "`none`: unweighted); `best minus none`: paired over val drivers, positive = the "
        "weighted head better (also for MAE). Test not read.",
        "",
        "| task | half-life | val | best minus none |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        mae = row["metric"] == "mae"
        fmt = "{:.3f}" if mae else "{:.2f}"
        diff = ""
        if row["half_life_years"] is not None:
            sign = -1.0 if mae else 1.0
            diff = f"{sign * row['minus_none']:+.3f} ± {row['minus_none_se']:.3f}"
        half = "none" if row["half_life_years"] is None else f"{row['half_life_years']:g}"
        lines.append(f"| {row['task']} | {half} | {fmt.format(row['val'])} | {diff} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--tasks", default="driver-top3,driver-dnf,driver-position")
    parser.add_argument("--name", default="time_decay")
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()

    import relbench
    from threadpoolctl import threadpool_limits

    from sktve import AggregateFeatures, load_database
    from sktve.bootstrap import paired_difference
    from sktve.heads import head_grid
    from sktve.run import predict_scores, task_metric

    out_dir = Path(args.out_dir or HERE / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dataset = relbench.load_dataset(args.relf1)
    database = load_database(dataset)  # the cut database: train and val rows lie before it
    rows: list[dict[str, Any]] = []
    for task_name in args.tasks.split(","):
        task = dataset.load_task(task_name)
        binary = task.task_type.value == "binary_classification"
        metric = "roc_auc" if binary else "mae"
        tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val")}
        cols = [task.entity_col, task.time_col]
        X = {s: t.df[cols].reset_index(drop=True) for s, t in tables.items()}
        y = {s: t.df[task.target_col].to_numpy() for s, t in tables.items()}
        agg = AggregateFeatures(
            database=database,
            entity_table=task.entity_table,
            entity_col=task.entity_col,
            time_col=task.time_col,
            window=["30D", "365D", "3650D"],
            max_hops=1,
        )
        features = {"train": agg.fit_transform(X["train"]), "val": agg.transform(X["val"])}
        times = X["train"][task.time_col].to_numpy(dtype="datetime64[ns]")
        ids = X["val"][task.entity_col].to_numpy()
        best_scores: dict[Any, np.ndarray] = {}
        for half_life in HALF_LIVES:
            weights = decay_weights(times, half_life)
            values, scores = [], []
            with threadpool_limits(limits=1, user_api="openmp"):
                for head in head_grid("hgb", binary=binary, random_state=0):
                    head.fit(features["train"], y["train"], sample_weight=weights)
                    score = predict_scores(head, features["val"], binary)
                    values.append(task_metric(task, score, tables["val"])[1])
                    scores.append(score)
            best = int(np.argmax(values) if binary else np.argmin(values))
            best_scores[half_life] = scores[best]
            row = {
                "task": task_name,
                "metric": metric,
                "half_life_years": half_life,
                "val": values[best] * (100.0 if binary else 1.0),
                "val_grid": [round(v, 5) for v in values],
            }
            if half_life is not None:
                d = paired_difference(
                    y["val"], scores[best], best_scores[None], metric, groups=ids, random_state=0
                )
                scale = 100.0 if binary else 1.0
                row.update(minus_none=d["difference"] * scale, minus_none_se=d["se"] * scale)
            rows.append(row)
            print(
                f"[{time.perf_counter() - started:6.1f}s] {task_name} {half_life}: "
                f"val {row['val']:.4f}",
                flush=True,
            )
    result = {
        "benchmark": "bench_time_decay",
        "dataset": args.relf1,
        "half_lives_years": list(HALF_LIVES),
        "machine": machine(),
        "rows": rows,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_result(out_dir, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
