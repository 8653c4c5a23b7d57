"""The ``sktve`` command: ``info``, ``run`` and ``demo``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

SYNTHETIC = "synthetic"


def _resolve_source(source: str, workdir: Path | None = None) -> str:
    """Turn the ``synthetic`` keyword into a freshly written RelBench folder."""
    if source != SYNTHETIC:
        return source
    from sktve.datasets import make_synthetic_dataset

    root = workdir or Path(tempfile.mkdtemp(prefix="sktve-synthetic-"))
    path = root / "synthetic"
    if not (path / "manifest.yaml").exists():
        make_synthetic_dataset(path, random_state=0)
    return str(path)


def _cmd_info(args: argparse.Namespace) -> int:
    from sktve.database import load_database

    source = _resolve_source(args.source)
    db = load_database(source, upto_test_timestamp=not args.all_rows)
    print(db.describe())
    print(f"\n  fingerprint {db.fingerprint}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from sktve.run import run_task

    out = Path(args.out) if args.out else None
    run_task(
        _resolve_source(args.dataset, out),
        args.task,
        head=args.head,
        out=out,
        random_state=args.random_state,
        max_epochs=args.max_epochs,
        verbose=not args.quiet,
        n_jobs=args.threads,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    # The demo is `run` on the embedded synthetic database and its churn task.
    args.dataset, args.task = SYNTHETIC, "customer-churn"
    args.out = args.out or tempfile.mkdtemp(prefix="sktve-demo-")
    return _cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sktve",
        description="Task Vector Estimation pre-training for relational databases.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser(
        "info",
        help="describe a database: tables, rows, keys, time ranges, schema graph",
        description="Describe a database. SOURCE is a RelBench 3 folder, a RelBench dataset "
        "name, or 'synthetic' for the embedded synthetic database.",
    )
    info.add_argument("source", help="RelBench folder, RelBench name, or 'synthetic'")
    info.add_argument(
        "--all-rows",
        action="store_true",
        help="keep rows after the test timestamp (RelBench sources are cut there by default)",
    )
    info.set_defaults(func=_cmd_info)

    for name, helptext in (
        ("run", "pre-train on a RelBench task, fit a head on train, report val and test"),
        ("demo", "the same as run, end to end on the embedded synthetic database"),
    ):
        cmd = sub.add_parser(name, help=helptext, description=helptext)
        if name == "run":
            cmd.add_argument(
                "--dataset", required=True, help="RelBench folder, name, or 'synthetic'"
            )
            cmd.add_argument("--task", required=True, help="task name, e.g. driver-top3")
        cmd.add_argument(
            "--head",
            default="hgb",
            choices=["logistic", "hgb", "lightgbm", "skorch"],
            help="downstream model on the embeddings (default: hgb)",
        )
        cmd.add_argument("--out", default=None, help="folder for the fitted pipeline and metrics")
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
        cmd.add_argument("--quiet", action="store_true", help="no progress output")
        cmd.set_defaults(func=_cmd_run if name == "run" else _cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sktve`` console script."""
    # Nothing sktve does should reach for the network at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"sktve {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
