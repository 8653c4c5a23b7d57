"""Thread counts chosen on purpose: how many threads sktve's work may use, and a scope for it.

torch's intra-op pool, the OpenMP runtimes (torch's, scikit-learn's HistGradientBoosting)
and BLAS each start one thread per core by default, and their idle threads busy-wait. On a
small machine shared with other work they then compete with each other and with the other
processes, and a fit can run 10-30x slower than on one thread (measured figures:
``docs/user_guide/performance.rst``). Every estimator of sktve therefore takes ``n_jobs``
and runs its fit / transform inside :func:`limit_threads`, which sets all these pools and
restores them afterwards.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["available_cores", "current_thread_budget", "limit_threads", "resolve_n_threads"]

# Environment variables through which a parent process (a joblib/loky worker pool, a job
# scheduler, the user) caps the threads of a process.
_LIMIT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# The budget of the innermost limit_threads block, for pools that are created inside it
# (a DuckDB connection) rather than configured process-wide.
_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("sktve_threads", default=None)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by thread-limit variables.

    joblib's process workers (GridSearchCV's ``n_jobs``) set ``OMP_NUM_THREADS`` to their
    share of the cores, so inside a worker this is that share, not the whole machine.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    for variable in _LIMIT_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            cores = min(cores, int(value))
    return max(1, cores)


def resolve_n_threads(n_jobs: Any) -> int:
    """The number of threads for ``n_jobs``, in scikit-learn's convention.

    ``None`` means 1 (as in scikit-learn), ``-1`` all available cores, ``-2`` all but one,
    and so on; a positive value is capped at the available cores (more threads than cores
    only spin). See :func:`available_cores`.
    """
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer):
        raise ValueError(f"n_jobs must be None or a non-zero integer, got {n_jobs!r}.")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs=0 is not meaningful; use None or 1 for one thread, -1 for all.")
    cores = available_cores()
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return min(n_jobs, cores)


@contextlib.contextmanager
def limit_threads(n_threads: int) -> Iterator[int]:
    """Run a block with torch, OpenMP and BLAS limited to ``n_threads`` threads.

    The previous settings are restored on exit, also when the block raises.

    Parameters
    ----------
    n_threads : int
        From :func:`resolve_n_threads`.

    Yields
    ------
    int
        ``n_threads``.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        with thread_budget(n_threads), threadpool_limits(limits=int(n_threads)):
            yield int(n_threads)
    finally:
        torch.set_num_threads(previous)


def current_thread_budget() -> int:
    """Threads of the innermost :func:`limit_threads` block, else the available cores."""
    budget = _BUDGET.get()
    return available_cores() if budget is None else budget


@contextlib.contextmanager
def thread_budget(n_threads: int) -> Iterator[int]:
    """Set the budget :func:`current_thread_budget` reports, without touching the pools.

    For work split over Python threads (one share each), whose engines size their own
    pools from the budget (DuckDB connections).
    """
    token = _BUDGET.set(max(1, int(n_threads)))
    try:
        yield max(1, int(n_threads))
    finally:
        _BUDGET.reset(token)
