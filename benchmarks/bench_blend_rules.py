"""How to choose the weight of a blend of two methods, compared on val alone.

The quality benchmarks blend a fine-tuned network with AggregateFeatures + HGB as
``w * ft + (1 - w) * agg`` and pick ``w`` on val. On small val sets the picked weight is
noisy. This script compares weight rules without refitting anything, from the per-row
scores that ``bench_quality_relf1.py`` / ``bench_quality_synthetic.py --save-scores``
write, by cross-validation *inside val*: each rule picks ``w`` on some val folds and is
scored on the held-out fold, repeated over random fold splits. The rule with the best
val cross-validated gain over the aggregate method alone is the one to use; only then is
it applied once to the test split (``--test``).

    python benchmarks/bench_blend_rules.py \\
        --runs /tmp/runs/quality_synthetic.json=/tmp/runs/quality_synthetic_scores.npz \\
        --first ft-tve --second agg-hgb --name blend_rules

Writes ``<out-dir>/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import mean_absolute_error, roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_quality_relf1 import BLEND_WEIGHTS as GRID  # noqa: E402  (the benchmarks' grid)


def score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Higher is better: AUROC, or minus MAE."""
    if metric == "roc_auc":
        return float(roc_auc_score(y, pred))
    return -float(mean_absolute_error(y, pred))


def grid_curve(
    metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, weights: np.ndarray = GRID
) -> np.ndarray:
    """The score of ``w * a + (1 - w) * b`` for each ``w`` of ``weights``."""
    return np.array([score(metric, y, w * a + (1 - w) * b) for w in weights])


def rule_grid(metric, y, a, b, rng) -> float:
    """The weight that scores best (first of ties: the least weight on ``a``)."""
    return float(GRID[int(np.argmax(grid_curve(metric, y, a, b)))])


def rule_bagged(metric, y, a, b, rng, n_boot: int = 30) -> float:
    """The mean of the best weights of bootstrap resamples (bagged selection)."""
    picks = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if metric == "roc_auc" and len(np.unique(y[idx])) < 2:
            continue
        picks.append(rule_grid(metric, y[idx], a[idx], b[idx], rng))
    return float(np.mean(picks)) if picks else 0.0


def rule_halves(metric, y, a, b, rng) -> float:
    """The weight whose worse score over two random halves is best (it must hold on both)."""
    order = rng.permutation(len(y))
    halves = np.array_split(order, 2)
    if metric == "roc_auc" and any(len(np.unique(y[h])) < 2 for h in halves):
        return rule_grid(metric, y, a, b, rng)
    curves = np.vstack([grid_curve(metric, y[h], a[h], b[h]) for h in halves])
    return float(GRID[int(np.argmax(curves.min(axis=0)))])


def rule_shrunk(metric, y, a, b, rng) -> float:
    """Half of the best weight: the pick pulled toward the aggregate method."""
    return 0.5 * rule_grid(metric, y, a, b, rng)


def fixed(w: float) -> Callable:
    def rule(metric, y, a, b, rng) -> float:
        return w

    rule.__doc__ = f"w = {w} always."
    return rule


RULES: dict[str, Callable] = {
    "grid": rule_grid,
    "bagged": rule_bagged,
    "halves": rule_halves,
    "shrunk": rule_shrunk,
    "fixed-0.5": fixed(0.5),
    "fixed-0.3": fixed(0.3),
}


def load_cases(runs: list[str], first: str, second: str) -> list[dict[str, Any]]:
    """(task, seed) cases with val/test scores of both methods and the labels."""
    cases = []
    for spec in runs:
        json_path, npz_path = spec.split("=")
        result = json.loads(Path(json_path).read_text())
        arrays = np.load(npz_path)
        metrics = {task: entry["metric"] for task, entry in result["summary"][second].items()}
        for task, metric in metrics.items():
            for seed in result["seeds"]:

                def key(method, split, task=task, seed=seed):
                    return f"{task}|{seed}|{method}|{split}"

                labels = f"{task}|{seed}|y|" if f"{task}|{seed}|y|val" in arrays else f"{task}|y|"
                if key(first, "val") not in arrays or key(second, "val") not in arrays:
                    continue
                cases.append(
                    {
                        "source": Path(json_path).stem,
                        "task": task,
                        "seed": seed,
                        "metric": metric,
                        **{
                            f"{name}_{split}": np.asarray(arrays[key(method, split)], float)
                            for name, method in (("a", first), ("b", second))
                            for split in ("val", "test")
                        },
                        "y_val": np.asarray(arrays[labels + "val"], float),
                        "y_test": np.asarray(arrays[labels + "test"], float),
                    }
                )
    return cases


def val_cv_gain(case: dict, rule: Callable, folds: int, repeats: int, seed: int) -> float:
    """Mean over held-out val folds of (rule's blend - second method alone), higher better."""
    y, a, b, metric = case["y_val"], case["a_val"], case["b_val"], case["metric"]
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(repeats):
        for held in np.array_split(rng.permutation(len(y)), folds):
            fit = np.setdiff1d(np.arange(len(y)), held)
            if metric == "roc_auc" and (len(np.unique(y[held])) < 2 or len(np.unique(y[fit])) < 2):
                continue
            w = rule(metric, y[fit], a[fit], b[fit], rng)
            blended = w * a[held] + (1 - w) * b[held]
            gains.append(score(metric, y[held], blended) - score(metric, y[held], b[held]))
    return float(np.mean(gains))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="RESULT.json=SCORES.npz")
    parser.add_argument("--first", default="ft-tve")
    parser.add_argument("--second", default="agg-hgb")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--test", default=None, help="apply this rule once to test")
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="blend_rules")
    args = parser.parse_args()

    cases = load_cases(args.runs, args.first, args.second)
    if not cases:
        parser.error(f"no case has val scores of both {args.first} and {args.second}")
    table: dict[str, dict[str, list[float]]] = {}
    for i, case in enumerate(cases):
        row = table.setdefault(case["task"], {})
        for name, rule in RULES.items():
            row.setdefault(name, []).append(val_cv_gain(case, rule, args.folds, args.repeats, i))
    summary = {
        task: {name: float(np.mean(g)) for name, g in rules.items()}
        for task, rules in table.items()
    }
    result: dict[str, Any] = {
        "benchmark": "blend_rules",
        "first": args.first,
        "second": args.second,
        "protocol": f"val only: {args.repeats} x {args.folds}-fold CV inside val per (task, "
        "seed); gain = blend on the held-out fold minus the second method alone "
        "(AUROC, or minus MAE), mean over folds, then over seeds",
        "rules": {name: rule.__doc__.strip().splitlines()[0] for name, rule in RULES.items()},
        "val_cv_gain": summary,
        "val_cv_gain_per_seed": table,
    }
    if args.test:
        rule = RULES[args.test]
        tested = {}
        for i, case in enumerate(cases):
            rng = np.random.default_rng(10_000 + i)
            w = rule(case["metric"], case["y_val"], case["a_val"], case["b_val"], rng)
            blend = score(
                case["metric"], case["y_test"], w * case["a_test"] + (1 - w) * case["b_test"]
            )
            alone = score(case["metric"], case["y_test"], case["b_test"])
            tested.setdefault(case["task"], []).append(
                {"seed": case["seed"], "weight": w, "blend": blend, "second": alone}
            )
        result["test"] = {"rule": args.test, "per_task": tested}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Blend `w * {args.first} + (1 - w) * {args.second}`: gain over {args.second} alone "
        f"by val cross-validation ({result['protocol']}). Positive is better: AUROC x 100, "
        "or the MAE saved.",
        "",
        "| task | " + " | ".join(RULES) + " |",
        "|---" * (len(RULES) + 1) + "|",
    ]
    scale_of = {c["task"]: 100 if c["metric"] == "roc_auc" else 1 for c in cases}
    for task, row in summary.items():
        scale = scale_of[task]
        lines.append(f"| {task} | " + " | ".join(f"{scale * row[n]:+.3f}" for n in RULES) + " |")
    if args.test:
        lines += [
            "",
            f"Test, once, with the rule `{args.test}` (w picked on the whole of val), mean "
            "over seeds; gain = paired blend minus the second method (positive is better):",
            "",
            f"| task | weights | blend | {args.second} | gain |",
            "|---|---|---|---|---|",
        ]
        for task, entries in result["test"]["per_task"].items():
            scale = scale_of[task]
            gains = scale * np.array([e["blend"] - e["second"] for e in entries])
            spread = f" ± {gains.std(ddof=1):.3f}" if len(gains) > 1 else ""
            weights = ", ".join(f"{e['weight']:.2f}" for e in entries)
            lines.append(
                f"| {task} | {weights} | "
                f"{scale * abs(np.mean([e['blend'] for e in entries])):.3f} | "
                f"{scale * abs(np.mean([e['second'] for e in entries])):.3f} | "
                f"{gains.mean():+.3f}{spread} |"
            )
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
