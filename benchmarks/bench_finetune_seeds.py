"""How much of a val comparison is fine-tuning noise, and what averaging fine-tuning runs buys.

Two settings compared on val with 3 seeds differ by a fraction of a point; this script
measures how much a val score moves when only the fine-tuning's random stream changes
(head initialisation, batch order, dropout) while the pre-trained encoder, the rows and
the aggregates stay the same. Its input is several runs of a quality benchmark that differ
only in the fine-tuning ``random_state``, each with ``--save-scores``::

    for rs in base 1000 2000; do   # base: the benchmark's own seeds
      FT=$([ $rs = base ] && echo '{}' || echo "{\\"random_state\\": $rs}")
      python benchmarks/bench_quality_relf1.py --rows both --torch-threads 1 \\
          --methods agg-hgb,ft-tve --ft-params "$FT" --name ens_rel_$rs \\
          --save-scores ens_rel_$rs.npz
    done
    python benchmarks/bench_finetune_seeds.py \\
        --runs ens_rel_base.json=ens_rel_base.npz ens_rel_1000.json=ens_rel_1000.npz \\
               ens_rel_2000.json=ens_rel_2000.npz --name finetune_seeds_relf1

For every (task, pre-training seed) it scores, on val only: the fine-tuned network of each
run, the blend ``w * network + (1 - w) * agg-hgb`` (``--blend-weights``: the benchmarks'
grid, best on val, or one fixed weight), and the same two for the mean of the runs'
predictions (an ensemble of fine-tuning runs on one encoder). Reported per task: the
standard deviation across runs (pooled over seeds), the standard error it implies for the
difference of two 3-seed means, and the ensemble's gain over the mean single run. Writes
``<out-dir>/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_blend_rules import grid_curve, load_cases, score  # noqa: E402
from bench_quality_relf1 import blend_weights  # noqa: E402


def member_scores(
    members: list[dict[str, Any]], weights: np.ndarray
) -> dict[str, list[float] | float]:
    """Val scores (higher is better) of each run and of the runs' mean, alone and blended."""
    metric, y, agg = members[0]["metric"], members[0]["y_val"], members[0]["b_val"]
    networks = [m["a_val"] for m in members]
    mean_network = np.mean(networks, axis=0)

    def blended(a: np.ndarray) -> float:
        return float(grid_curve(metric, y, a, agg, weights).max())

    return {
        "network": [score(metric, y, a) for a in networks],
        "blend": [blended(a) for a in networks],
        "ensemble_network": score(metric, y, mean_network),
        "ensemble_blend": blended(mean_network),
        "aggregates": score(metric, y, agg),
    }


def summarise(
    cases: list[dict[str, Any]], n_runs: int, weights: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Per task: run-to-run spread and the ensemble's gain, in the metric's own units."""
    grouped: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for case in cases:
        grouped[case["task"], case["seed"]].append(case)
    summary: dict[str, dict[str, Any]] = {}
    for task in sorted({task for task, _ in grouped}):
        per_seed = {}
        for (name, seed), members in sorted(grouped.items()):
            if name != task:
                continue
            if len(members) != n_runs:
                raise SystemExit(f"{task} seed {seed}: {len(members)} of {n_runs} runs hold it")
            per_seed[seed] = member_scores(members, weights)
        metric = grouped[task, next(iter(per_seed))][0]["metric"]
        # AUROC x 100 and MAE as the quality benchmarks print them; signs back to "as is".
        unit, sign = (100.0, 1.0) if metric == "roc_auc" else (1.0, -1.0)
        entry: dict[str, Any] = {"metric": metric, "seeds": sorted(per_seed)}
        for part in ("network", "blend"):
            runs = np.array([per_seed[s][part] for s in per_seed]) * unit
            sd = float(np.sqrt(np.mean(np.var(runs, axis=1, ddof=1))))
            single = float(np.mean(runs))
            ensemble = float(np.mean([per_seed[s][f"ensemble_{part}"] for s in per_seed])) * unit
            entry[part] = {
                "sd_across_runs": round(sd, 4),
                "se_of_3_seed_difference": round(sd * np.sqrt(2 / 3), 4),
                "mean_single_run": round(sign * single, 4),
                "ensemble": round(sign * ensemble, 4),
                "ensemble_gain": round(ensemble - single, 4),
            }
        # Mean over seeds: on the synthetic schemas every seed draws its own database.
        aggregates = np.mean([per_seed[s]["aggregates"] for s in per_seed])
        entry["aggregates"] = round(float(sign * unit * aggregates), 4)
        summary[task] = entry
    return summary


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Val only. {result['n_runs']} fine-tuning runs per (task, pre-training seed), seeds "
        f"{result['seeds']}; AUROC x 100 or MAE. SD: across runs on one encoder (pooled over "
        "seeds); SE: of the difference of two 3-seed means from fine-tuning noise alone; gain: "
        "the runs' mean prediction against the mean single run (positive = better). Blend "
        "weight on the network: "
        + (
            "the best of 0, 0.1, ..., 1 on val."
            if result["blend_weights"] == "grid"
            else f"{result['blend_weights']}, fixed."
        ),
        "",
        "| task | network SD | network SE | blend SD | blend SE | single blend | "
        "ensemble blend | blend gain | network gain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, e in result["summary"].items():
        n, b = e["network"], e["blend"]
        lines.append(
            f"| {task} | {n['sd_across_runs']:.3f} | {n['se_of_3_seed_difference']:.3f} | "
            f"{b['sd_across_runs']:.3f} | {b['se_of_3_seed_difference']:.3f} | "
            f"{b['mean_single_run']:.3f} | {b['ensemble']:.3f} | {b['ensemble_gain']:+.3f} | "
            f"{n['ensemble_gain']:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="RESULT.json=SCORES.npz of runs that differ only in the fine-tuning seed",
    )
    parser.add_argument("--network", default="ft-tve")
    parser.add_argument("--aggregates", default="agg-hgb")
    parser.add_argument(
        "--blend-weights",
        default="grid",
        help="as the quality benchmarks: 'grid' (0, 0.1, ..., 1, best on val) or a fixed "
        "weight such as 0.3 (what bench_quality_synthetic.py --blend-weights 0.3 blends)",
    )
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="finetune_seeds")
    args = parser.parse_args()
    weights = blend_weights(args.blend_weights)
    if len(args.runs) < 2:
        parser.error("give at least two runs: the spread needs two fine-tuning streams")
    cases = load_cases(args.runs, args.network, args.aggregates)
    if not cases:
        raise SystemExit(f"no run holds val scores of both {args.network} and {args.aggregates}")
    result = {
        "benchmark": "bench_finetune_seeds",
        "runs": [spec.split("=")[0] for spec in args.runs],
        "n_runs": len(args.runs),
        "seeds": sorted({case["seed"] for case in cases}),
        "network": args.network,
        "aggregates": args.aggregates,
        "blend_weights": args.blend_weights,
        "protocol": "val only; blend weight: the best of --blend-weights on val",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "summary": summarise(cases, len(args.runs), weights),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{args.name}.md").write_text(table)
    print(table)
    print(f"wrote {out / args.name}.json and .md")


if __name__ == "__main__":
    main()
