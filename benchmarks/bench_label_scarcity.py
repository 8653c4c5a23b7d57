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

Variant arms (the same runs with other ``--ft-params``) are read under a tag
(``FILE.npz@TAG``: methods become ``METHOD@TAG``) and compared with the untagged methods by
``--pairs METHOD@TAG:METHOD``, paired over entities on the same seeds and draws.

    python benchmarks/bench_quality_relf1.py --rows both --label-fraction 0.1 --label-seed 0 \\
        --methods "agg-hgb,ft-tve,ft-random,ft-tve|agg-hgb" --blend-weights 0.3 \\
        --save-scores lf0.1_l0.npz
    python benchmarks/bench_label_scarcity.py --runs 0.1=lf0.1_l0.npz 0.1=lf0.1_l1.npz \\
        1=full.npz --name label_scarcity_relf1
    python benchmarks/bench_label_scarcity.py --runs 0.1=lf0.1_l0.npz+probe0.1_l0.npz@probe \\
        ... --pairs "ft-tve@probe:ft-tve" --name probe_relf1

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
    the same ``--label-seed``); their scores are read as one run. A file written
    ``b.npz@TAG`` is a variant arm (e.g. another ``--ft-params``): its methods are read as
    ``METHOD@TAG``, to be compared with the untagged ones by ``--pairs``.
    """
    runs = []
    for spec in specs:
        fraction, sep, paths = spec.partition("=")
        if not sep or not paths:
            raise SystemExit(f"--runs takes FRACTION=PATH.npz[+PATH.npz...], got {spec!r}")
        runs.append((float(fraction), paths.split("+")))
    return runs


def difference_tag(baseline: str) -> str:
    """The name of a row's ``minus_<tag>`` fields against ``baseline``."""
    return {AGGREGATES: "agg", RANDOM: "random"}.get(baseline, baseline)


def load_tagged(specs: list[str]) -> dict[str, dict]:
    """:func:`load_scores` over ``PATH`` / ``PATH@TAG`` specs, a tag renaming the file's methods."""
    out: dict[str, dict] = {}
    for spec in specs:
        path, _, tag = spec.partition("@")
        for task, entry in load_scores([path]).items():
            merged = out.setdefault(task, {"labels": {}, "scores": {}})
            merged["labels"].update(entry["labels"])
            for (seed, method), splits in entry["scores"].items():
                name = f"{method}@{tag}" if tag else method
                merged["scores"].setdefault((seed, name), {}).update(splits)
    return out


def cell_rows(
    runs: list[tuple[float, list[str]]],
    n_resamples: int,
    pairs: list[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """One row per (task, fraction, split, method), pooled over the draws and seeds.

    Each method is compared with ``agg-hgb`` and ``ft-random``; each ``(method, other)`` of
    ``pairs`` adds ``minus_<other>`` to the method's rows (paired over entities, the same
    seeds and draw).
    """
    pooled: dict[tuple, list[dict]] = defaultdict(list)
    for fraction, paths in runs:
        source = "+".join(Path(p).name for p in paths)
        for task, entry in load_tagged(paths).items():
            present = {method for _, method in entry["scores"]}
            comparisons = [(b, entry) for b in (AGGREGATES, RANDOM) if b in present]
            for method, other in pairs:
                # Against agg-hgb or ft-random every method is compared already.
                if other in (AGGREGATES, RANDOM):
                    continue
                if method in present and other in present:
                    # Only the pair's two methods: the bootstrap is the slow part.
                    scores = {k: v for k, v in entry["scores"].items() if k[1] in (method, other)}
                    comparisons.append((other, {**entry, "scores": scores}))
            for baseline, scored in comparisons:
                for row in summarise(task, scored, n_resamples, baseline):
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
                tag = difference_tag(p["baseline"])
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
    for method, other in result.get("pairs", []):
        lines += pair_table(rows, method, other)
    return "\n".join(lines)


def pair_table(rows: list[dict[str, Any]], method: str, other: str) -> list[str]:
    """Markdown rows of ``method`` against ``other``, per split, task and fraction."""
    index = {(r["task"], r["fraction"], r["split"], r["method"]): r for r in rows}
    lines = []
    for split in ("val", "test", "test_cut"):
        cells = sorted(
            {(r["task"], -r["fraction"]) for r in rows if r["split"] == split},
        )
        table = []
        for task, neg_fraction in cells:
            fraction = -neg_fraction
            mine, theirs = (
                index.get((task, fraction, split, method)),
                index.get((task, fraction, split, other)),
            )
            tag = difference_tag(other)
            if mine is None or theirs is None or f"minus_{tag}" not in mine:
                continue
            auc = mine["metric"] == "roc_auc"
            fmt = "{:.2f}" if auc else "{:.3f}"
            gain = (1.0 if auc else -1.0) * mine[f"minus_{tag}"]
            table.append(
                f"| {task} | {fraction:g} | {mine['runs']} | {fmt.format(theirs['value'])} | "
                f"{fmt.format(mine['value'])} | {gain:+.3f} ± {mine[f'minus_{tag}_se']:.3f} |"
            )
        if table:
            a, b = (m.replace("|", "\\|") for m in (method, other))
            lines += [
                f"**{split}: {a} against {b}** (gain: positive = {a} better)",
                "",
                f"| task | fraction | runs | {b} | {a} | gain |",
                "|---|---|---|---|---|---|",
                *table,
                "",
            ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="FRACTION=PATH.npz: a --save-scores file of a quality benchmark run with "
        "--label-fraction FRACTION (1 for every label); several files of one fraction "
        "(label draws) are pooled; PATH.npz@TAG reads a variant arm's methods as METHOD@TAG",
    )
    parser.add_argument(
        "--tve-methods",
        default=f"{NETWORK},{BLEND}",
        help="the TVE methods among which val picks the one compared with agg-hgb "
        f"(any of {', '.join(m for m in METHOD_ORDER if m not in (AGGREGATES, RANDOM))})",
    )
    parser.add_argument(
        "--pairs",
        default="",
        help="METHOD:OTHER,...: also compare these methods paired over entities, e.g. "
        "'ft-tve@probe:ft-tve' for a tagged arm (see --runs) against the untagged run",
    )
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="label_scarcity")
    args = parser.parse_args()

    runs = parse_runs(args.runs)
    tve_methods = [m for m in args.tve_methods.split(",") if m]
    pairs = [tuple(p.split(":", 1)) for p in args.pairs.split(",") if p]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--pairs takes METHOD:OTHER[,METHOD:OTHER...], got {args.pairs!r}")
    rows = cell_rows(runs, args.n_resamples, pairs)
    result = {
        "benchmark": "label_scarcity",
        "runs": [{"fraction": f, "scores": [Path(p).name for p in paths]} for f, paths in runs],
        "n_resamples": args.n_resamples,
        "tve_methods": tve_methods,
        "pairs": [list(p) for p in pairs],
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
