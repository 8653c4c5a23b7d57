"""The main job (``sktve run``) as a user runs it: each model on each task, val and test.

``sktve run`` fits one model per call with its defaults (``random_state=0``, one thread):
``blend`` (the TVE-pre-trained network fine-tuned on the labels, averaged, weight 0.3,
with AggregateFeatures and an HGB head chosen on val), ``finetune`` (the network alone),
``embed`` (frozen embeddings and an HGB head chosen on val) or ``auto`` (all three, the
best on val kept; the default). This script calls :func:`sktve.run.run_task` for every
(dataset, task, rows protocol, model, seed) and collects the val and test metrics, the
model kept and every candidate's val (``auto``), the parts' val metrics (``blend``,
``auto``) and the timings.
The log prints val only; test is in the JSON.

    python benchmarks/bench_main_job.py --datasets ../shared/data/rel-f1 \
        --rows cut,all --models blend,embed --name main_job_relf1
    python benchmarks/bench_main_job.py --datasets synthetic,library,bank --rows cut \
        --models blend,embed --seeds 0,1,2 --name main_job_synthetic

``synthetic``, ``library`` and ``bank`` are sktve's synthetic schemas (:mod:`sktve.datasets`, their
default sizes, one database per seed); any other value is a RelBench folder or name, whose
binary and regression entity tasks are all run unless ``--tasks`` names some. Writes
``<out-dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib

HERE = Path(__file__).resolve().parent


def dataset_folder(source: str, seed: int, scratch: Path) -> str:
    """A RelBench folder for ``source``: a synthetic schema written for ``seed``, or itself."""
    from sktve.cli import SYNTHETIC_SOURCES  # the names `sktve run` takes, same schemas

    if source not in SYNTHETIC_SOURCES:
        return source
    from sktve.datasets import SYNTHETIC_SCHEMAS

    folder = scratch / f"{source}-{seed}"
    if not folder.exists():
        SYNTHETIC_SCHEMAS[SYNTHETIC_SOURCES[source]](folder, random_state=seed)
    return str(folder)


def entity_tasks(folder: str) -> list[str]:
    """The folder's binary and regression entity tasks, in the dataset's order."""
    from relbench.base import TaskType

    from sktve.database import open_relbench_dataset

    dataset = open_relbench_dataset(folder)
    kinds = (TaskType.BINARY_CLASSIFICATION, TaskType.REGRESSION)
    names = dataset.get_task_names()
    return [name for name in names if dataset.load_task(name).task_type in kinds]


def members_test(folder: str, task_name: str, hedged: Any) -> dict[str, float]:
    """Test metric of each member of a hedged model (``--pretrain-until both``).

    A benchmark's diagnostic, beside the hedge's own test: the model as chosen on val and
    its refit through the test timestamp, each scored alone on the same test rows.
    """
    from sktve.database import open_relbench_dataset
    from sktve.run import predict_scores, task_metric

    task = open_relbench_dataset(folder).load_task(task_name)
    table = task.get_table("test", mask_input_cols=False)
    X = table.df[[task.entity_col, task.time_col]]
    binary = task.task_type.value == "binary_classification"
    return {
        name: task_metric(task, predict_scores(member, X, binary), table)[1]
        for name, member in hedged.named_estimators_.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="synthetic,library,bank")
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every task)")
    parser.add_argument("--rows", default="cut", help="comma-separated: cut, all")
    parser.add_argument(
        "--models", default="auto", help="comma-separated: auto, blend, finetune, embed"
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument(
        "--pretrain-until",
        choices=("train", "test", "both"),
        default=None,
        help="sktve run's --pretrain-until (default: its own); with 'both' the JSON also "
        "holds each member's test (test_members)",
    )
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="main_job")
    args = parser.parse_args()

    from bench_pretrainer_relf1 import machine  # the quality benchmarks' machine record

    from sktve.run import run_task

    runs: list[dict[str, Any]] = []
    out = Path(args.out_dir) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sktve-main-job-") as scratch:
        for source in args.datasets.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                folder = dataset_folder(source, seed, Path(scratch))
                tasks = args.tasks.split(",") if args.tasks else entity_tasks(folder)
                for task, rows, model in (
                    (t, r, m)
                    for t in tasks
                    for r in args.rows.split(",")
                    for m in args.models.split(",")
                ):
                    started = time.perf_counter()
                    # Only a hedge's members are scored from the saved model; other runs
                    # save nothing, so their seconds stay those of the fit alone.
                    run_out = (
                        Path(scratch) / f"run-{len(runs)}"
                        if args.pretrain_until == "both"
                        else None
                    )
                    result: dict[str, Any] = run_task(
                        folder,
                        task,
                        model=model,
                        rows=rows,
                        random_state=seed,
                        verbose=False,
                        pretrain_until=args.pretrain_until,
                        out=run_out,
                    )
                    seconds = round(time.perf_counter() - started, 1)
                    entry = {
                        "dataset": source,
                        "task": task,
                        "rows": rows,
                        "model": model,
                        "seed": seed,
                        "chosen_model": result["chosen_model"],
                        "models_val": result["models_val"],
                        "metric": result["metric"],
                        "val": result["val"],
                        "test": result["test"],
                        # How sure: the intervals and the paired differences on val.
                        "val_interval": result["val_interval"],
                        "test_interval": result["test_interval"],
                        "models_val_difference": result["models_val_difference"],
                        "aggregates_val_difference": result["aggregates_val_difference"],
                        "parts_val": {
                            part: found["val"]
                            for part, found in result["parts"].items()
                            if "val" in found
                        },
                        "timings": result["timings"],
                        "seconds": seconds,
                        "pretrain_until": result["pretrain_until"],
                        "hedged": result["hedged"],
                    }
                    if run_out is not None:
                        if result["hedged"]:
                            entry["test_members"] = members_test(
                                folder, task, joblib.load(run_out / "pipeline.joblib")
                            )
                        shutil.rmtree(run_out)
                    runs.append(entry)
                    parts = {k: round(v, 4) for k, v in entry["parts_val"].items()}
                    print(
                        f"{source} {task} {rows} {model} seed {seed}: val {result['val']:.4f} "
                        f"parts {parts} ({entry['seconds']} s)",
                        flush=True,
                    )
                    # Written after every run, so that a stopped run keeps what it measured.
                    out.write_text(
                        json.dumps(
                            {
                                "benchmark": "bench_main_job",
                                "machine": machine(),
                                "runs": runs,
                            },
                            indent=1,
                        )
                    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
