"""How much of a rel-f1 comparison is the split's own noise? Bootstrap over drivers.

Reads the scores that ``bench_quality_relf1.py --save-scores`` wrote (every method's val,
test and, with ``--rows both``, cut-test scores per seed) and, for each task, split and
method, resamples the split's drivers with all their rows (:mod:`sktve.bootstrap`):

- the method's metric and its standard error over drivers (mean over seeds);
- the method minus a baseline (``--baseline``, default ``agg-hgb``: AggregateFeatures +
  HGB; ``ft-random``: the same network fine-tuned from random initialisation), paired on
  the same resamples: its mean over seeds, standard error and the share of resamples
  where the method wins.

The blend ``ft-tve|agg-hgb`` is rebuilt from the saved scores with the quality benchmark's
own rule (the weight best on val). Nothing is chosen here: the scores were scored before;
this measures how far apart two methods must be before a split of 42-56 drivers can tell.

    python benchmarks/bench_quality_relf1.py --rows both --tasks driver-dnf \\
        --methods "agg-hgb,ft-tve,ft-tve+agg,ft-tve|agg-hgb" --save-scores dnf.npz
    python benchmarks/bench_split_noise.py --relf1 ../shared/data/rel-f1 \\
        --scores top3.npz dnf.npz position.npz

Writes ``benchmarks/results/split_noise.json`` and ``split_noise.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine  # noqa: E402
from bench_quality_relf1 import BLEND_WEIGHTS, blend_and_test  # noqa: E402

from sktve.bootstrap import metric_interval, paired_difference  # noqa: E402

AGGREGATES = "agg-hgb"
BLEND = ("ft-tve|agg-hgb", "ft-tve")


def load_scores(paths: list[str]) -> dict[str, dict]:
    """{task: {"y": {split: labels}, "scores": {(seed, method): {split: scores}}}}."""
    out: dict[str, dict] = {}
    for path in paths:
        saved = np.load(path)
        for key in saved.files:
            task, who, *rest = key.split("|")
            entry = out.setdefault(task, {"y": {}, "scores": {}})
            if who == "y":
                entry["y"][rest[0]] = saved[key]
            else:
                method, split = "|".join(rest[:-1]), rest[-1]
                entry["scores"].setdefault((int(who), method), {})[split] = saved[key]
    return out


def add_blends(task: Any, tables: dict, entry: dict) -> None:
    """The blend of ft-tve and agg-hgb per seed, weight chosen on val as the benchmark does."""
    blend, network = BLEND
    seeds = sorted({seed for seed, method in entry["scores"] if method == network})
    for seed in seeds:
        if (seed, AGGREGATES) not in entry["scores"] or (seed, blend) in entry["scores"]:
            continue
        first = {"scores": entry["scores"][seed, network]}
        second = {"scores": entry["scores"][seed, AGGREGATES]}
        w = blend_and_test(first, second, task, tables, BLEND_WEIGHTS)["chosen_head"][
            "weight_on_finetuned"
        ]
        entry["scores"][seed, blend] = {
            split: w * first["scores"][split] + (1 - w) * second["scores"][split]
            for split in first["scores"]
        }


def summarise(
    task: Any, tables: dict, entry: dict, n_resamples: int, baseline: str = AGGREGATES
) -> list[dict[str, Any]]:
    binary = task.task_type.value == "binary_classification"
    metric = "roc_auc" if binary else "mae"
    scale = 100.0 if binary else 1.0  # AUROC in points, as the quality tables
    rows = []
    methods = sorted({method for _, method in entry["scores"]})
    for split in ("val", "test", "test_cut"):
        table = tables["val" if split == "val" else "test"]
        y = entry["y"]["val" if split == "val" else "test"]
        groups = table.df[task.entity_col].to_numpy()
        if len(groups) != len(y):
            raise SystemExit(
                f"{task.name}: {len(y)} saved labels but {len(groups)} rows in {split}"
            )
        for method in methods:
            seeds = sorted(
                seed
                for seed, m in entry["scores"]
                if m == method and split in entry["scores"][seed, m]
            )
            if not seeds:
                continue
            alone, against = [], []
            for seed in seeds:
                scores = entry["scores"][seed, method][split]
                alone.append(
                    metric_interval(
                        y, scores, metric, groups=groups, n_resamples=n_resamples, random_state=seed
                    )
                )
                if method != baseline and (seed, baseline) in entry["scores"]:
                    against.append(
                        paired_difference(
                            y,
                            scores,
                            entry["scores"][seed, baseline][split],
                            metric,
                            groups=groups,
                            n_resamples=n_resamples,
                            random_state=seed,
                        )
                    )
            row = {
                "task": task.name,
                "split": split,
                "method": method,
                "seeds": seeds,
                "metric": metric,
                "n_rows": len(y),
                "n_drivers": alone[0]["n_groups"],
                "value": round(scale * float(np.mean([a["value"] for a in alone])), 4),
                "se": round(scale * float(np.mean([a["se"] for a in alone])), 4),
            }
            if against:
                row.update(
                    minus_baseline=round(
                        scale * float(np.mean([d["difference"] for d in against])), 4
                    ),
                    minus_baseline_se=round(scale * float(np.mean([d["se"] for d in against])), 4),
                    share_better_than_baseline=round(
                        float(np.mean([d["share_first_better"] for d in against])), 3
                    ),
                )
            rows.append(row)
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "Standard errors over drivers (each resample draws the split's drivers with all "
        f"their rows; {result['n_resamples']} resamples, mean over seeds). AUROC in points.",
        "",
        f"| task | split | method | drivers / rows | value ± SE | minus {result['baseline']} "
        "± SE (paired) | share of resamples better |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        diff = (
            f"{r['minus_baseline']:+.3f} ± {r['minus_baseline_se']:.3f}"
            if "minus_baseline" in r
            else ""
        )
        share = f"{r['share_better_than_baseline']:.2f}" if "minus_baseline" in r else ""
        lines.append(
            f"| {r['task']} | {r['split']} | {r['method']} | {r['n_drivers']} / {r['n_rows']} | "
            f"{r['value']:.3f} ± {r['se']:.3f} | {diff} | {share} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--scores", nargs="+", required=True, help=".npz files of --save-scores")
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument(
        "--baseline", default=AGGREGATES, help="the method every other is compared with"
    )
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="split_noise")
    args = parser.parse_args()

    import relbench

    dataset = relbench.load_dataset(args.relf1)
    saved = load_scores(args.scores)
    rows: list[dict[str, Any]] = []
    for task_name, entry in saved.items():
        task = dataset.load_task(task_name)
        tables = {s: task.get_table(s, mask_input_cols=False) for s in ("val", "test")}
        add_blends(task, tables, entry)
        rows.extend(summarise(task, tables, entry, args.n_resamples, args.baseline))
    result = {
        "benchmark": "split_noise",
        "scores": [Path(p).name for p in args.scores],
        "n_resamples": args.n_resamples,
        "baseline": args.baseline,
        "resampling": "drivers with all their rows (sktve.bootstrap), seeded by the run's seed",
        "machine": machine(),
        "rows": rows,
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (out_dir / f"{args.name}.md").write_text(markdown(result))
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
