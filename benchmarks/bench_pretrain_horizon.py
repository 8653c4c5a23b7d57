"""How far pre-training should read: up to the training rows, or up to the declared cut.

Pre-training is self-supervised: its targets are what each entity does in the next window,
read from the database, with no labels. By default ``TVEPretrainer`` pre-trains at cutoffs
up to the last time of the rows it is fitted on (a task's training rows), so under
RelBench's cut protocol on rel-f1 the encoder has seen nothing of 2005-2010, although the
database holds those years and test rows start in 2010. With ``pretrain_until`` at the cut
("through the cut") it pre-trains at further cutoffs, one window apart, up to the cut and
nothing after, so test rows (at or after the cut) stay time-correct, and the estimator
fine-tunes that encoder on the training rows as usual.

Val cannot judge that directly (val rows lie inside the pre-training period), so the
choice is made on a backtest that moves the whole situation one gap (test - val timestamp)
earlier: fine-tuning rows whose labels end by ``B = val - (test - val)``, the val rows
featurised as of the val timestamp (the "val cut"), and the encoder pre-trained through
``B`` (the default's situation at test) or through the val timestamp (the new one). The
same backtest scores the val rows at their own times too (the all-rows protocol's mirror).
With ``--test`` each seed then fits both encoders on the real training rows and scores the
test rows as of the cut and at their own times (the real protocols), once. ``--model``:
the network fine-tuned from the encoder (default) or frozen embeddings with sktve's HGB
grid (``embed``).

    python benchmarks/bench_pretrain_horizon.py --relf1 ../shared/data/rel-f1 \
        --tasks driver-top3 --seeds 0,1,2 --test

Writes ``<out-dir>/<name>.json``; prints val only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def measure_task(
    dataset: Any,
    database: Any,
    task_name: str,
    seeds: list[int],
    test: bool,
    backtest: bool = True,
    scores_out: dict[str, np.ndarray] | None = None,
    model: str = "finetune",
) -> dict[str, Any]:
    """Backtest (val) and, with ``test``, the real protocols, per seed and encoder.

    With ``scores_out``, the per-row scores go there under ``"{task}|{encoder}|{seed}|{view}"``
    (the backtest's under ``"{task}|backtest_{encoder}|{seed}|{view}"``) and the labels under
    ``"{task}|y|{split}"``. Frozen embeddings save the scores of the head that the default
    encoder's fresh val view chose, for both encoders (the main job's refit keeps the head).
    ``model``: ``"finetune"`` (the network fine-tuned from the encoder) or ``"embed"``
    (frozen embeddings and sktve's HGB grid; each view scores the grid's best head on
    that view, for both encoders alike, and ``"{view}_main_job_head"`` the head that the
    default encoder's fresh val view chose, kept for the refit, as the main job does).
    """
    from bench_stale_training import featurise_rows, task_score

    from sktve import TVEClassifier, TVERegressor
    from sktve.heads import head_grid
    from sktve.run import predict_scores, task_pretrainer

    task = dataset.load_task(task_name)
    binary = task.task_type.value == "binary_classification"
    tables = {s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")}
    X = {
        s: t.df[[task.entity_col, task.time_col]].reset_index(drop=True) for s, t in tables.items()
    }
    y = {s: t.df[task.target_col].to_numpy() for s, t in tables.items()}
    window = pd.Timedelta(task.timedelta)
    val_at, test_at = pd.Timestamp(dataset.val_timestamp), pd.Timestamp(dataset.test_timestamp)
    back_at = val_at - (test_at - val_at)
    # Backtest rows: training rows whose label window ends by the moved val timestamp.
    early = (X["train"][task.time_col] + window <= back_at).to_numpy()
    X_back, y_back = X["train"][early].reset_index(drop=True), y["train"][early]

    def fit_and_score(seed, fit_rows, y_fit, until, views, key=None) -> dict[str, Any]:
        started = time.perf_counter()
        pretrainer = task_pretrainer(database, task, random_state=seed, pretrain_until=until).fit(
            fit_rows
        )
        pretrain_seconds = time.perf_counter() - started
        if model == "embed":
            Z_fit = pretrainer.transform(fit_rows)
            Z = {
                view: pretrainer.transform(featurise_rows(X[split], task.time_col, clip))
                for view, split, clip in views
            }
            entry = {"n_cutoffs": int(len(pretrainer.cutoffs_))}
            head_scores, head_values = [], []  # per head: view -> scores, view -> metric
            for head in head_grid("hgb", binary=binary, random_state=seed):
                head.fit(Z_fit, y_fit)
                head_scores.append({})
                head_values.append({})
                for view, split, _ in views:
                    head_scores[-1][view] = predict_scores(head, Z[view], binary)
                    value = task_score(task, tables[split], head_scores[-1][view])
                    head_values[-1][view] = value
                    best = entry.get(view)
                    if best is None or (value > best if binary else value < best):
                        entry[view] = value
            # As the main job does: the head is chosen on the fresh val rows with the
            # default encoder, and a refit through the cut keeps that head's settings.
            if until is None:
                values = [h["val"] for h in head_values]
                head_pick[seed] = int(np.argmax(values) if binary else np.argmin(values))
            entry["head_pick"] = head_pick[seed]
            for view, _, _ in views:
                entry[f"{view}_main_job_head"] = head_values[head_pick[seed]][view]
                if scores_out is not None and key is not None:
                    scores_out[f"{task_name}|{key}|{seed}|{view}"] = head_scores[head_pick[seed]][
                        view
                    ]
            entry["seconds"] = round(time.perf_counter() - started, 1)
            return entry
        params: dict[str, Any] = {"loss": "absolute_error"} if not binary else {}
        estimator = (TVEClassifier if binary else TVERegressor)(
            database=database,
            entity_table=task.entity_table,
            entity_col=task.entity_col,
            time_col=task.time_col,
            pretrainer=pretrainer,
            random_state=seed,
            **params,
        ).fit(fit_rows, y_fit)
        entry: dict[str, Any] = {
            "pretrain_until": str(pretrainer.boundary_ + window),
            "n_cutoffs": int(len(pretrainer.cutoffs_)),
            "pretrain_seconds": round(pretrain_seconds, 1),
            "finetune_seconds": round(time.perf_counter() - started - pretrain_seconds, 1),
            "best_epoch": estimator.best_epoch_,
        }
        for view, split, clip in views:
            scores = predict_scores(
                estimator, featurise_rows(X[split], task.time_col, clip), binary
            )
            entry[view] = task_score(task, tables[split], scores)
            if scores_out is not None and key is not None:
                scores_out[f"{task_name}|{key}|{seed}|{view}"] = scores
        return entry

    results: dict[str, Any] = {
        "backtest": {"fit_rows_until": str(back_at), "n_fit_rows": int(len(X_back))},
        "runs": [],
    }
    val_views = [("val_cut", "val", val_at), ("val", "val", None)]
    # The real fits' val (at the rows' own times) too: for the default encoder it is the
    # quality benchmark's val, and a blend's weight or a method can be chosen on it.
    test_views = [
        ("val", "val", None),
        ("test_cut", "test", test_at),
        ("test_all_rows", "test", None),
    ]
    if scores_out is not None:
        for split in ("val", "test"):
            scores_out[f"{task_name}|y|{split}"] = y[split]
    head_pick: dict[int, int] = {}  # embed: the default encoder's head, chosen on val
    for seed in seeds:
        for name, until in (("default", None), ("through_cut", val_at)) if backtest else ():
            entry = fit_and_score(seed, X_back, y_back, until, val_views, key=f"backtest_{name}")
            entry.update(seed=seed, encoder=name, protocol="backtest")
            results["runs"].append(entry)
            print(
                task_name,
                "backtest",
                name,
                f"seed {seed}",
                {k: v for k, v in entry.items() if not k.startswith("test")},
                flush=True,
            )
        if not test:
            continue
        for name, until in (("default", None), ("through_cut", test_at)):
            entry = fit_and_score(seed, X["train"], y["train"], until, test_views, key=name)
            entry.update(seed=seed, encoder=name, protocol="real")
            results["runs"].append(entry)
            print(task_name, "real", name, f"seed {seed} fitted (test in the JSON)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relf1", default=os.environ.get("SKTVE_RELF1", "../shared/data/rel-f1"))
    parser.add_argument("--tasks", default="driver-top3,driver-dnf,driver-position")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--test", action="store_true", help="also fit on the real training rows and score test"
    )
    parser.add_argument(
        "--no-backtest", action="store_true", help="only the real fits (with --test)"
    )
    parser.add_argument(
        "--save-scores",
        metavar="PATH",
        help="write the per-row scores of the backtest and the real fits (.npz)",
    )
    parser.add_argument(
        "--model",
        choices=("finetune", "embed"),
        default="finetune",
        help="the fine-tuned network, or frozen embeddings with the HGB grid",
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="pretrain_horizon")
    args = parser.parse_args()

    import relbench
    import torch
    from bench_stale_training import write_results

    from sktve.database import load_database

    torch.set_num_threads(args.torch_threads)
    dataset = relbench.load_dataset(args.relf1)
    # Every row: each view clamps its rows' times, and nothing fitted reads past its rows.
    database = load_database(dataset, upto_test_timestamp=False)
    seeds = [int(s) for s in args.seeds.split(",")]
    scores: dict[str, np.ndarray] | None = {} if args.save_scores else None
    results = {
        task_name: measure_task(
            dataset,
            database,
            task_name,
            seeds,
            args.test,
            not args.no_backtest,
            scores,
            args.model,
        )
        for task_name in args.tasks.split(",")
    }
    write_results(
        args,
        "bench_pretrain_horizon",
        "backtest one gap earlier on val (cut and fresh); test only with --test",
        results,
        scores,
        torch_threads=args.torch_threads,
    )


if __name__ == "__main__":
    main()
