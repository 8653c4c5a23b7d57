"""Integer status codes as categories or as numbers, on a schema nobody tuned for.

sktve reads a non-key integer column named like an id (``statusId``, ``..._id``) as a
categorical code, in the encoder's inputs and in the aggregates (task vectors and
AggregateFeatures); any other integer column is a number. This benchmark builds a small
workshop database whose jobs carry such a code, with planted signal, and writes it twice,
identical but for the code column's name: ``statusId`` (read as categories) and
``status_code`` (read as numbers, as the aggregates read ``statusId`` before). Then it
runs the main job (:func:`sktve.run.run_task`, the ``blend`` model: the fine-tuned
network, AggregateFeatures + HGB, and their 0.3 blend) on both, every row, and reports
val of each part and of the blend, and the blend's test.

The workshop: ``sites`` (static, a climate), ``machines`` (static: site, model, age) and
``jobs`` (machine, time, duration, status code). Each machine has a fault propensity that
drifts from month to month and depends on its site, model and age; a job's status is a
fault (hardware or software) with that propensity, otherwise a benign code (cancelled,
delayed) at a rate unrelated to faults, otherwise "done". The code numbers are drawn at
random, so their order means nothing. Task ``machine-fault``: will a machine that ran a
job in the past year have a faulty job in the next 30 days?

    python benchmarks/bench_code_columns.py --seeds 0,1,2

Writes ``benchmarks/results/code_columns.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine  # noqa: E402

START, END = pd.Timestamp("2020-01-01"), pd.Timestamp("2023-12-31")
VAL, TEST = pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01")
MEANINGS = ("done", "hardware fault", "software fault", "cancelled", "delayed")

FAULT_SQL = """
SELECT t.timestamp AS timestamp, j.machine_id AS machine_id,
       MAX(CASE WHEN j.{code} IN ({faults}) THEN 1 ELSE 0 END) AS fault
FROM timestamps t
JOIN jobs j ON j.time > t.timestamp AND j.time <= t.timestamp + INTERVAL '{{timedelta}}'
WHERE j.machine_id IN (
    SELECT DISTINCT machine_id FROM jobs WHERE time > t.timestamp - INTERVAL '1 year'
)
GROUP BY t.timestamp, j.machine_id
"""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def workshop_frames(
    n_machines: int = 300, jobs_per_month: float = 3.0, random_state: int = 0
) -> tuple[dict[str, pd.DataFrame], dict[str, dict], dict[str, int]]:
    """The workshop's tables (code column ``statusId``), schema, and the codes' meanings."""
    rng = np.random.default_rng(random_state)
    codes = rng.choice(np.arange(1, 40), size=len(MEANINGS), replace=False)
    code_of = dict(zip(MEANINGS, (int(c) for c in codes), strict=True))
    n_sites = 12
    sites = pd.DataFrame(
        {
            "site_id": np.arange(n_sites),
            "climate": np.array(["dry", "humid", "cold", "hot"], dtype=object)[
                rng.integers(0, 4, n_sites)
            ],
        }
    )
    climate_effect = {"dry": -0.3, "humid": 0.3, "cold": 0.0, "hot": 0.5}
    site = rng.integers(0, n_sites, n_machines)
    model = rng.integers(0, 5, n_machines)
    age = rng.gamma(2.0, 3.0, n_machines)
    machines = pd.DataFrame(
        {
            "machine_id": np.arange(n_machines),
            "site_id": site,
            "model": np.array([f"m{k}" for k in range(5)], dtype=object)[model],
            "age_years": np.round(age, 1),
        }
    )
    # Monthly fault propensity: static part + a slowly drifting random walk.
    months = pd.date_range(START, END, freq="MS")
    n_months = len(months)
    static = (
        -2.2
        + np.array([climate_effect[c] for c in sites["climate"]])[site]
        + np.array([-0.4, 0.0, 0.2, 0.4, 0.8])[model]
        + 0.06 * age
        + rng.normal(0, 0.5, n_machines)
    )
    drift = np.cumsum(rng.normal(0, 0.25, (n_machines, n_months)), axis=1)
    propensity = _sigmoid(static[:, None] + drift)  # (machine, month)
    hardware_share = rng.beta(2, 2, n_machines)
    benign_rate = rng.beta(2, 8, n_machines)  # unrelated to faults
    rate = rng.gamma(2.0, jobs_per_month / 2.0, n_machines)
    counts = rng.poisson(rate[:, None] * np.ones(n_months))
    job_machine = np.repeat(np.repeat(np.arange(n_machines), n_months), counts.ravel())
    job_month = np.repeat(np.tile(np.arange(n_months), n_machines), counts.ravel())
    month_ns = months.to_numpy().astype("datetime64[ns]").astype(np.int64)
    month_len = np.diff(np.r_[month_ns, pd.Timestamp(END).value + 1])
    offset = (rng.random(len(job_machine)) * month_len[job_month]).astype(np.int64)
    times = month_ns[job_month] + offset
    u = rng.random(len(job_machine))
    fault = u < propensity[job_machine, job_month]
    hardware = rng.random(len(job_machine)) < hardware_share[job_machine]
    benign = ~fault & (rng.random(len(job_machine)) < benign_rate[job_machine])
    cancelled = rng.random(len(job_machine)) < 0.5
    status = np.full(len(job_machine), code_of["done"])
    status[fault & hardware] = code_of["hardware fault"]
    status[fault & ~hardware] = code_of["software fault"]
    status[benign & cancelled] = code_of["cancelled"]
    status[benign & ~cancelled] = code_of["delayed"]
    duration = np.round(rng.gamma(2.0, 1.0, len(job_machine)) * (1 + 2 * fault), 2)
    order = np.argsort(times, kind="stable")
    jobs = pd.DataFrame(
        {
            "job_id": np.arange(len(order)),
            "machine_id": job_machine[order],
            "time": pd.to_datetime(times[order]),
            "duration_hours": duration[order],
            "statusId": status[order].astype(np.int64),
        }
    )
    schema = {
        "sites": {"pkey": "site_id", "time_col": None, "fkeys": {}},
        "machines": {"pkey": "machine_id", "time_col": None, "fkeys": {"site_id": "sites"}},
        "jobs": {"pkey": "job_id", "time_col": "time", "fkeys": {"machine_id": "machines"}},
    }
    return {"sites": sites, "machines": machines, "jobs": jobs}, schema, code_of


def write_workshop(folder: Path, code_column: str, random_state: int) -> Path:
    """Write the workshop as a RelBench folder, its code column named ``code_column``."""
    from sktve.datasets import write_relbench_folder

    frames, schema, code_of = workshop_frames(random_state=random_state)
    frames["jobs"] = frames["jobs"].rename(columns={"statusId": code_column})
    faults = f"{code_of['hardware fault']}, {code_of['software fault']}"
    task = {
        "name": "machine-fault",
        "kind": "forecast",
        "task_type": "binary_classification",
        "description": "Will a machine that ran a job in the past year have a faulty job "
        "in the next 30 days?",
        "entity_table": "machines",
        "entity_col": "machine_id",
        "time_col": "timestamp",
        "target_col": "fault",
        "timedelta": "30 days",
        "num_eval_timestamps": 6,
        "sql": FAULT_SQL.format(code=code_column, faults=faults),
    }
    return write_relbench_folder(
        (frames, schema),
        folder,
        name=f"workshop-{code_column}",
        val_timestamp=VAL,
        test_timestamp=TEST,
        tasks=[task],
        description="Synthetic workshop (sktve benchmark): jobs with integer status codes.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="code_columns")
    args = parser.parse_args()
    import torch

    from sktve.run import run_task

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for column, reading in (("statusId", "categories"), ("status_code", "numbers")):
                # Each seed draws its own workshop; both readings get the same one.
                folder = write_workshop(Path(tmp) / f"{column}_{seed}", column, seed)
                t0 = time.perf_counter()
                metrics = run_task(
                    str(folder), "machine-fault", model="blend", rows="all",
                    random_state=seed, n_jobs=1, verbose=False,
                )  # fmt: skip
                parts = {name: part["val"] for name, part in metrics["parts"].items()}
                record = {
                    "seed": seed,
                    "codes_read_as": reading,
                    "code_column": column,
                    "val": metrics["val"],
                    "test": metrics["test"],
                    "val_parts": parts,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                runs.append(record)
                print(
                    f"[{time.perf_counter() - started:7.1f}s] seed {seed} codes as {reading}: "
                    f"val {metrics['val']:.4f} parts {parts}",
                    flush=True,
                )
    result = {
        "benchmark": "code_columns",
        "seeds": seeds,
        "machine": machine(),
        "torch_threads": 1,
        "settings": "sktve run --model blend --rows all on the workshop, written twice",
        "runs": runs,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
