"""TVEPretrainer on a RelBench task: pre-trained vs untrained encoder, fit/transform cost.

For each configuration, fits ``TVEPretrainer`` on the task's train table, fits a
HistGradientBoosting head on the embeddings (a small grid chosen on val) and reports val
metric, fit wall time, transform time for val + test, steps/s and peak memory (RSS). The
configuration with the best val metric is then evaluated once on test.

    python benchmarks/bench_pretrainer_relf1.py --relf1 ../shared/data/rel-f1 --task driver-top3

Writes ``benchmarks/results/pretrainer_<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class PeakRSS:
    """Sample the process's resident memory in a thread; ``peak`` in GiB."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss / 2**30)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# Fine-tuned networks do not reproduce bit for bit across installations or processors
# (docs: benchmarks page, "Stored runs and a fresh environment"): every result says which.
RECORDED_PACKAGES = (
    "numpy",
    "pandas",
    "duckdb",
    "scikit-learn",
    "torch",
    "torch-geometric",
    "relbench",
    "lightgbm",
)


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else platform's answer."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def installed_versions(names: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Each package's installed version (None where it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "packages": installed_versions(),
    }


def write_result(out_dir, name: str, result: dict, table: str) -> None:
    """Write ``<name>.json`` (the result) and ``<name>.md`` (its table); print the table."""
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / f"{name}.md").write_text(table)
    print(table)


def timed_features(fit_transform, transform, X: dict) -> tuple[dict, dict[str, float]]:
    """Run fit_transform(X train) and transform(X val / test) under a peak-RSS probe."""
    with PeakRSS() as rss:
        started = time.perf_counter()
        train = fit_transform(X["train"])
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        val, test = transform(X["val"]), transform(X["test"])
        transform_seconds = time.perf_counter() - started
    return {"train": train, "val": val, "test": test}, {
        "fit_seconds": round(fit_seconds, 2),
        "transform_seconds": round(transform_seconds, 2),
        "peak_rss_gib": round(rss.peak, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default="../shared/data/rel-f1")
    parser.add_argument("--task", default="driver-top3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--configs",
        default="untrained,default,narrow-untrained,narrow",
        help="comma-separated names from CONFIGS below",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import relbench
    import torch

    from sktve import load_database
    from sktve.heads import head_grid
    from sktve.run import predict_scores, select_on_val, task_metric, task_pretrainer

    torch.set_num_threads(2)
    configs = {
        "untrained": {"max_epochs": 0},
        "default": {},
        "narrow": {"embedding_dim": 64},
        "narrow-untrained": {"embedding_dim": 64, "max_epochs": 0},
        "long": {"max_epochs": 30, "patience": 6},
        "multiwindow": {"window": ["30D", "365D"]},
    }
    dataset = relbench.load_dataset(args.relf1)
    task = dataset.load_task(args.task)
    binary = task.task_type.value == "binary_classification"
    database = load_database(dataset)
    tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")}
    cols = [task.entity_col, task.time_col]
    X = {s: t.df[cols] for s, t in tables.items()}
    y_train = tables["train"].df[task.target_col].to_numpy()

    runs = []
    for name in args.configs.split(","):
        params = {"window": task.timedelta, "random_state": args.seed, **configs[name]}
        tve = task_pretrainer(database, task, **params)
        Z, cost = timed_features(tve.fit_transform, tve.transform, X)
        Z_test = Z["test"]
        fit_seconds, transform_seconds = cost["fit_seconds"], cost["transform_seconds"]
        model, val_value, metric, _ = select_on_val(
            head_grid("hgb", binary=binary, random_state=args.seed),
            Z["train"],
            y_train,
            Z["val"],
            task,
            tables["val"],
            binary,
        )
        run = {
            "config": name,
            "params": {k: str(v) for k, v in params.items()},
            "metric": metric,
            "val": val_value,
            "fit_seconds": round(fit_seconds, 1),
            "transform_val_test_seconds": round(transform_seconds, 2),
            "steps": tve.n_steps_,
            "steps_per_second": round(tve.steps_per_second_, 2),
            "epochs": len(tve.history_),
            "pretrain_rows": tve.n_pretrain_rows_,
            "peak_rss_gib": cost["peak_rss_gib"],
            "history": tve.history_,
            "_model": model,
            "_Z_test": Z_test,
        }
        print(
            f"{name:12s} val {metric} {val_value:.4f}  fit {fit_seconds:.1f}s  "
            f"transform val+test {transform_seconds:.2f}s  {tve.n_steps_} steps "
            f"({tve.steps_per_second_:.2f}/s)  peak {cost['peak_rss_gib']:.2f} GiB",
            flush=True,
        )
        runs.append(run)

    # AUROC (binary) is better higher, MAE (regression) lower.
    chosen = max(runs, key=lambda r: r["val"] if binary else -r["val"])
    pred = predict_scores(chosen["_model"], chosen["_Z_test"], binary)
    metric, test_value, _ = task_metric(task, pred, tables["test"])
    print(f"selected on val: {chosen['config']}  test {metric} {test_value:.4f}", flush=True)
    for run in runs:
        for key in [k for k in run if k.startswith("_")]:
            del run[key]
    result = {
        "benchmark": "pretrainer_relbench",
        "dataset": str(args.relf1),
        "task": args.task,
        "seed": args.seed,
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "runs": runs,
        "selected": chosen["config"],
        "test": {"metric": metric, "value": test_value},
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"pretrainer_{args.task}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
