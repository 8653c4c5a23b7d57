"""Threads on a busy machine: 1 thread against all cores, quiet and under load.

Each workload runs on rel-f1 driver-top3 (the cut database) in this process, with the
machine quiet and then with ``--load`` competing CPU-bound processes (pure Python spin
loops, as other users' jobs would be), for each thread count:

- ``pretrain``: ``TVEPretrainer`` with ``max_epochs=2`` (steps/s is the figure);
- ``transform``: embedding the train + val rows;
- ``task_vectors``: ``sktve.task_vectors`` with the numpy engine and with DuckDB;
- ``hgb``: a HistGradientBoosting fit (200 iterations) on AggregateFeatures;

and finally the target: a *default* ``TVEPretrainer`` fit (n_jobs=None, one thread) quiet
and under load, whose ratio must stay at most 3.

    python benchmarks/bench_threads.py --relf1 ../shared/data/rel-f1 --load 3

Writes ``benchmarks/results/threads.json``. Ratios are within one process and one run:
absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine  # noqa: E402


def _spin(stop) -> None:  # a competing CPU-bound process
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


@contextmanager
def competing(n: int):
    """Run ``n`` spinning processes for the duration of the block."""
    if n == 0:
        yield
        return
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let them reach full speed
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--load", type=int, default=3, help="competing CPU-bound processes")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    parser.add_argument("--skip-default-fit", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "threads.json"))
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import relbench
    from sklearn.ensemble import HistGradientBoostingClassifier

    from sktve import AggregateFeatures, load_database, task_vectors
    from sktve._threads import limit_threads
    from sktve.run import task_pretrainer

    dataset = relbench.load_dataset(args.relf1)
    task = dataset.load_task("driver-top3")
    database = load_database(dataset)
    tables = {s: task.get_table(s, mask_input_cols=False).df for s in ("train", "val")}
    cols = [task.entity_col, task.time_col]
    X_train, X_val = tables["train"][cols], tables["val"][cols]
    y_train = tables["train"][task.target_col].to_numpy()
    threads = [int(t) for t in args.threads.split(",")]

    fitted = task_pretrainer(database, task, random_state=0, max_epochs=1).fit(X_train)
    agg = AggregateFeatures(
        database=database,
        entity_table=task.entity_table,
        entity_col=task.entity_col,
        time_col=task.time_col,
        window=["30D", "365D"],
        max_hops=1,
    )
    Z_agg = agg.fit_transform(X_train)
    cutoffs = np.unique(X_train[task.time_col].to_numpy())

    def pretrain(n: int) -> dict:
        tve = task_pretrainer(database, task, random_state=0, max_epochs=2, n_jobs=n)
        seconds = timed(lambda: tve.fit(X_train))
        return {"seconds": round(seconds, 2), "steps_per_second": round(tve.steps_per_second_, 2)}

    def transform(n: int) -> dict:
        fitted.set_params(n_jobs=n)
        rows = pd.concat([X_train, X_val], ignore_index=True)
        seconds = timed(lambda: fitted.transform(rows))
        return {"seconds": round(seconds, 2), "rows_per_second": round(len(rows) / seconds)}

    def vectors(n: int) -> dict:
        out = {}
        for backend in ("auto", "sql"):  # auto: the numpy range engine
            with limit_threads(n):
                out[backend] = round(
                    timed(
                        lambda b=backend: task_vectors(
                            database, "drivers", cutoffs, "30D", max_hops=1, backend=b
                        )
                    ),
                    2,
                )
        return {"seconds": out}

    def hgb(n: int) -> dict:
        model = HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=0)
        with limit_threads(n):
            return {"seconds": round(timed(lambda: model.fit(Z_agg, y_train)), 2)}

    workloads = {"pretrain": pretrain, "transform": transform, "task_vectors": vectors, "hgb": hgb}
    results: dict = {name: {} for name in workloads}
    for load in (0, args.load):
        with competing(load):
            for name, fn in workloads.items():
                for n in threads:
                    key = f"load{load}_threads{n}"
                    results[name][key] = fn(n)
                    print(name, key, results[name][key], flush=True)

    default_fit = {}
    if not args.skip_default_fit:
        for load in (0, args.load):
            with competing(load):
                tve = task_pretrainer(database, task, random_state=0)
                seconds = timed(lambda t=tve: t.fit(X_train))
                default_fit[f"load{load}"] = {
                    "seconds": round(seconds, 1),
                    "steps": tve.n_steps_,
                    "steps_per_second": round(tve.steps_per_second_, 2),
                }
                print("default fit", load, default_fit[f"load{load}"], flush=True)
        default_fit["ratio_loaded_to_quiet"] = round(
            default_fit[f"load{args.load}"]["seconds"] / default_fit["load0"]["seconds"], 2
        )
    result = {
        "benchmark": "threads",
        "task": "rel-f1 driver-top3 (cut database)",
        "competing_processes": args.load,
        "threads": threads,
        "workloads": results,
        "default_fit": default_fit,
        "load_average_at_end": os.getloadavg(),
        "machine": machine(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
