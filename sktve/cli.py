"""The ``sktve`` command: ``info``, ``run`` and ``demo``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["main"]

SYNTHETIC = "synthetic"
# Source names written on the fly: the embedded synthetic database (the e-commerce shop)
# and the other synthetic schemas (sktve.datasets.SYNTHETIC_SCHEMAS), each at its
# default size and random_state=0. A folder of the same name in the working directory
# wins: it is what the user pointed at.
SYNTHETIC_SOURCES = {SYNTHETIC: "ecommerce", "library": "library", "bank": "bank"}
SOURCE_HELP = "RelBench folder, RelBench name, or 'synthetic', 'library' or 'bank'"
ROWS_HELP = (
    "cut: the database as RelBench hands it to models, rows up to the test timestamp "
    "(default); all: every row of the folder, each feature still reading only rows at or "
    "before its row's time"
)


@contextmanager
def _resolved_source(source: str, workdir: Path | None = None) -> Iterator[str]:
    """The source as a RelBench folder or name; a synthetic schema's name
    (:data:`SYNTHETIC_SOURCES`) is written for the block.

    With ``workdir`` the synthetic folder is written there and kept (next to the saved
    pipeline that refers to it); otherwise into a temporary folder removed afterwards.
    """
    if source not in SYNTHETIC_SOURCES or Path(source).exists():
        yield source
        return
    from sktve.datasets import SYNTHETIC_SCHEMAS

    write = SYNTHETIC_SCHEMAS[SYNTHETIC_SOURCES[source]]

    def written(root: Path) -> str:
        path = root / source
        if not (path / "manifest.yaml").exists():
            write(path, random_state=0)
        return str(path)

    if workdir is not None:
        yield written(Path(workdir))
        return
    with tempfile.TemporaryDirectory(prefix="sktve-synthetic-") as root:
        yield written(Path(root))


def _task_lines(dataset: Any) -> list[str]:
    from relbench.manifest import TaskManifest

    try:
        names = dataset.get_task_names()
    except OSError:  # hosted task listing needs the hub
        names = []
    lines = [f"  tasks ({len(names)}):" if names else "  tasks: none found"]
    for name in names:
        manifest_path = Path(dataset.dataset_dir) / "tasks" / name / "manifest.yaml"
        if not manifest_path.exists():
            lines.append(f"    {name}")
            continue
        task = TaskManifest.load(manifest_path)
        lines.append(
            f"    {name:<24}{task.task_type} on {task.entity_table}.{task.entity_col}, "
            f"target {task.target_col}, window {task.timedelta}"
        )
    return lines


def _rows_line(dataset: Any, rows: str, kept: int) -> str:
    full = dataset.get_db(upto_test_timestamp=False)
    n_full = sum(len(table.df) for table in full.table_dict.values())
    later = (
        n_full - kept
        if rows == "cut"
        else n_full
        - sum(len(table.df) for table in full.upto(dataset.test_timestamp).table_dict.values())
    )
    if rows == "cut":
        return (
            f"  rows: cut at the test timestamp {dataset.test_timestamp} (RelBench's "
            f"protocol): {later:,} of {n_full:,} rows lie later and were removed "
            "(--rows all keeps them)"
        )
    return (
        f"  rows: all {n_full:,}; {later:,} lie after the test timestamp "
        f"{dataset.test_timestamp} (--rows cut removes them, as RelBench does)"
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from sktve.database import load_database, open_relbench_dataset

    rows = "all" if args.all_rows else args.rows
    with _resolved_source(args.source) as source:
        dataset = open_relbench_dataset(source)
        db = load_database(dataset, upto_test_timestamp=rows == "cut")
        print(db.describe())
        print()
        print(_rows_line(dataset, rows, db.num_rows()))
        print("\n".join(_task_lines(dataset)))
    print(f"\n  fingerprint {db.fingerprint}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from sktve.run import check_out_folder, run_task

    out = Path(args.out) if args.out else None
    if out is not None:
        # Before the synthetic data is written or anything is trained.
        check_out_folder(out, force=args.force)
    with _resolved_source(args.dataset, out) as source:
        run_task(
            source,
            args.task,
            model=args.model,
            head=args.head,
            out=out,
            force=args.force,
            rows=args.rows,
            pretrain_until=args.pretrain_until,
            random_state=args.random_state,
            max_epochs=args.max_epochs,
            verbose=not args.quiet,
            n_jobs=args.threads,
            pretrainer_params={"n_workers": args.workers} if args.workers > 1 else None,
        )
    if out is None and not args.quiet:
        print("[sktve] nothing saved; pass --out DIR to keep the fitted pipeline and metrics")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    # The demo is `run` on the embedded synthetic database and its churn task.
    args.dataset, args.task = SYNTHETIC, "customer-churn"
    return _cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sktve",
        description="Task Vector Estimation pre-training for relational databases.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser(
        "info",
        help="describe a database: tables, columns, keys, time ranges, schema graph, tasks",
        description="Describe a database. SOURCE is a RelBench 3 folder, a RelBench dataset "
        "name, or 'synthetic' for the embedded synthetic database ('library' and 'bank': "
        "the other synthetic schemas).",
    )
    info.add_argument("source", help=SOURCE_HELP)
    info.add_argument("--rows", choices=("cut", "all"), default="cut", help=ROWS_HELP)
    # The earlier spelling of --rows all.
    info.add_argument("--all-rows", action="store_true", help=argparse.SUPPRESS)
    info.set_defaults(func=_cmd_info)

    for name, helptext in (
        ("run", "fit a model on a RelBench task's training rows, report val and test"),
        ("demo", "the same as run, end to end on the embedded synthetic database"),
    ):
        cmd = sub.add_parser(name, help=helptext, description=helptext)
        if name == "run":
            cmd.add_argument("--dataset", required=True, help=SOURCE_HELP)
            cmd.add_argument("--task", required=True, help="task name, e.g. driver-top3")
        cmd.add_argument(
            "--model",
            default="auto",
            choices=["auto", "embed", "finetune", "blend"],
            help="embed: frozen TVE embeddings and a head chosen on val; finetune: the "
            "TVE-pre-trained network fine-tuned on the labels; blend: that network averaged "
            "(weight 0.3) with AggregateFeatures and a head chosen on val; auto (default): "
            "all three, keeping the best on val",
        )
        cmd.add_argument(
            "--head",
            default="hgb",
            choices=["logistic", "hgb", "lightgbm", "skorch"],
            help="head grid on the aggregates (blend) and the embeddings (embed); auto uses "
            "it for both; finetune needs none (default: hgb)",
        )
        cmd.add_argument(
            "--rows",
            choices=("cut", "all"),
            default="cut",
            help=ROWS_HELP + "; with cut, rows after the test timestamp are featurised as "
            "of it (as_of)",
        )
        cmd.add_argument(
            "--pretrain-until",
            choices=("train", "test", "both"),
            default=None,
            help="how far the pre-training of the model scored on test reads: 'train' (the "
            "training rows' horizon, as for the models compared on val), 'test' (refit the "
            "chosen model with pre-training up to the test timestamp, learning from the "
            "unlabelled years before it) or 'both' (that refit averaged with the chosen "
            "model) (default: test with --rows cut, train with all)",
        )
        cmd.add_argument(
            "--out",
            default=None,
            help="folder for the fitted pipeline and metrics.json (default: save nothing)",
        )
        cmd.add_argument("--force", action="store_true", help="overwrite results already in --out")
        cmd.add_argument("--random-state", type=int, default=0)
        cmd.add_argument(
            "--max-epochs", type=int, default=None, help="pre-training epochs (default: auto)"
        )
        cmd.add_argument(
            "--threads",
            type=int,
            default=None,
            help="CPU threads for pre-training and heads (default: 1, which stays fast on a "
            "busy machine; -1: every core)",
        )
        cmd.add_argument(
            "--workers",
            type=int,
            default=1,
            help="data-parallel pre-training over this many processes, each with "
            "max(1, threads // workers) threads (default: 1; under torchrun, leave 1)",
        )
        cmd.add_argument("--quiet", action="store_true", help="no progress output")
        cmd.set_defaults(func=_cmd_run if name == "run" else _cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sktve`` console script."""
    # Nothing sktve does should reach for the network at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        print(f"sktve {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
