"""Downstream quality on every synthetic schema: TVE methods against AggregateFeatures + HGB.

For every schema in :data:`sktve.datasets.SYNTHETIC_SCHEMAS` (the e-commerce shop the
library was developed on, and the lending library and the bank nobody tuned for), every
task of it and every seed, the seed draws a fresh database (``random_state=seed``) and
seeds every model.
Each method fits on train, chooses what it chooses on val only, and predicts test once.

Methods (``--methods``, comma-separated):

- ``agg-hgb``      AggregateFeatures (``--agg-windows``, ``--agg-hops``) + HistGradientBoosting,
                   the grid of ``sktve.heads.head_grid("hgb")`` chosen on val
- ``tve-hgb``      TVEPretrainer defaults (window = the task's timedelta) + the same HGB grid
- ``tve+agg-hgb``  TVE embeddings and AggregateFeatures side by side + the same HGB grid
- ``ft-tve``       ``TVEClassifier`` / ``TVERegressor`` defaults fine-tuned from the seed's TVE
                   encoder (regression: ``loss="absolute_error"``, the task's metric)
- ``ft-random``    the same from random initialisation (the supervised RDL-style GNN)
- ``ft-tve+agg``   ``ft-tve`` with AggregateFeatures as side features and the HGB that
                   ``agg-hgb`` chose on val as the side estimator
- ``ft-tve|agg-hgb`` w * ``ft-tve`` + (1 - w) * ``agg-hgb`` (probabilities / predictions),
                   w in 0, 0.1, ..., 1 chosen on val

The TVE methods are ``tve-hgb``, ``tve+agg-hgb``, ``ft-tve``, ``ft-tve+agg`` and
``ft-tve|agg-hgb``; per task,
the one with the best val mean is compared with ``agg-hgb`` on test (the target "on every
schema, the best TVE method is not worse than AggregateFeatures + HGB").

Metric: AUROC for binary tasks, MAE for regression (:func:`sktve.run.task_metric`).

    python benchmarks/bench_quality_synthetic.py                # 3 schemas x 2 tasks x 3 seeds
    python benchmarks/bench_quality_synthetic.py --seeds 0      # one seed
    python benchmarks/bench_quality_synthetic.py --quick        # one seed, tiny data, 2 epochs
    python benchmarks/bench_quality_synthetic.py --rows all     # every row, no cut
    python benchmarks/bench_quality_synthetic.py --label-fraction 0.1  # few labels
    python benchmarks/bench_quality_synthetic.py --count-tasks  # + two count regressions

``--label-fraction F``: heads and fine-tuning see the training rows of a random fraction F
of the training entities (drawn with the database's seed); TVE pre-training and
AggregateFeatures' fit, which read no labels, see every training row.

Writes ``benchmarks/results/quality_synthetic.json``, ``quality_synthetic.md`` and
``quality_synthetic_noise.json`` / ``.md`` (standard errors over each split's customers or
members, and paired differences from ``agg-hgb``; ``bench_split_noise.py``)
(``--quick``: under ``benchmarks/results/quick/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine, timed_features  # noqa: E402
from bench_quality_relf1 import (  # noqa: E402
    ScoreLog,
    _cell,
    add_agg_params_argument,
    blend_and_test,
    blend_weights,
    finetune_and_test,
    fit_then_transform,
    heads,
    label_subset,
    select_and_test,
    summarise,
    zero_empty_train_columns,
)

METHODS = (
    "agg-hgb",
    "tve-hgb",
    "tve+agg-hgb",
    "ft-tve",
    "ft-random",
    "ft-tve+agg",
    "ft-tve|agg-hgb",
)
TVE_METHODS = ("tve-hgb", "tve+agg-hgb", "ft-tve", "ft-tve+agg", "ft-tve|agg-hgb")
FINETUNE_METHODS = {
    "ft-tve": ("tve", False),
    "ft-random": ("random", False),
    "ft-tve+agg": ("tve", True),
}
METHOD_LABELS = {
    "agg-hgb": "AggregateFeatures + HGB",
    "tve-hgb": "TVE + HGB",
    "tve+agg-hgb": "TVE + AggregateFeatures + HGB",
    "ft-tve": "fine-tuned from TVE",
    "ft-random": "fine-tuned from random init",
    "ft-tve+agg": "fine-tuned from TVE + AggregateFeatures (side features, HGB start)",
    "ft-tve|agg-hgb": "fine-tuned from TVE, blended with AggregateFeatures + HGB (weight on val)",
}
# Database sizes per schema (keyword arguments of the schema's dataset writer). The
# default run fits the 25-minute budget on one busy core; --quick uses the tiny ones.
SIZES = {
    "ecommerce": {"n_customers": 300, "n_orders": 5000},
    "library": {"n_members": 300, "n_loans": 6000},
    "bank": {"n_accounts": 500, "n_transactions": 10000},  # disputes are rare: more rows
}
QUICK_SIZES = {
    "ecommerce": {"n_customers": 80, "n_orders": 1200},
    "library": {"n_members": 80, "n_loans": 1500},
    "bank": {"n_accounts": 80, "n_transactions": 1500},
}


def count_tasks(schema: str) -> list[dict[str, Any]]:
    """The count regressions ``--count-tasks`` adds to a schema's folder.

    How many orders a shop customer places, or payments an account makes, in the next 30
    days, 0 when none: the schema's own regression manifest (customer-spend,
    account-outflow) with the count query the schema's module keeps beside it, so the rows
    and window are those of the schema's tasks. With the library's member-loans they make
    one integer-valued regression per schema; the library gets none here.
    """
    from sktve.datasets import ORDERS_SQL, synthetic_tasks
    from sktve.synthetic_bank import PAYMENTS_SQL, bank_tasks

    counts = {
        "ecommerce": (
            synthetic_tasks(),
            "customer-spend",
            "customer-orders",
            "n_orders",
            ORDERS_SQL,
        ),
        "bank": (bank_tasks(), "account-outflow", "account-payments", "n_payments", PAYMENTS_SQL),
    }
    if schema not in counts:
        return []
    manifests, base, name, target, sql = counts[schema]
    manifest = next(m for m in manifests if m.name == base)
    return [
        manifest.to_dict()
        | {
            "name": name,
            "target_col": target,
            "sql": sql,
            "description": f"{target} in the next {manifest.timedelta} (0 when none)",
        }
    ]


def best_tve_verdict(summary: dict, runs: list[dict], key: str) -> dict[str, Any] | None:
    """The TVE method with the best val mean on ``key``, against agg-hgb on test."""
    agg = summary.get("agg-hgb", {}).get(key)
    candidates = {m: summary[m][key] for m in TVE_METHODS if key in summary.get(m, {})}
    if agg is None or not candidates:
        return None
    higher = agg["metric"] != "mae"
    sign = 1.0 if higher else -1.0
    best = max(candidates, key=lambda m: sign * candidates[m]["val_mean"])
    # Per-seed paired differences on test, oriented so that positive means TVE is better.
    by_seed = {
        m: {r["seed"]: r["test"] for r in runs if r["task"] == key and r["method"] == m}
        for m in (best, "agg-hgb")
    }
    seeds = sorted(set(by_seed[best]) & set(by_seed["agg-hgb"]))
    diffs = np.array([sign * (by_seed[best][s] - by_seed["agg-hgb"][s]) for s in seeds])
    best_epochs = [
        r["chosen_head"]["best_epoch"]
        for r in runs
        if r["task"] == key and r["method"] == best and "best_epoch" in r["chosen_head"]
    ]
    return {
        "best_tve_method": best,
        # Seeds on which the best TVE method's test score equals agg-hgb's (a fine-tuner
        # that kept its HGB start, best_epoch 0, predicts what agg-hgb predicts).
        "seeds_identical_to_agg_hgb": [s for s in seeds if abs(diffs[seeds.index(s)]) < 1e-9],
        "finetune_best_epochs": best_epochs,
        "chosen_by": "val mean",
        "best_tve_test_mean": candidates[best]["test_mean"],
        "agg_hgb_test_mean": agg["test_mean"],
        "paired_gain_mean": float(diffs.mean()),
        "paired_gain_std": float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0,
        "seeds": seeds,
        # Equal up to float rounding counts as not worse (e.g. a fine-tuner that kept its
        # HGB start and predicts exactly what agg-hgb predicts).
        "not_worse": bool(sign * (candidates[best]["test_mean"] - agg["test_mean"]) >= -1e-9),
    }


def markdown(result: dict[str, Any]) -> str:
    keys = result["task_keys"]
    summary = result["summary"]

    def header_name(key: str) -> str:
        entry = next((summary[m][key] for m in result["methods"] if key in summary.get(m, {})), {})
        return f"{key} ({'MAE ↓' if entry.get('metric') == 'mae' else 'AUROC ↑'})"

    lines = [
        f"Synthetic schemas, mean ± std over seeds {result['seeds']} (AUROC × 100; MAE as is). "
        "Each seed draws a fresh database and seeds every model; choices on val, test "
        "predicted once. Sizes: "
        + "; ".join(f"{s}: {v}" for s, v in result["settings"]["sizes"].items())
        + ". Rows: "
        + ("every row (--rows all)." if "--rows all" in result["settings"]["data"] else "cut."),
        "",
    ]
    for split, title in (("test", "Test"), ("val", "Val (model selection split)")):
        lines += [
            f"{title}:",
            "",
            "| method | " + " | ".join(header_name(k) for k in keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for method in result["methods"]:
            cells = [_cell(summary.get(method, {}).get(k), split) for k in keys]
            lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Best TVE method (by val mean) against AggregateFeatures + HGB on test:", ""]
    for key in keys:
        verdict = result["verdicts"].get(key)
        if verdict is None:
            lines.append(f"- {key}: not compared (agg-hgb or every TVE method missing)")
            continue
        mae = summary["agg-hgb"][key]["metric"] == "mae"
        scale, fmt = (1.0, ".3f") if mae else (100.0, ".2f")
        lines.append(
            f"- {key}: {verdict['best_tve_method']} "
            f"{scale * verdict['best_tve_test_mean']:{fmt}} vs agg-hgb "
            f"{scale * verdict['agg_hgb_test_mean']:{fmt}} "
            f"(paired gain {scale * verdict['paired_gain_mean']:+{fmt}} ± "
            f"{scale * verdict['paired_gain_std']:{fmt}}): "
            + ("**not worse**" if verdict["not_worse"] else "**worse**")
            + (
                f"; identical to agg-hgb on seeds {verdict['seeds_identical_to_agg_hgb']}"
                if verdict.get("seeds_identical_to_agg_hgb")
                else ""
            )
            + (
                f"; fine-tuning best epochs {verdict['finetune_best_epochs']}"
                + (
                    " (0: kept its HGB start)"
                    if verdict["best_tve_method"].endswith("+agg")
                    else ""
                )
                if verdict.get("finetune_best_epochs")
                else ""
            )
        )
    lines += [
        "",
        "Seconds (mean over seeds): fit on train (TVE: pre-training, shared by the methods "
        "using the encoder; ft-*: fine-tuning alone) / transform of val + test / head "
        "selection.",
        "",
        "| method | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for method in result["methods"]:
        cells = []
        for key in keys:
            e = summary.get(method, {}).get(key)
            cells.append(
                "-"
                if not e
                else f"{e['fit_seconds_mean']:.1f} / {e['transform_seconds_mean']:.1f} / "
                f"{e['head_select_seconds_mean']:.1f}"
            )
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    m = result["machine"]
    lines += [
        "",
        f"Total: {result['total_seconds']:.0f} s, {result['settings']['torch_threads']} torch "
        f"thread(s), on {m['cpu_count']} CPUs ({m['processor']}, {m['memory_gib']} GiB); "
        f"load average at the end {m['load_average_at_end']}"
        + (" (of the first run)." if "merged_from" in result else "."),
    ]
    if "merged_from" in result:
        lines += ["", "Merged from " + ", ".join(result["merged_from"]) + " (nothing refitted)."]
    return "\n".join(lines) + "\n"


def write_result(result: dict[str, Any], path: Path) -> str:
    """Set the summary and verdicts from the runs, write ``path`` and its ``.md``; return
    the markdown."""
    result["summary"] = summarise(result["runs"], result["task_keys"], result["methods"])
    result["verdicts"] = {
        key: best_tve_verdict(result["summary"], result["runs"], key) for key in result["task_keys"]
    }
    path.write_text(json.dumps(result, indent=2, default=str))
    text = markdown(result)
    path.with_suffix(".md").write_text(text)
    return text


def render(path: Path) -> None:
    """Recompute the summary and verdicts of a results JSON from its runs; rewrite .md."""
    print(write_result(json.loads(path.read_text()), path))


def merge(paths: list[str], out_path: Path) -> None:
    """One results JSON (and its markdown) from runs of the same settings on other schemas,
    tasks or seeds, e.g. a schema added later: nothing is refitted."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    # Everything but the sizes must match, or the table would mix settings.
    for path, part in zip(paths[1:], parts[1:]):
        for key, value in parts[0]["settings"].items():
            if key != "sizes" and part["settings"].get(key) != value:
                raise SystemExit(f"{path}: settings[{key!r}] differs from {paths[0]}'s")
    result = dict(parts[0])
    result["schemas"] = list(dict.fromkeys(s for part in parts for s in part["schemas"]))
    result["task_keys"] = list(dict.fromkeys(k for part in parts for k in part["task_keys"]))
    result["seeds"] = sorted({s for part in parts for s in part["seeds"]})
    result["methods"] = [m for m in METHODS if any(m in part["methods"] for part in parts)]
    result["settings"] = {
        **parts[0]["settings"],
        "sizes": {k: v for part in parts for k, v in part["settings"]["sizes"].items()},
    }
    runs = [r for part in parts for r in part["runs"]]
    seen = [(r["task"], r["seed"], r["method"]) for r in runs]
    if len(set(seen)) != len(seen):
        raise SystemExit("two parts hold the same (task, seed, method) run")
    result["runs"] = runs
    for key in ("data", "pretraining"):
        result[key] = [r for part in parts for r in part[key]]
    result["machines"] = [part["machine"] for part in parts]
    result["total_seconds"] = round(sum(part["total_seconds"] for part in parts), 1)
    result["merged_from"] = [Path(p).name for p in paths]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    print(write_result(result, out_path))


def main() -> None:
    from sktve.datasets import SYNTHETIC_SCHEMAS, write_tasks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", default=",".join(SYNTHETIC_SCHEMAS))
    parser.add_argument("--tasks", default=None, help="task names (default: every task)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--count-tasks",
        action="store_true",
        help="add a count regression to the shop (customer-orders) and the bank "
        "(account-payments); see count_tasks",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--agg-windows", default="30D,90D,365D")
    parser.add_argument("--agg-hops", type=int, default=2, help="AggregateFeatures max_hops")
    parser.add_argument("--torch-threads", type=int, default=1)
    add_agg_params_argument(parser)
    parser.add_argument(
        "--tve-params",
        type=json.loads,
        default={},
        help="further TVEPretrainer parameters as JSON, e.g. '{\"history_counts\": false}'",
    )
    parser.add_argument(
        "--ft-params",
        type=json.loads,
        default={},
        help="further TVEClassifier / TVERegressor parameters of the ft-* methods as JSON, "
        "e.g. '{\"average_epochs\": 1.0}'",
    )
    parser.add_argument(
        "--ft-classifier-params",
        type=json.loads,
        default={},
        help="further TVEClassifier parameters of the ft-* methods (binary tasks) as JSON, "
        'e.g. \'{"scoring": "roc_auc"}\'',
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every size (entities and fact rows alike, so an entity's history "
        "keeps its length): more val and test rows, less noise in each verdict",
    )
    parser.add_argument(
        "--rows",
        choices=("cut", "all"),
        default="cut",
        help="cut (default): the database up to the test timestamp, test rows featurised "
        "as of it (RelBench's protocol); all: every row, each test row featurised at its "
        "own time",
    )
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        help="heads and fine-tuning learn from the training rows of this random fraction of "
        "the training entities only (drawn with the database's seed); TVE pre-training and "
        "AggregateFeatures' fit, which read no labels, see every training row",
    )
    parser.add_argument("--quick", action="store_true", help="one seed, tiny data, 2 epochs")
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--name", default="quality_synthetic", help="output file stem")
    parser.add_argument(
        "--save-scores", default=None, help="write every method's val/test scores to this .npz"
    )
    parser.add_argument(
        "--blend-weights",
        default="grid",
        help="blend weight on ft-tve: 'grid' (0, 0.1, ..., 1, best on val) or a fixed weight",
    )
    parser.add_argument(
        "--render",
        default=None,
        help="rewrite the summary, verdicts and markdown of a results JSON from its runs "
        "(nothing is refitted)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="results JSONs of the same settings (other schemas, tasks or seeds) to merge "
        "into <out-dir>/<name>.json and .md (nothing is refitted)",
    )
    args = parser.parse_args()
    weights = blend_weights(args.blend_weights)  # a bad value fails now, not after fits
    if args.render:
        render(Path(args.render))
        return
    if args.merge:
        out_dir = Path(args.out_dir) if args.out_dir else HERE / "results"
        merge(args.merge, out_dir / f"{args.name}.json")
        return

    import relbench
    import torch
    from sklearn.base import clone

    from sktve import TVEClassifier, TVERegressor, load_database
    from sktve.aggregates import AggregateFeatures
    from sktve.run import task_pretrainer

    torch.set_num_threads(args.torch_threads)
    schemas = [s for s in args.schemas.split(",") if s]
    unknown = sorted(set(schemas) - set(SYNTHETIC_SCHEMAS))
    if unknown:
        parser.error(f"unknown schemas {unknown}; choose from {', '.join(SYNTHETIC_SCHEMAS)}")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if "ft-tve+agg" in methods and "agg-hgb" not in methods:
        parser.error("ft-tve+agg takes agg-hgb's val-chosen HGB: add agg-hgb")
    if "ft-tve|agg-hgb" in methods and not {"ft-tve", "agg-hgb"} <= set(methods):
        parser.error("ft-tve|agg-hgb blends ft-tve and agg-hgb: add them to --methods")
    task_filter = None if args.tasks is None else set(args.tasks.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = SIZES
    ft_epochs: dict[str, int] = {}
    pretrain_epochs: dict[str, int] = {}
    if args.quick:
        seeds, sizes = seeds[:1], QUICK_SIZES
        ft_epochs = pretrain_epochs = {"max_epochs": 2}
    if args.scale <= 0:
        parser.error(f"--scale must be positive; got {args.scale}")
    sizes = {
        schema: {name: max(1, round(n * args.scale)) for name, n in kwargs.items()}
        for schema, kwargs in sizes.items()
    }
    out_dir = Path(args.out_dir or HERE / "results" / ("quick" if args.quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    agg_windows = args.agg_windows.split(",")
    need_tve = any(m.startswith(("tve", "ft-tve")) for m in methods)
    need_agg = any("agg" in m for m in methods)

    started_all = time.perf_counter()
    runs: list[dict[str, Any]] = []
    pretrain_info: list[dict[str, Any]] = []
    data_info: list[dict[str, Any]] = []
    task_keys: list[str] = []
    label_info: list[dict[str, Any]] = []

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started_all:7.1f}s] {message}", flush=True)

    score_log = ScoreLog(args.save_scores)

    def record(key, schema, task_name, seed, method, cost, outcome):
        score_log.add(key, seed, method, outcome)
        outcome = {k: v for k, v in outcome.items() if k not in ("model", "scores")}
        runs.append(
            {"task": key, "schema": schema, "task_name": task_name, "seed": seed,
             "method": method, **outcome, **cost}
        )  # fmt: skip
        log(
            f"{key} seed {seed} {method:12s} val {outcome['val']:.4f} test {outcome['test']:.4f}"
            f"  fit {cost['fit_seconds']:.1f}s head {outcome['head_select_seconds']:.1f}s"
        )

    workdir = Path(tempfile.mkdtemp(prefix="sktve-bench-synthetic-"))
    for schema in schemas:
        for seed in seeds:
            started = time.perf_counter()
            path = SYNTHETIC_SCHEMAS[schema](
                workdir / f"{schema}-{seed}", random_state=seed, **sizes[schema]
            )
            if args.count_tasks:
                write_tasks(path, count_tasks(schema))
            dataset = relbench.load_dataset(str(path))
            # "cut": the database as RelBench hands it to models, rows up to the test
            # timestamp, featurised as of it; "all": every row (each feature still reads
            # only rows at or before its row's time).
            database = load_database(dataset, upto_test_timestamp=args.rows == "cut")
            as_of = dataset.test_timestamp if args.rows == "cut" else None
            data_seconds = time.perf_counter() - started
            task_names = sorted(p.name for p in (path / "tasks").iterdir())
            data_info.append(
                {
                    "schema": schema,
                    "seed": seed,
                    "rows": {t: database.num_rows(t) for t in database.table_names},
                    "generate_and_write_seconds": round(data_seconds, 2),
                }
            )
            log(f"{schema} seed {seed}: {data_info[-1]}")
            for task_name in task_names:
                if task_filter is not None and task_name not in task_filter:
                    continue
                key = f"{schema}/{task_name}"
                if key not in task_keys:
                    task_keys.append(key)
                task = dataset.load_task(task_name)
                binary = task.task_type.value == "binary_classification"
                tables = {
                    s: task.get_table(s, mask_input_cols=False) for s in ("train", "val", "test")
                }
                cols = [task.entity_col, task.time_col]
                X = {s: t.df[cols].reset_index(drop=True) for s, t in tables.items()}
                y_train = tables["train"].df[task.target_col].to_numpy()
                score_log.labels(f"{key}|{seed}", tables, task)
                X_fit = None  # what reads no labels fits on every training row
                if args.label_fraction is not None:
                    X_fit = X["train"]
                    X, y_train, info = label_subset(
                        X, y_train, task.entity_col, args.label_fraction, seed, binary
                    )
                    label_info.append({"task": key, "seed": seed, **info})
                    log(f"{key} seed {seed}: heads and fine-tuning on {info}")
                log(
                    f"{key} seed {seed}: {len(X['train'])} train / {len(X['val'])} val / "
                    f"{len(X['test'])} test rows, window {task.timedelta}"
                )
                hgb = heads("hgb", binary, seed)
                agg_feats = agg_cost = agg_head = None
                if need_agg:
                    agg = AggregateFeatures(
                        database=database,
                        entity_table=task.entity_table,
                        entity_col=task.entity_col,
                        time_col=task.time_col,
                        window=agg_windows,
                        max_hops=args.agg_hops,
                        as_of=as_of,
                        **args.agg_params,
                    )
                    agg_fit = fit_then_transform(agg, X_fit)
                    agg_feats, agg_cost = timed_features(agg_fit, agg.transform, X)
                    if X_fit is not None:
                        agg_feats = zero_empty_train_columns(agg_feats)
                    if "agg-hgb" in methods:
                        outcome = select_and_test(hgb, agg_feats, y_train, task, tables, binary)
                        agg_head = clone(outcome["model"])
                        agg_outcome = outcome
                        record(key, schema, task_name, seed, "agg-hgb", agg_cost, outcome)
                tve = tve_feats = tve_cost = None
                if need_tve:
                    tve = task_pretrainer(
                        database,
                        task,
                        random_state=seed,
                        as_of=as_of,
                        **pretrain_epochs,
                        **args.tve_params,
                    )
                    tve_fit = fit_then_transform(tve, X_fit)
                    tve_feats, tve_cost = timed_features(tve_fit, tve.transform, X)
                    pretrain_info.append(
                        {
                            "task": key,
                            "seed": seed,
                            "epochs": len(tve.history_),
                            "best_epoch": tve.best_epoch_,
                            "steps": tve.n_steps_,
                            "steps_per_second": round(tve.steps_per_second_, 2),
                            "pretrain_rows": tve.n_pretrain_rows_,
                            **tve_cost,
                        }
                    )
                    log(f"{key} seed {seed}: TVE pre-training {pretrain_info[-1]}")
                    if "tve-hgb" in methods:
                        outcome = select_and_test(hgb, tve_feats, y_train, task, tables, binary)
                        record(key, schema, task_name, seed, "tve-hgb", tve_cost, outcome)
                if "tve+agg-hgb" in methods:
                    both = {s: np.hstack([tve_feats[s], agg_feats[s]]) for s in tve_feats}
                    cost = {
                        k: round(tve_cost[k] + agg_cost[k], 2)
                        for k in ("fit_seconds", "transform_seconds")
                    }
                    cost["peak_rss_gib"] = max(tve_cost["peak_rss_gib"], agg_cost["peak_rss_gib"])
                    outcome = select_and_test(hgb, both, y_train, task, tables, binary)
                    record(key, schema, task_name, seed, "tve+agg-hgb", cost, outcome)
                finetuned: dict[str, tuple[dict, dict]] = {}
                for method, (init, with_agg) in FINETUNE_METHODS.items():
                    if method not in methods:
                        continue
                    params: dict[str, Any] = {
                        "entity_table": task.entity_table,
                        "entity_col": task.entity_col,
                        "time_col": task.time_col,
                        "init": init,
                        "as_of": as_of,
                        "random_state": seed,
                        **ft_epochs,
                    }
                    if init == "tve":
                        params["pretrainer"] = tve  # the fitted encoder, shared
                    if not binary:
                        params["loss"] = "absolute_error"
                    # after the task's defaults, so that these may override any of them
                    params.update(args.ft_params)
                    if binary:
                        params.update(args.ft_classifier_params)
                    if with_agg:
                        params["side_features"] = AggregateFeatures(
                            window=agg_windows, max_hops=args.agg_hops, **args.agg_params
                        )
                        params["side_estimator"] = clone(agg_head)
                    estimator = (TVEClassifier if binary else TVERegressor)(
                        database=database, **params
                    )
                    outcome, cost = finetune_and_test(
                        estimator, X, y_train, task, tables, binary, None
                    )
                    outcome.pop("finetune_history", None)
                    record(key, schema, task_name, seed, method, cost, outcome)
                    finetuned[method] = (outcome, cost)
                if "ft-tve|agg-hgb" in methods:
                    ft_outcome, ft_cost = finetuned["ft-tve"]
                    outcome = blend_and_test(ft_outcome, agg_outcome, task, tables, weights)
                    cost = {
                        k: round(ft_cost[k] + agg_cost[k], 2)
                        for k in ("fit_seconds", "transform_seconds")
                    }
                    cost["peak_rss_gib"] = max(ft_cost["peak_rss_gib"], agg_cost["peak_rss_gib"])
                    record(key, schema, task_name, seed, "ft-tve|agg-hgb", cost, outcome)

    result = {
        "benchmark": "quality_synthetic",
        "schemas": schemas,
        "task_keys": task_keys,
        "seeds": seeds,
        "methods": methods,
        "quick": args.quick,
        "settings": {
            "sizes": {s: sizes[s] for s in schemas},
            "data": "each seed draws a fresh database (random_state=seed) and seeds every "
            "model; "
            + (
                "the database is cut at the test timestamp with as_of there"
                if args.rows == "cut"
                else "every row of the database (--rows all), no as_of"
            )
            + ("; with the count tasks of count_tasks (--count-tasks)" if args.count_tasks else ""),
            "tve": "TVEPretrainer defaults, window = task.timedelta"
            + (", max_epochs=2" if args.quick else "")
            + "".join(f", {k}={v!r}" for k, v in args.tve_params.items()),
            "aggregate_windows": agg_windows,
            "aggregate_max_hops": args.agg_hops,
            "aggregate_params": args.agg_params,
            "heads": "sktve.heads.head_grid('hgb'): learning_rate in (0.03, 0.1) x "
            "max_leaf_nodes in (3, 7, 31), 200 iterations; chosen on val, test predicted once",
            "finetune": "TVEClassifier / TVERegressor defaults (regression loss "
            "absolute_error)"
            + (", max_epochs=2" if args.quick else "")
            + "".join(f", {k}={v!r}" for k, v in args.ft_params.items())
            + "".join(f", classifiers {k}={v!r}" for k, v in args.ft_classifier_params.items())
            + "; ft-tve starts from the seed's fitted TVE encoder; ft-tve+agg adds "
            "AggregateFeatures side features and agg-hgb's val-chosen HGB as side estimator",
            "best_tve": "among " + ", ".join(TVE_METHODS) + ", the best val mean; compared "
            "with agg-hgb's test mean",
            "label_fraction": args.label_fraction,
            "torch_threads": args.torch_threads,
            "head_threads": 1,
            "blend_weights": args.blend_weights,
        },
        "machine": {**machine(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "summary": None,  # set from the runs by write_result
        "verdicts": None,
        "data": data_info,
        "pretraining": pretrain_info,
        **({"labels": label_info} if label_info else {}),
        "runs": runs,
        "total_seconds": round(time.perf_counter() - started_all, 1),
    }
    text = write_result(result, out_dir / f"{args.name}.json")
    score_log.write()
    score_log.write_noise(out_dir, f"{args.name}_noise")
    print(text)
    print(f"wrote {out_dir / args.name}.json and .md", flush=True)


if __name__ == "__main__":
    main()
