"""What pre-training is worth when labels are few: the quality benchmarks at label fractions.

Reads the score files that ``bench_quality_relf1.py`` and ``bench_quality_synthetic.py``
wrote with ``--label-fraction F --save-scores`` (heads and fine-tuning learn from the
training rows of a random fraction F of the training entities; TVE pre-training and
AggregateFeatures' fit, which read no labels, see every training row) and, per task and
fraction, summarises over every label draw and seed:

- each method's val and test metric (mean over runs) and its standard error over the
  split's entities (:mod:`sktve.bootstrap`, as ``bench_split_noise.py``);
- the best TVE method on val (among ``--tve-methods``, by default ``ft-tve`` and the blend
  ``ft-tve|agg-hgb``; also ``tve-hgb`` and ``tve+agg-hgb``, heads on the frozen embedding)
  minus ``agg-hgb`` (AggregateFeatures + HGB), and ``ft-tve`` minus ``ft-random`` (the same
  network fine-tuned from random initialisation), paired over entities: the mean
  difference over runs and the mean of the runs' paired standard errors.

Nothing is chosen from test: the TVE method is chosen on val over all runs of a cell.

    python benchmarks/bench_quality_relf1.py --rows both --label-fraction 0.1 --label-seed 0 \\
        --methods "agg-hgb,ft-tve,ft-random,ft-tve|agg-hgb" --blend-weights 0.3 \\
        --save-scores lf0.1_l0.npz
    python benchmarks/bench_label_scarcity.py --runs 0.1=lf0.1_l0.npz 0.1=lf0.1_l1.npz \\
        1=full.npz --name label_scarcity_relf1

Writes ``benchmarks/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine  # noqa: E402
from bench_split_noise import AGGREGATES, load_scores, summarise  # noqa: E402

NETWORK, RANDOM, BLEND = "ft-tve", "ft-random", "ft-tve|agg-hgb"
FROZEN = ("tve-hgb", "tve+agg-hgb")
METHOD_ORDER = (AGGREGATES, RANDOM, NETWORK, BLEND, *FROZEN)


def parse_runs(specs: list[str]) -> list[tuple[float, list[str]]]:
    """``["0.1=a.npz+b.npz", ...]`` -> ``[(0.1, ["a.npz", "b.npz"]), ...]``.

    Files joined by ``+`` are parts of one label draw (e.g. two runs of other methods with
    the same ``--label-seed``); their scores are read as one run.
    """
    runs = []
    for spec in specs:
        fraction, sep, paths = spec.partition("=")
        if not sep or not paths:
            raise SystemExit(f"--runs takes FRACTION=PATH.npz[+PATH.npz...], got {spec!r}")
        runs.append((float(fraction), paths.split("+")))
    return runs


def cell_rows(runs: list[tuple[float, list[str]]], n_resamples: int) -> list[dict[str, Any]]:
    """One row per (task, fraction, split, method), pooled over the draws and seeds."""
    pooled: dict[tuple, list[dict]] = defaultdict(list)
    for fraction, paths in runs:
        source = "+".join(Path(p).name for p in paths)
        for task, entry in load_scores(paths).items():
            for baseline in (AGGREGATES, RANDOM):
                if not any(method == baseline for _, method in entry["scores"]):
                    continue
                for row in summarise(task, entry, n_resamples, baseline):
                    key = (task, fraction, row["split"], row["method"])
                    pooled[key].append({**row, "baseline": baseline, "source": source})
    rows = []
    for (task, fraction, split, method), parts in pooled.items():
        own = [p for p in parts if p["baseline"] == AGGREGATES] or parts
        row = {
            "task": task,
            "fraction": fraction,
            "split": split,
            "method": method,
            "metric": own[0]["metric"],
            "runs": sum(len(p["seeds"]) for p in own),
            "draws": sorted({p["source"] for p in own}),
            "value": float(np.mean([p["value"] for p in own])),
            "se": float(np.mean([p["se"] for p in own])),
        }
        for p in parts:
            if "minus_baseline" in p:
                tag = "agg" if p["baseline"] == AGGREGATES else "random"
                row.setdefault(f"minus_{tag}", []).append(p["minus_baseline"])
                row.setdefault(f"minus_{tag}_se", []).append(p["minus_baseline_se"])
                row.setdefault(f"share_better_than_{tag}", []).append(
                    p["share_better_than_baseline"]
                )
        for key in [k for k in row if k.startswith(("minus_", "share_"))]:
            row[key] = float(np.mean(row[key]))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["task"], -r["fraction"], r["split"], r["method"]))


def verdicts(rows: list[dict[str, Any]], tve_methods: list[str]) -> list[dict[str, Any]]:
    """Per (task, fraction): the val-best TVE method against the aggregates and random init."""
    index = {(r["task"], r["fraction"], r["split"], r["method"]): r for r in rows}
    out = []
    for task, fraction in sorted({(r["task"], r["fraction"]) for r in rows}):
        candidates = [
            index[task, fraction, "val", m]
            for m in tve_methods
            if (task, fraction, "val", m) in index
        ]
        if not candidates:
            continue
        higher = candidates[0]["metric"] == "roc_auc"
        best = (max if higher else min)(candidates, key=lambda r: r["value"])["method"]
        verdict: dict[str, Any] = {"task": task, "fraction": fraction, "val_best_tve": best}
        for split in ("val", "test", "test_cut"):
            picked = index.get((task, fraction, split, best))
            if picked is None or "minus_agg" not in picked:
                continue
            verdict[split] = {
                "tve_minus_agg": picked["minus_agg"],
                "se": picked["minus_agg_se"],
                "share_better": picked["share_better_than_agg"],
            }
            network = index.get((task, fraction, split, NETWORK))
            if network is not None and "minus_random" in network:
                verdict[split]["tve_minus_random"] = network["minus_random"]
                verdict[split]["tve_minus_random_se"] = network["minus_random_se"]
        out.append(verdict)
    return out


def markdown(result: dict[str, Any]) -> str:
    rows, verdict_rows = result["rows"], result["verdicts"]
    index = {(r["task"], r["fraction"], r["split"], r["method"]): r for r in rows}
    methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in rows)]
    lines = [
        "Label fractions: heads and fine-tuning learn from the training rows of a random "
        "fraction of the training entities; TVE pre-training and AggregateFeatures' fit read "
        "every training row. Mean over label draws x seeds (runs); AUROC x 100, MAE. "
        "Differences are paired over the split's entities (mean of the runs' standard errors; "
        "positive = better for TVE, also for MAE).",
        "",
    ]
    for split in ("val", "test", "test_cut"):
        present = [v for v in verdict_rows if split in v]
        if not present:
            continue
        header = " | ".join(m.replace("|", "\\|") for m in methods)
        lines += [
            f"**{split}**",
            "",
            f"| task | fraction | runs | {header} | val-best TVE minus agg-hgb | "
            "ft-tve minus ft-random |",
            "|---|---|---|" + "---|" * len(methods) + "---|---|",
        ]
        for v in present:
            task, fraction = v["task"], v["fraction"]
            cells = []
            for m in methods:
                r = index.get((task, fraction, split, m))
                scale_fmt = "{:.2f}" if r and r["metric"] == "roc_auc" else "{:.3f}"
                cells.append("" if r is None else scale_fmt.format(r["value"]))
            runs = index[task, fraction, split, v["val_best_tve"]]["runs"]
            d = v[split]
            sign = 1.0 if index[task, fraction, split, AGGREGATES]["metric"] == "roc_auc" else -1.0
            agg_cell = (
                f"{v['val_best_tve'].replace('|', chr(92) + '|')} "
                f"{sign * d['tve_minus_agg']:+.3f} ± {d['se']:.3f}"
            )
            random_cell = (
                f"{sign * d['tve_minus_random']:+.3f} ± {d['tve_minus_random_se']:.3f}"
                if "tve_minus_random" in d
                else ""
            )
            lines.append(
                f"| {task} | {fraction:g} | {runs} | {' | '.join(cells)} | {agg_cell} | "
                f"{random_cell} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="FRACTION=PATH.npz: a --save-scores file of a quality benchmark run with "
        "--label-fraction FRACTION (1 for every label); several files of one fraction "
        "(label draws) are pooled",
    )
    parser.add_argument(
        "--tve-methods",
        default=f"{NETWORK},{BLEND}",
        help="the TVE methods among which val picks the one compared with agg-hgb "
        f"(any of {', '.join(m for m in METHOD_ORDER if m not in (AGGREGATES, RANDOM))})",
    )
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="label_scarcity")
    args = parser.parse_args()

    runs = parse_runs(args.runs)
    tve_methods = [m for m in args.tve_methods.split(",") if m]
    rows = cell_rows(runs, args.n_resamples)
    result = {
        "benchmark": "label_scarcity",
        "runs": [{"fraction": f, "scores": [Path(p).name for p in paths]} for f, paths in runs],
        "n_resamples": args.n_resamples,
        "tve_methods": tve_methods,
        "differences": "minus_agg / minus_random and the verdicts' tve_minus_* are the method "
        "minus the baseline in the metric's units (AUROC x 100: positive is better; MAE: "
        "negative is better); the markdown shows them as gains (positive = better)",
        "machine": machine(),
        "verdicts": verdicts(rows, tve_methods),
        "rows": rows,
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (out_dir / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
