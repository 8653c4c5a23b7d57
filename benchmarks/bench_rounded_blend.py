"""The main job's blend on a count task, its prediction rounded to integers or not.

``sktve run`` fits ``model="blend"`` (the network fine-tuned from TVE, averaged with weight
0.3 with AggregateFeatures + HGB) on each seed's database; the same fitted blend is then
scored with its prediction rounded (:class:`sktve.run.RoundedVotingRegressor`, what the blend
of a network answering in integers is) and unrounded (``VotingRegressor.predict``). Prints
val; test goes to the JSON only, to be read once after the choice::

    python benchmarks/bench_rounded_blend.py --dataset library --task member-loans --seeds 0,1,2

Writes ``<out-dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="library", help="a synthetic schema or a folder")
    parser.add_argument("--task", default="member-loans")
    parser.add_argument("--rows", default="cut", choices=["cut", "all"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="rounded_blend")
    args = parser.parse_args()

    import joblib
    from bench_main_job import dataset_folder
    from bench_pretrainer_relf1 import machine
    from sklearn.ensemble import VotingRegressor

    from sktve.database import open_relbench_dataset
    from sktve.run import RoundedVotingRegressor, run_task, task_metric

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in [int(s) for s in args.seeds.split(",")]:
            folder = dataset_folder(args.dataset, seed, Path(scratch))
            started = time.perf_counter()
            out = Path(scratch) / f"run-{seed}"
            result = run_task(
                folder,
                args.task,
                model="blend",
                rows=args.rows,
                random_state=seed,
                out=out,
                pretrain_until="train",  # the model as chosen on val, also for test
                verbose=False,
            )
            model = joblib.load(out / "pipeline.joblib")
            task = open_relbench_dataset(folder).load_task(args.task)
            entry = {"seed": seed, "seconds": round(time.perf_counter() - started, 1)}
            entry["rounded_by_default"] = isinstance(model, RoundedVotingRegressor)
            for split in ("val", "test"):
                table = task.get_table(split, mask_input_cols=False)
                X = table.df[[task.entity_col, task.time_col]]
                plain = VotingRegressor.predict(model, X)
                for arm, scores in (("plain", plain), ("rounded", np.rint(plain))):
                    entry[f"{split}_{arm}"] = task_metric(task, scores, table)[1]
            assert np.isclose(
                entry["val_rounded" if entry["rounded_by_default"] else "val_plain"], result["val"]
            )
            runs.append(entry)
            print({k: v for k, v in entry.items() if not k.startswith("test")}, flush=True)
    summary = {
        key: float(np.mean([r[key] for r in runs]))
        for key in ("val_plain", "val_rounded", "test_plain", "test_rounded")
    }
    record = {
        "benchmark": "rounded_blend",
        "dataset": args.dataset,
        "task": args.task,
        "rows": args.rows,
        "machine": machine(),
        "runs": runs,
        "mean": summary,
    }
    path = Path(args.out_dir) / f"{args.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    print("val mean", {k: round(v, 4) for k, v in summary.items() if k.startswith("val")})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
