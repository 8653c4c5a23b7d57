"""Benchmark of sktve.targets.task_vectors (time, peak memory, ratio to the pandas oracle).

Examples
--------
python benchmarks/bench_task_vectors.py --quick
python benchmarks/bench_task_vectors.py --relf1 ../shared/data/rel-f1 \
    --sizes 1000000,3000000,10000000 --hops 1,2

Writes JSON to benchmarks/results/task_vectors.json (or --out). Peak memory is the
process RSS sampled in a thread (tracemalloc cannot see DuckDB's allocations); it is
reported both absolute and above the RSS before the call.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pandas_reference import reference_aggregates  # noqa: E402

import sktve  # noqa: E402
from sktve.targets import enumerate_paths, task_vectors  # noqa: E402


class PeakRSS:
    """Sample the process RSS every few milliseconds while the block runs."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.process = psutil.Process()

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def timed(fn):
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return result, {
        "seconds": round(seconds, 3),
        "peak_rss_gib": round(rss.peak / 2**30, 3),
        "peak_rss_above_start_gib": round((rss.peak - rss.start) / 2**30, 3),
    }


def machine() -> dict:
    """The quality benchmarks' machine record (processor model, package versions), the
    sktve version and the DuckDB threads this benchmark sets."""
    from bench_pretrainer_relf1 import machine as base_machine

    return {**base_machine(), "duckdb_threads": 2, "sktve": sktve.__version__}


def reference_ratio(db, entity_table, frame, window, max_hops) -> dict:
    """Time the pandas oracle on exactly the pairs of ``frame`` and compare."""
    key = db.pkey(entity_table)
    pairs = frame[[key, "cutoff"]]
    paths = enumerate_paths(db, entity_table, max_hops=max_hops)
    windows = sktve._validation.parse_windows(window)

    def ours():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return task_vectors(
                db,
                entity_table,
                None,
                window,
                entities=pairs,
                max_hops=max_hops,
                max_columns=None,
            )

    mine, t_ours = timed(ours)
    ref, t_ref = timed(
        lambda: reference_aggregates(
            db, entity_table, pairs[key].to_numpy(), pairs["cutoff"].to_numpy(), windows, paths
        )
    )
    worst = 0.0
    for col in mine.columns[2:]:
        if col.endswith("|mode"):
            continue
        a = mine[col].to_numpy(dtype=float)
        b = ref[col].to_numpy(dtype=float)
        both = ~(np.isnan(a) | np.isnan(b))
        if both.any():
            worst = max(worst, float(np.max(np.abs(a[both] - b[both]) / (1 + np.abs(b[both])))))
    return {
        "pairs": len(pairs),
        "columns": mine.shape[1],
        "sktve": t_ours,
        "pandas_reference": t_ref,
        "speedup_vs_pandas": round(t_ref["seconds"] / max(t_ours["seconds"], 1e-9), 1),
        "max_relative_difference": worst,
    }


def bench_relf1(path: str, quick: bool) -> dict:
    db = sktve.load_database(path)
    cutoffs = pd.date_range("1950-05-13", "2005-01-01", freq="30D")

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return task_vectors(db, "drivers", cutoffs, "30D", max_hops=2)

    run()  # warm-up: imports, DuckDB start
    frame, stats = timed(run)
    result = {
        "setup": "rel-f1, entity drivers, every 30 days from 1950-05-13 to 2005-01-01, "
        "window 30D, 2 hops, entities='active', default max_columns",
        "cutoffs": len(cutoffs),
        "rows_out": len(frame),
        "columns_out": frame.shape[1],
        "active_share": round(float((frame["no_activity"] == 0).mean()), 4),
        **stats,
        "target_seconds": 5,
    }
    # The oracle is slow: compare on the pairs of the last cutoffs only.
    tail = frame[frame["cutoff"] >= cutoffs[-12 if quick else -24]]
    result["reference"] = reference_ratio(db, "drivers", tail, "30D", 2)
    return result


def bench_synthetic(sizes, hops, n_customers, n_cutoffs, reference_max_rows) -> list[dict]:
    from sktve.datasets import make_synthetic_database

    out = []
    for size in sizes:
        db, gen = timed(
            lambda size=size: make_synthetic_database(
                n_customers=n_customers, n_orders=size, random_state=0
            )
        )
        cutoffs = pd.date_range("2020-02-01", "2023-11-30", periods=n_cutoffs)
        for max_hops in hops:

            def run(max_hops=max_hops, db=db, cutoffs=cutoffs):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return task_vectors(db, "customers", cutoffs, "30D", max_hops=max_hops)

            frame, stats = timed(run)
            row = {
                "orders": size,
                "fact_rows": db.num_rows("orders") + db.num_rows("reviews"),
                "customers": n_customers,
                "cutoffs": n_cutoffs,
                "window": "30D",
                "max_hops": max_hops,
                "generate_seconds": gen["seconds"],
                "rows_out": len(frame),
                "columns_out": frame.shape[1],
                **stats,
                "seconds_per_million_orders": round(stats["seconds"] / (size / 1e6), 2),
            }
            if size <= reference_max_rows:
                # The oracle materialises every 2-hop tuple (memory grows fast): fewer
                # cutoffs there.
                step = max(1, n_cutoffs // (10 if max_hops == 1 else 2))
                sample = frame[frame["cutoff"].isin(cutoffs[::step])]
                row["reference"] = reference_ratio(db, "customers", sample, "30D", max_hops)
            out.append(row)
            print(json.dumps(row), flush=True)
            del frame
        db = None  # free the database before generating the next size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--sizes", default="1000000,3000000,10000000")
    parser.add_argument("--hops", default="1,2", help="max_hops values for the synthetic runs")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--cutoffs", type=int, default=100)
    parser.add_argument("--reference-max-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", default=str(HERE / "results" / "task_vectors.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.quick:
        sizes, args.customers = [100_000, 300_000], 2_000
    hops = [int(h) for h in args.hops.split(",") if h]
    report = {
        "machine": machine(),
        "command": "python benchmarks/bench_task_vectors.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if Path(args.relf1).exists():
        report["relf1"] = bench_relf1(args.relf1, args.quick)
        print(json.dumps(report["relf1"]), flush=True)
    else:
        report["relf1"] = f"skipped: no data at {args.relf1}"
    report["synthetic"] = bench_synthetic(
        sizes, hops, args.customers, args.cutoffs, args.reference_max_rows
    )
    report["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
