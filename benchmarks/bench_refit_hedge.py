"""The cut refit, alone or averaged with the model it refits, on the backtest's saved scores.

``sktve run --rows cut`` chooses its model on val, then fits it again with pre-training
through the test timestamp (``pretrain_until``), since the years between the training rows
and the cut hold unlabelled data. Val cannot judge that refit (val lies inside the added
years), so ``bench_pretrain_horizon.py`` judges it on a backtest one val-test gap earlier.
This script reads that backtest's per-row val-cut scores (``--save-scores``) and scores
three ways to predict: the model as chosen (``default``: pre-trained up to its training
rows), its refit alone (``refit``: the main job's way until 2026-12-08), and their mean
(``hedge``: positive-class probabilities or predictions averaged, as
:func:`sktve.run.hedge` does). Both models are fitted anyway, so the hedge costs no
fitting. ``--round-integers`` rounds the mean again where both members answer in integers
(the rule's first definition; rounding a half to the even integer picks a member blindly).

    python benchmarks/bench_pretrain_horizon.py --relf1 ../shared/data/rel-f1 --model embed \\
        --seeds 0,1,2 --save-scores relf1_embed.npz --name relf1_embed
    python benchmarks/bench_refit_hedge.py --runs ../shared/data/rel-f1=relf1_embed.npz \\
        --name refit_hedge_embed

``--runs`` takes ``FOLDER=SCORES`` pairs: the RelBench folder (for each task's type) and the
scores that the backtest saved for it. Writes ``<out-dir>/<name>.json`` and ``.md``: the
3-seed mean of the val-cut metric per task and way, and the hedge minus each of the others,
paired over seeds (mean and standard error).
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

WAYS = ("default", "refit", "hedge")


def hedge(first: np.ndarray, second: np.ndarray, round_integers: bool = False) -> np.ndarray:
    """The mean of two models' scores; with ``round_integers``, rounded again when both
    are all integers."""
    mean = (first + second) / 2.0
    integers = np.all(first == np.rint(first)) and np.all(second == np.rint(second))
    return np.rint(mean) if round_integers and integers else mean


def metric(binary: bool, y: np.ndarray, scores: np.ndarray) -> float:
    """AUROC x 100 for binary tasks (RelBench's ROC AUC), MAE otherwise."""
    from sklearn.metrics import roc_auc_score

    if binary:
        return 100.0 * float(roc_auc_score(y, scores))
    return float(np.mean(np.abs(y - scores)))


def task_ways(
    scores: Any, task: str, binary: bool, view: str, round_integers: bool = False
) -> dict[str, dict[int, float]]:
    """Way -> seed -> the metric of the backtest's ``view`` for one task."""
    y = scores[f"{task}|y|val"]
    seeds = sorted(
        int(key.split("|")[2])
        for key in scores.files
        if key.startswith(f"{task}|backtest_default|") and key.endswith(f"|{view}")
    )
    found: dict[str, dict[int, float]] = {way: {} for way in WAYS}
    for seed in seeds:
        default = scores[f"{task}|backtest_default|{seed}|{view}"]
        refit = scores[f"{task}|backtest_through_cut|{seed}|{view}"]
        for way, values in zip(
            WAYS, (default, refit, hedge(default, refit, round_integers)), strict=True
        ):
            found[way][seed] = metric(binary, y, values)
    return found


def paired(first: dict[int, float], second: dict[int, float]) -> tuple[float, float]:
    """Mean and standard error over seeds of ``first - second``."""
    differences = np.array([first[seed] - second[seed] for seed in first])
    se = differences.std(ddof=1) / np.sqrt(len(differences)) if len(differences) > 1 else 0.0
    return float(differences.mean()), float(se)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, metavar="FOLDER=SCORES")
    parser.add_argument("--view", default="val_cut", help="the backtest's view: val_cut or val")
    parser.add_argument(
        "--round-integers",
        action="store_true",
        help="round the hedge where both members answer in integers",
    )
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="refit_hedge")
    args = parser.parse_args()

    import relbench

    rows, results = [], {}
    for pair in args.runs:
        folder, path = pair.split("=", 1)
        dataset = relbench.load_dataset(folder)
        scores = np.load(path)
        tasks = sorted({key.split("|")[0] for key in scores.files if "|backtest_" in key})
        for task in tasks:
            binary = dataset.load_task(task).task_type.value == "binary_classification"
            found = task_ways(scores, task, binary, args.view, args.round_integers)
            means = {way: float(np.mean(list(found[way].values()))) for way in WAYS}
            versus = {other: paired(found["hedge"], found[other]) for other in WAYS[:2]}
            # "better": higher AUROC, lower MAE.
            sign = 1.0 if binary else -1.0
            results[task] = {
                "metric": "roc_auc_x100" if binary else "mae",
                "seeds": {way: found[way] for way in WAYS},
                "mean": means,
                "hedge_minus": {k: {"mean": m, "se": s} for k, (m, s) in versus.items()},
                "hedge_better_than": {k: sign * m > 0 for k, (m, _) in versus.items()},
                "scores": path,
            }
            rows.append(
                f"| {task} | "
                + " | ".join(f"{means[way]:.4f}" for way in WAYS)
                + " | "
                + " | ".join(f"{m:+.4f} ± {s:.4f}" for m, s in versus.values())
                + " |"
            )
    table = (
        f"Backtest {args.view}, mean over seeds (AUROC x 100 or MAE).\n\n"
        "| task | default | refit | hedge | hedge - default | hedge - refit |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    write_result(
        Path(args.out_dir),
        args.name,
        {
            "benchmark": "bench_refit_hedge",
            "view": args.view,
            "round_integers": args.round_integers,
            "results": results,
        },
        table,
    )


if __name__ == "__main__":
    main()
