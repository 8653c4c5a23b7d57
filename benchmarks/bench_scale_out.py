"""Scale-out benchmark: task vectors (numpy / DuckDB / Spark), a full fit, transform and
data-parallel pre-training on a large synthetic database, against 2-core targets.

Every measurement runs in its own subprocess (so its peak RSS is that run's alone; the
peak is sampled with psutil in a thread, and ``ru_maxrss`` is reported too). Results are
merged into ``benchmarks/results/scale_out.json`` after each measurement, so a run cut
short keeps what finished; a failure (memory error, crash, timeout) is recorded as such.

    python benchmarks/bench_scale_out.py --orders 20000000
    python benchmarks/bench_scale_out.py --orders 5000000 --spark
    python benchmarks/bench_scale_out.py --orders 20000000 --only tv_numpy,tv_duckdb

Measurements: ``tv_numpy``, ``tv_duckdb``, ``tv_spark`` (only with ``--spark``, at
``--spark-orders``): task vectors written to parquet chunk by chunk
(:func:`sktve.targets.write_task_vectors`); ``tv_numpy_frame`` (in ``--only``) returns
one in-memory frame instead, ``fit`` (full default TVEPretrainer fit plus transform throughput on
100_000 rows), ``ddp1`` / ``ddp2`` (n_workers 1 vs 2 at ``--ddp-orders``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIB = 2**30

TARGETS = {
    "task_vectors_numpy_20M_seconds": 120,
    "task_vectors_numpy_20M_peak_rss_gib": 8,
    "full_fit_seconds": 15 * 60,
    "full_fit_peak_rss_gib": 16,
}


def _tree_memory(process, proportional: bool) -> int:
    """Memory of ``process`` and its children: summed RSS, or summed PSS.

    RSS counts a page once per process mapping it, so a forked child (Hadoop's local
    file system forks the JVM for file operations) doubles the JVM's figure until it
    execs. PSS divides each shared page among its processes: the machine's real use.
    """
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss if proportional else proc.memory_info().rss
        except Exception:  # noqa: BLE001 - a child may exit between listing and reading
            pass
    return total


class PeakRSS:
    """Sample the process tree's memory while the block runs: summed RSS every few
    milliseconds, and summed PSS (shared pages counted once) about every second."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self.interval = interval
        self.process = psutil.Process()

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _tree_memory(self.process, proportional=False)
        self.peak_pss = _tree_memory(self.process, proportional=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_memory(self.process, proportional=False))
            if tick % 50 == 0:  # reading smaps costs milliseconds on a large JVM
                self.peak_pss = max(self.peak_pss, _tree_memory(self.process, proportional=True))
            tick += 1
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _tree_memory(self.process, proportional=False))
        self.peak_pss = max(self.peak_pss, _tree_memory(self.process, proportional=True))


def _max_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def machine() -> dict:
    """The quality benchmarks' machine record (processor model, package versions) and
    the sktve version."""
    sys.path.insert(0, str(HERE))
    from bench_pretrainer_relf1 import machine as base_machine

    import sktve

    return {**base_machine(), "sktve": sktve.__version__}


def _database(n_orders: int):
    from sktve.datasets import make_synthetic_database

    started = time.perf_counter()
    db = make_synthetic_database(n_customers=n_orders // 50, n_orders=n_orders, random_state=0)
    return db, {
        "orders": n_orders,
        "customers": n_orders // 50,
        "fact_rows": db.num_rows("orders") + db.num_rows("reviews"),
        "database_rows": db.num_rows(),
        "generate_seconds": round(time.perf_counter() - started, 2),
    }


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (Spark writes part files)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def child_task_vectors(n_orders: int, engine_name: str, output: str) -> dict:
    import tempfile

    import pandas as pd

    from sktve.datasets import write_relbench_folder
    from sktve.targets import (
        DuckDBEngine,
        SparkDatabase,
        SparkEngine,
        task_vectors,
        write_task_vectors,
    )

    db, info = _database(n_orders)
    cutoffs = pd.date_range("2020-02-01", "2023-11-30", periods=100)
    kwargs: dict = {}
    folder = tempfile.TemporaryDirectory(prefix="sktve-scale-")
    if engine_name == "duckdb":
        kwargs = {"engine": DuckDBEngine(threads=2), "backend": "sql"}
    elif engine_name == "spark":
        # Spark reads the tables where they lie (a RelBench folder's parquet files); the
        # database never passes through pandas on that path. Writing the folder is not
        # part of the measurement.
        started = time.perf_counter()
        source = write_relbench_folder(
            db,
            Path(folder.name) / "source",
            name="scale-out",
            val_timestamp="2023-01-01",
            test_timestamp="2023-07-01",
        )
        info["write_source_seconds"] = round(time.perf_counter() - started, 2)
        db = SparkDatabase(source, upto_test_timestamp=False)
        # Spark's default 1 GiB driver heap ran out at 200k orders (scale_out.json). Direct
        # (off-heap) buffers may otherwise grow as large as the heap before a GC frees them.
        engine = SparkEngine(
            master="local[2]",
            config={
                "spark.driver.memory": "8g",
                "spark.driver.extraJavaOptions": "-XX:MaxDirectMemorySize=2g",
            },
        )
        kwargs = {"engine": engine}
        # Each step of the plan on stderr as it ends: a run stopped at its time limit keeps
        # them in the entry's stderr tail.
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        spark_log = logging.getLogger("sktve.targets.spark")
        spark_log.addHandler(handler)
        spark_log.setLevel(logging.INFO)
    with PeakRSS() as rss, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        if output == "parquet":
            written = write_task_vectors(
                Path(folder.name) / "tv.parquet",
                db,
                "customers",
                cutoffs,
                "30D",
                max_hops=2,
                entities="active",
                **kwargs,
            )
            rows_out, columns_out = written["rows"], len(written["columns"])
        else:
            frame = task_vectors(
                db, "customers", cutoffs, "30D", max_hops=2, entities="active", **kwargs
            )
            rows_out, columns_out = frame.shape
        seconds = time.perf_counter() - started
    extra = {}
    if output == "parquet":
        extra = {
            "chunks": written["chunks"],
            "parquet_gib": round(_size(Path(folder.name) / "tv.parquet") / GIB, 3),
        }
        if "step_seconds" in written:
            extra["step_seconds"] = written["step_seconds"]
    folder.cleanup()
    return {
        **info,
        "engine": engine_name,
        "output": output,
        **extra,
        "cutoffs": len(cutoffs),
        "cutoff_spacing": "100 evenly spaced over 2020-02-01..2023-11-30 (~14 days apart)",
        "window": "30D",
        "max_hops": 2,
        "rows_out": int(rows_out),
        "columns_out": int(columns_out),
        "seconds": round(seconds, 2),
        "output_rows_per_second": round(rows_out / seconds, 1),
        "peak_rss_gib": round(rss.peak / GIB, 3),
        "peak_rss_above_start_gib": round((rss.peak - rss.start) / GIB, 3),
        "peak_pss_gib": round(rss.peak_pss / GIB, 3),
        "max_rss_gib": round(_max_rss_gib(), 3),
    }


def _frame(n_customers: int, n_rows: int | None, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-01-01", periods=12, freq="MS")  # within 2020-2023
    if n_rows is None:
        ids = rng.choice(n_customers, size=min(n_customers, 2000), replace=False)
        return pd.MultiIndex.from_product([ids, times], names=["customer_id", "t"]).to_frame(
            index=False
        )
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, n_customers, n_rows),
            "t": times[rng.integers(0, len(times), n_rows)],
        }
    )


def child_fit(n_orders: int, n_workers: int | None, transform_rows: int) -> dict:
    from sktve import TVEPretrainer

    db, info = _database(n_orders)
    X = _frame(info["customers"], None, 0)
    params: dict = {"random_state": 0, "n_jobs": 2}
    if n_workers is not None:  # data-parallel comparison: fixed, short schedule
        params.update(n_workers=n_workers, max_epochs=2, steps_per_epoch=20)
    tve = TVEPretrainer(database=db, entity_table="customers", window="30D", **params)
    with PeakRSS() as rss:
        started = time.perf_counter()
        tve.fit(X)
        seconds = time.perf_counter() - started
    history = list(getattr(tve, "history_", []) or [])
    train_seconds = sum(float(h.get("seconds", 0.0)) for h in history)
    out = {
        **info,
        "fit_rows": len(X),
        "params": {k: v for k, v in params.items() if k != "random_state"},
        "seconds": round(seconds, 2),
        "fit_seconds_attr": round(float(getattr(tve, "fit_seconds_", float("nan"))), 2),
        "training_seconds_from_history": round(train_seconds, 2),
        "target_and_graph_seconds": round(seconds - train_seconds, 2),
        "epochs_run": len(history),
        "steps": int(tve.n_steps_),
        "steps_per_second": round(float(tve.steps_per_second_), 2),
        "pretrain_rows": int(tve.n_pretrain_rows_),
        "peak_rss_gib": round(rss.peak / GIB, 3),
        "peak_pss_gib": round(rss.peak_pss / GIB, 3),
        "max_rss_gib": round(_max_rss_gib(), 3),
        "history": history,
    }
    if transform_rows:
        Xt = _frame(info["customers"], transform_rows, 1)
        with PeakRSS() as rss:
            started = time.perf_counter()
            emb = tve.transform(Xt)
            t = time.perf_counter() - started
        out["transform"] = {
            "rows": transform_rows,
            "seconds": round(t, 2),
            "rows_per_second": round(transform_rows / t, 1),
            "shape": list(emb.shape),
            "peak_rss_gib": round(rss.peak / GIB, 3),
        }
    return out


def run_child(args: list[str], timeout: float, rss_cap_gib: float) -> dict:
    """Run one measurement in a subprocess; kill it past ``timeout`` or ``rss_cap_gib``."""
    import psutil

    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    watched, peak, killed = psutil.Process(proc.pid), 0, None

    def watch() -> None:
        nonlocal peak, killed
        while proc.poll() is None:
            # The cap reads PSS: summed RSS would count a forked JVM twice.
            try:
                used = _tree_memory(watched, proportional=True)
            except psutil.Error:
                used = 0
            peak = max(peak, used)
            if used > rss_cap_gib * GIB:
                killed = f"killed by the benchmark at PSS {used / GIB:.1f} GiB > cap {rss_cap_gib}"
                proc.kill()
            elif time.perf_counter() - started > timeout:
                killed = f"timeout after {timeout:.0f}s"
                proc.kill()
            time.sleep(1.0)  # PSS reads every mapping: a tighter loop costs a real share of a core

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate()
    thread.join()
    wall = round(time.perf_counter() - started, 1)
    # Load averages (1, 5, 15 min) before and after: other work on a shared machine.
    load = {"load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}
    if proc.returncode == 0:
        try:
            return {**json.loads(stdout.strip().splitlines()[-1]), "wall_seconds": wall, **load}
        except (ValueError, IndexError):
            pass
    return {
        "error": killed or f"exit code {proc.returncode}",
        "stderr_errors": [
            line[:500]
            for line in stderr.splitlines()
            if ("Error" in line or "Exception" in line) and not line.strip().startswith("at ")
        ][:20],
        "stderr_tail": stderr[-3000:],
        # The steps that ended before the stop (Spark logs each one; see child_task_vectors).
        "steps_logged": [
            line for line in stderr.splitlines() if "sktve.targets.spark step" in line
        ],
        "wall_seconds": wall,
        "parent_sampled_peak_pss_gib": round(peak / GIB, 3),
        **load,
    }


def evaluate(result: dict) -> dict:
    runs = result["runs"]
    checks = {}
    tv = runs.get("tv_numpy@20000000")
    if tv and "error" not in tv:
        checks["task_vectors_numpy_20M_seconds"] = tv["seconds"] <= 120
        checks["task_vectors_numpy_20M_peak_rss_gib"] = tv["peak_rss_gib"] <= 8
    elif tv:
        checks["task_vectors_numpy_20M"] = f"not met: {tv['error']}"
    fits = {k: v for k, v in runs.items() if k.startswith("fit@")}
    for key, fit in fits.items():
        size = key.split("@")[1]
        if "error" in fit:
            checks[f"full_fit_{size}"] = f"not met: {fit['error']}"
            continue
        checks[f"full_fit_{size}_seconds"] = fit["seconds"] <= 15 * 60
        checks[f"full_fit_{size}_peak_rss_gib"] = fit["peak_rss_gib"] <= 16
    return checks


def plot(result: dict, out_path: Path) -> Path:
    """Seconds and peak RSS against fact rows, per measurement kind, with the 2-core targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "tv_numpy": "task vectors, numpy, to parquet",
        "tv_numpy_frame": "task vectors, numpy, one frame",
        "tv_duckdb": "task vectors, DuckDB, to parquet",
        "tv_spark": "task vectors, Spark local[2], to parquet",
        "fit": "full default TVEPretrainer fit",
    }
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, label in labels.items():
        points = sorted(
            # PSS where recorded: RSS summed over a process tree counts a forked JVM twice.
            (run["fact_rows"], run["seconds"], run.get("peak_pss_gib", run["peak_rss_gib"]))
            for key, run in result.get("runs", {}).items()
            if key.split("@")[0] == kind and "error" not in run and "fact_rows" in run
        )
        if not points:
            continue
        rows, seconds, rss = zip(*points)
        ax_t.plot(rows, seconds, "o-", label=label)
        ax_m.plot(rows, rss, "o-", label=label)
    fact_20m = 24_969_491  # fact rows of the 20M-order database
    ax_t.plot(
        [fact_20m],
        [TARGETS["task_vectors_numpy_20M_seconds"]],
        "k*",
        ms=12,
        label="target: task vectors, numpy",
    )
    ax_m.plot([fact_20m], [TARGETS["task_vectors_numpy_20M_peak_rss_gib"]], "k*", ms=12)
    memory_title = "peak memory (PSS where recorded, else RSS)"
    for ax, title, unit in ((ax_t, "time", "seconds"), (ax_m, memory_title, "GiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("fact rows (orders + reviews)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    fig.suptitle(f"bench_scale_out.py, {result['machine']['cpu_count']} cores", fontsize=10)
    fig.tight_layout()
    png = out_path.with_suffix(".png")
    fig.savefig(png, dpi=110)
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000_000)
    parser.add_argument("--spark", action="store_true")
    parser.add_argument("--spark-orders", type=int, default=2_000_000)
    parser.add_argument("--ddp-orders", type=int, default=1_000_000)
    parser.add_argument("--transform-rows", type=int, default=100_000)
    parser.add_argument("--only", default=None, help="comma list of measurements")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument(
        "--rss-cap-gib",
        type=float,
        default=20.0,
        help="kill a child above this PSS (shared pages counted once)",
    )
    parser.add_argument("--out", default=str(HERE / "results" / "scale_out.json"))
    parser.add_argument("--plot", action="store_true", help="only redraw the plot from --out")
    parser.add_argument("--child", nargs="*", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot:
        print(plot(json.loads(Path(args.out).read_text()), Path(args.out)))
        return
    if args.child is not None:
        kind, size = args.child[0], int(args.child[1])
        if kind.startswith("tv_"):
            engine, _, output = kind[3:].partition("_")
            out = child_task_vectors(size, engine, output or "parquet")
        elif kind == "fit":
            out = child_fit(size, None, args.transform_rows)
        else:
            out = child_fit(size, int(kind[3:]), 0)
        print(json.dumps(out, default=str))
        return

    plan = [("tv_numpy", args.orders), ("tv_duckdb", args.orders)]
    if args.spark:
        plan.append(("tv_spark", args.spark_orders))
    plan += [("fit", args.orders), ("ddp1", args.ddp_orders), ("ddp2", args.ddp_orders)]
    if args.only:
        wanted = args.only.split(",")
        plan = [p for p in plan if p[0] in wanted]
        plan += [("tv_numpy_frame", args.orders)] if "tv_numpy_frame" in wanted else []

    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    result.update(
        {
            "benchmark": "scale_out",
            "setup": "synthetic (customers = orders / 50, reviews ~25% more rows); task "
            "vectors on customers, 100 cutoffs 2020-02..2023-11, window 30D, 2 hops, "
            "entities='active', written to parquet in chunks of 1M rows (write_task_vectors; "
            "'_frame' runs: one in-memory frame): numpy (backend auto), DuckDB (backend sql, "
            "2 threads), Spark (SparkDatabase over the database written as a RelBench "
            "folder, local[2], 8g driver); full default "
            "TVEPretrainer fit on 2000 customers x 12 monthly times (n_jobs=2) then "
            "transform of 100_000 rows; "
            "n_workers 1 vs 2 with max_epochs=2, steps_per_epoch=20. One subprocess per "
            "measurement.",
            "machine": machine(),
            "targets": TARGETS,
        }
    )
    result.setdefault("runs", {})
    result.setdefault("commands", []).append("python " + " ".join(sys.argv))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for kind, size in plan:
        run = run_child(
            [kind, str(size), "--transform-rows", str(args.transform_rows)],
            args.timeout,
            args.rss_cap_gib,
        )
        run["measurement"], run["orders"] = kind, size
        print(json.dumps({k: v for k, v in run.items() if k != "history"}), flush=True)
        result["runs"][f"{kind}@{size}"] = run
        if "ddp1@" + str(args.ddp_orders) in result["runs"] and kind == "ddp2":
            one = result["runs"]["ddp1@" + str(args.ddp_orders)]
            if "error" not in one and "error" not in run:
                result["ddp_speedup"] = round(one["seconds"] / run["seconds"], 2)
        result["targets_met"] = evaluate(result)
        out_path.write_text(json.dumps(result, indent=2, default=str))
    plot(result, out_path)
    print(json.dumps(result.get("targets_met"), indent=2))


if __name__ == "__main__":
    main()
