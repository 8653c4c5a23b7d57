"""Pre-training cost against database size, on the synthetic generator.

Each size runs in its own subprocess (so peak memory is that run's alone): generate the
database, then fit ``TVEPretrainer`` with a fixed number of optimizer steps on customers
at 12 monthly cutoffs. Reports wall time (task vectors + graph + training) and peak RSS,
writes ``benchmarks/results/scaling.json`` and plots ``benchmarks/results/scaling.png``.

    python benchmarks/bench_scaling.py --orders 100000,300000,1000000,3000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_size(n_orders: int, steps: int) -> dict:
    """Fit once at one size (runs inside the child process)."""
    import numpy as np
    import pandas as pd
    import psutil

    from sktve import TVEPretrainer
    from sktve.datasets import make_synthetic_database

    n_customers = max(300, n_orders // 50)
    started = time.perf_counter()
    db = make_synthetic_database(n_customers=n_customers, n_orders=n_orders, random_state=0)
    generate_seconds = time.perf_counter() - started
    times = pd.date_range("2022-01-01", periods=12, freq="30D")
    rng = np.random.default_rng(0)
    ids = rng.choice(n_customers, size=min(n_customers, 2000), replace=False)
    X = pd.MultiIndex.from_product([ids, times], names=["customer_id", "t"]).to_frame(index=False)
    tve = TVEPretrainer(
        database=db,
        entity_table="customers",
        window="30D",
        max_epochs=1,
        steps_per_epoch=steps,
        random_state=0,
    )
    started = time.perf_counter()
    tve.fit(X)
    fit_seconds = time.perf_counter() - started
    return {
        "orders": n_orders,
        "customers": n_customers,
        "database_rows": db.num_rows(),
        "generate_seconds": round(generate_seconds, 2),
        "fit_seconds": round(fit_seconds, 2),
        "steps": tve.n_steps_,
        "steps_per_second": round(tve.steps_per_second_, 2),
        "pretrain_rows": tve.n_pretrain_rows_,
        "peak_rss_gib": round(psutil.Process().memory_info().rss / 2**30, 2),
        "max_rss_gib": round(_max_rss_gib(), 2),
    }


def _max_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="100000,300000,1000000,3000000")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "scaling.json"))
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_size(args.child, args.steps)))
        return

    import platform

    import psutil

    runs = []
    for n in [int(v) for v in args.orders.split(",")]:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        run = json.loads(out.stdout.strip().splitlines()[-1])
        print(run, flush=True)
        runs.append(run)
    result = {
        "benchmark": "pretraining_scaling",
        "setup": f"synthetic, customers = orders / 50, 12 cutoffs, window 30D, {args.steps} "
        "steps, defaults otherwise; one subprocess per size",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "runs": runs,
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r["database_rows"] for r in runs]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_t.plot(rows, [r["fit_seconds"] for r in runs], "o-")
    ax_t.set(
        xscale="log",
        yscale="log",
        xlabel="database rows",
        ylabel="fit seconds",
        title="TVEPretrainer.fit time",
    )
    ax_m.plot(rows, [r["max_rss_gib"] for r in runs], "o-", color="C1")
    ax_m.set(xscale="log", xlabel="database rows", ylabel="peak RSS (GiB)", title="peak memory")
    from matplotlib.ticker import NullFormatter

    for ax in (ax_t, ax_m):
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    fig.savefig(out_path.with_suffix(".png"), dpi=110)
    print(f"wrote {out_path} and {out_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
