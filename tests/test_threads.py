"""Thread budgets: n_jobs resolution, scoped limits that restore, and joblib workers."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_info

from sktve._threads import (
    available_cores,
    current_thread_budget,
    limit_threads,
    resolve_n_threads,
)


def _openmp_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]


def test_resolve_follows_scikit_learn_convention(monkeypatch):
    monkeypatch.setattr("sktve._threads.available_cores", lambda: 4)
    assert resolve_n_threads(None) == 1
    assert resolve_n_threads(-1) == 4
    assert resolve_n_threads(-2) == 3
    assert resolve_n_threads(-10) == 1
    assert resolve_n_threads(2) == 2
    assert resolve_n_threads(64) == 4  # more threads than cores only spin
    assert resolve_n_threads(np.int64(3)) == 3


@pytest.mark.parametrize("bad", [0, 1.5, "2", True])
def test_resolve_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="n_jobs"):
        resolve_n_threads(bad)


def test_environment_limits_cap_the_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    assert resolve_n_threads(-1) == 1


def test_limit_threads_sets_and_restores_every_pool():
    before_torch = torch.get_num_threads()
    before_omp = _openmp_threads()
    with limit_threads(1) as n:
        assert n == 1
        assert torch.get_num_threads() == 1
        assert all(t == 1 for t in _openmp_threads())
        assert current_thread_budget() == 1
    assert torch.get_num_threads() == before_torch
    assert _openmp_threads() == before_omp


def test_limit_threads_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), limit_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def _worker_budget(_: int) -> int:
    return resolve_n_threads(-1)


def test_joblib_workers_get_their_share_of_the_cores():
    cores = available_cores()
    n_workers = 2
    budgets = joblib.Parallel(n_jobs=n_workers, backend="loky")(
        joblib.delayed(_worker_budget)(i) for i in range(n_workers)
    )
    assert all(1 <= b <= max(1, cores // n_workers) for b in budgets)


def test_pretrainer_runs_in_its_budget_and_restores(small_db, monkeypatch):
    from sktve import TVEPretrainer
    from sktve.graph.sampler import TemporalNeighborSampler

    seen: list[int] = []
    original = TemporalNeighborSampler.sample

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TemporalNeighborSampler, "sample", spy)
    X = pd.DataFrame({"customer_id": np.arange(20), "timestamp": pd.Timestamp("2021-06-01")})
    torch.set_num_threads(2)
    try:
        tve = TVEPretrainer(
            database=small_db,
            entity_table="customers",
            window="30D",
            max_epochs=1,
            steps_per_epoch=2,
            embedding_dim=8,
            random_state=0,
            n_jobs=1,
        )
        tve.fit(X)
        tve.transform(X)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
