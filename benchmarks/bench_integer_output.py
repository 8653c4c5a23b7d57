"""Integer predictions for count regressions scored by MAE, from saved per-row scores.

A median of an integer-valued target can always be taken as an integer, and between two
integers the expected absolute error is linear, so a point prediction between them is
never better than both. ``TVERegressor(integer_output="auto")`` therefore rounds its
predictions when it trains with absolute error on integer targets. This script measures
what the rounding does, without refitting anything: it reads the per-row scores that
``bench_quality_synthetic.py --save-scores`` writes for regression tasks whose labels are
all integers, and scores the network (``ft-tve``) as saved and rounded, the aggregates'
HGB (``agg-hgb``) as saved and rounded, and the fixed-weight blend
``w * ft-tve + (1 - w) * agg-hgb`` built from the saved network, from the rounded network,
and rounded as a whole. The runs must be made with unrounded networks
(``--ft-params '{"integer_output": false}'`` since the option exists).

    python benchmarks/bench_quality_synthetic.py --count-tasks \\
        --tasks customer-orders,member-loans,account-payments \\
        --methods "agg-hgb,ft-tve,ft-tve|agg-hgb" --blend-weights 0.3 \\
        --ft-params '{"integer_output": false}' --name counts --save-scores counts.npz
    python benchmarks/bench_integer_output.py --scores counts.npz --name integer_output

Val by default; ``--test`` scores the test split (once, after a decision made on val).
Writes ``<out-dir>/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import write_result  # noqa: E402  (the benchmarks' JSON + table)


def arms(agg: np.ndarray, net: np.ndarray, weight: float) -> dict[str, np.ndarray]:
    """Every prediction the comparison scores, by name."""
    return {
        "agg-hgb": agg,
        "agg-hgb rounded": np.rint(agg),
        "ft-tve": net,
        "ft-tve rounded": np.rint(net),
        "blend": weight * net + (1 - weight) * agg,
        "blend of the rounded ft-tve": weight * np.rint(net) + (1 - weight) * agg,
        "blend rounded": np.rint(weight * net + (1 - weight) * agg),
    }


def integer_tasks(scores: Any, split: str) -> dict[str, list[str]]:
    """Task -> seeds whose saved labels are all integers and whose methods were saved."""
    found: dict[str, list[str]] = {}
    for key in scores.files:
        task, seed, *rest = key.split("|")
        if rest != ["y", split]:
            continue
        y = scores[key]
        prefix = f"{task}|{seed}"
        if (
            f"{prefix}|ft-tve|{split}" in scores.files
            and f"{prefix}|agg-hgb|{split}" in scores.files
            and np.array_equal(y, np.rint(y))
            and len(np.unique(y)) > 2  # a count, not a binary label
        ):
            found.setdefault(task, []).append(seed)
    return {task: sorted(seeds) for task, seeds in sorted(found.items())}


def measure(scores: Any, split: str, weight: float) -> dict[str, Any]:
    """Per task: each arm's MAE per seed, and paired differences of the rounded arms."""
    result: dict[str, Any] = {}
    for task, seeds in integer_tasks(scores, split).items():
        per_arm: dict[str, list[float]] = {}
        for seed in seeds:
            prefix = f"{task}|{seed}"
            y = scores[f"{prefix}|y|{split}"]
            predictions = arms(
                scores[f"{prefix}|agg-hgb|{split}"], scores[f"{prefix}|ft-tve|{split}"], weight
            )
            for name, pred in predictions.items():
                per_arm.setdefault(name, []).append(float(np.abs(y - pred).mean()))
        differences = {}
        for rounded, raw in (
            ("ft-tve rounded", "ft-tve"),
            ("blend of the rounded ft-tve", "blend"),
            ("agg-hgb rounded", "agg-hgb"),
            ("blend rounded", "blend"),
        ):
            d = np.array(per_arm[rounded]) - np.array(per_arm[raw])
            se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
            differences[f"{rounded} - {raw}"] = {"mean": float(d.mean()), "paired_se": se}
        result[task] = {
            "seeds": seeds,
            "mae": per_arm,
            "mean": {k: float(np.mean(v)) for k, v in per_arm.items()},
            "differences": differences,
        }
    return result


def markdown(result: dict[str, Any]) -> str:
    tasks = list(result["tasks"])
    names = list(next(iter(result["tasks"].values()))["mean"])
    lines = [
        f"Integer predictions, {result['split']} MAE, mean over seeds "
        f"(blend weight {result['blend_weight']} on the network).",
        "",
        "| method | " + " | ".join(f"`{t}`" for t in tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for name in names:
        cells = [f"{result['tasks'][t]['mean'][name]:.4f}" for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences over seeds (negative: rounding is better), ± SE:", ""]
    for t in tasks:
        parts = [
            f"{k} {v['mean']:+.4f} ± {v['paired_se']:.4f}"
            for k, v in result["tasks"][t]["differences"].items()
            if v["paired_se"] is not None
        ]
        lines.append(f"- `{t}`: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", required=True, help="an .npz of --save-scores")
    parser.add_argument("--blend-weight", type=float, default=0.3)
    parser.add_argument("--test", action="store_true", help="score test instead of val")
    parser.add_argument("--out-dir", default=str(HERE / "results" / "counts"))
    parser.add_argument("--name", default="integer_output")
    args = parser.parse_args()

    split = "test" if args.test else "val"
    with np.load(args.scores) as scores:
        tasks = measure(scores, split, args.blend_weight)
    if not tasks:
        raise SystemExit(
            f"{args.scores} holds no regression task with integer labels and saved ft-tve and "
            "agg-hgb scores; run bench_quality_synthetic.py --count-tasks --save-scores first."
        )
    result = {
        "benchmark": "bench_integer_output",
        "scores": str(args.scores),
        "split": split,
        "blend_weight": args.blend_weight,
        "tasks": tasks,
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{args.name}_test" if args.test else args.name
    write_result(out_dir, name, result, markdown(result))


if __name__ == "__main__":
    main()
