"""Progress output for long steps: a bar on a terminal, plain lines everywhere else.

Logs (CI, ``nohup``, notebooks' captured output, ``sktve run > log``) must stay readable:
there a progress bar's carriage returns become hundreds of lines, so long steps print one
summary line when done instead (training prints one line per epoch either way).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["interactive", "progress", "report", "timed_step"]


def interactive() -> bool:
    """Whether progress bars can redraw in place (stderr, where tqdm writes, is a terminal)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress(iterable: Iterable[Any], verbose: bool, **tqdm_kwargs: Any) -> Iterable[Any]:
    """``iterable`` with a tqdm bar when ``verbose`` and on a terminal, else unchanged."""
    if not verbose or not interactive():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **tqdm_kwargs)


def report(verbose: bool, message: str) -> None:
    """One ``[sktve]`` line on stdout, flushed (so it shows in logs as it happens)."""
    if verbose:
        print(f"[sktve] {message}", flush=True)


@contextmanager
def timed_step(verbose: bool, message: str) -> Iterator[dict[str, Any]]:
    """Report ``message ... done in N s`` after the block; the block may add ``detail``."""
    started = time.perf_counter()
    info: dict[str, Any] = {"detail": ""}
    yield info
    seconds = time.perf_counter() - started
    detail = f" ({info['detail']})" if info["detail"] else ""
    report(verbose, f"{message}{detail} in {seconds:.1f}s")
