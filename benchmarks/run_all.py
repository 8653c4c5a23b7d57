"""Run the performance suite: task vectors, sampler + encoder, and pre-training end to end.

    python benchmarks/run_all.py --quick     # small sizes, CI-friendly (a couple of minutes)
    python benchmarks/run_all.py             # full sizes (tens of minutes on 2 cores)

Quick results go to ``benchmarks/results/quick/``, full ones to ``benchmarks/results/``
(the files the documentation quotes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs")
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    args = parser.parse_args()
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    quick = ["--quick"] if args.quick else []
    jobs = [
        [
            "bench_task_vectors.py",
            "--relf1",
            args.relf1,
            *quick,
            "--out",
            str(out / "task_vectors.json"),
        ],
        [
            "bench_sampler_encoder.py",
            "--relf1",
            args.relf1,
            *quick,
            "--out",
            str(out / "sampler_encoder.json"),
        ],
    ]
    if not args.quick:
        jobs.append(
            [
                "bench_pretrainer_relf1.py",
                "--relf1",
                args.relf1,
                "--configs",
                "untrained,default,wide",
                "--out",
                str(out / "pretrainer_driver-top3.json"),
            ]
        )
    failed = 0
    for job in jobs:
        started = time.perf_counter()
        print(f"== {' '.join(job)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / job[0]), *job[1:]])
        print(f"== {job[0]} finished in {time.perf_counter() - started:.0f}s (exit {code})")
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
