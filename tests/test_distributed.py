"""Data-parallel pre-training (sktve.distributed): 2 CPU ranks against one process."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sktve import TVEPretrainer
from sktve.datasets import make_synthetic_database
from sktve.distributed import (
    context,
    gloo_available,
    rank_seed,
    run_data_parallel,
    shard,
    sharded_backward,
)

pytestmark = pytest.mark.skipif(
    not gloo_available(), reason="torch.distributed with the gloo backend is unavailable"
)

FAST = dict(
    entity_table="customers",
    window="30D",
    embedding_dim=16,
    fanouts=(8, 4),
    max_epochs=3,
    steps_per_epoch=3,
    batch_size=64,
    dropout=0.0,
    random_state=0,
)


def _database():
    return make_synthetic_database(120, 3000, random_state=1)


def _X():
    times = pd.date_range("2021-03-01", periods=6, freq="30D")
    grid = pd.MultiIndex.from_product([times, np.arange(40)], names=["timestamp", "customer_id"])
    return grid.to_frame(index=False)[["customer_id", "timestamp"]]


def _step_gradients(n_rows=64):
    """Gradients of the TVE loss on one batch: in one process, or summed over the ranks."""
    from sktve.encoder_runtime import EncoderSpec, build_encoder, build_graph, build_sampler
    from sktve.graph import GraphFeaturizer
    from sktve.nn.tve import TVEHead, scaled_cosine_terms

    database = _database()
    featurizer = GraphFeaturizer().fit(database, boundary=pd.Timestamp("2021-06-01"))
    spec = EncoderSpec(embedding_dim=16, fanouts=(8, 4), dropout=0.0)
    sampler = build_sampler(build_graph(featurizer, database), spec, 0)
    torch.manual_seed(0)
    encoder = build_encoder(featurizer, spec)
    head = TVEHead(16, 5)
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 120, n_rows)
    times = np.full(n_rows, np.datetime64("2021-06-01", "ns").view(np.int64))
    targets = torch.from_numpy(rng.normal(size=(n_rows, 5)).astype(np.float32))
    inactive = torch.from_numpy(rng.random(n_rows) < 0.3)

    def batch_terms(rows, train):
        batch = sampler.sample("customers", positions[rows], times[rows])
        return scaled_cosine_terms(head(encoder(batch)), targets[rows], inactive[rows], 0.1)

    params = [p for m in (encoder, head) for p in m.parameters()]
    rows = np.arange(n_rows)
    ctx = context()
    if ctx is None:
        loss_sum, weight = batch_terms(rows, True)
        loss = loss_sum / weight.clamp_min(1e-8)
        loss.backward()
        loss_value = float(loss.detach())
    else:
        loss_value = sharded_backward(batch_terms, rows, params, ctx)
    grads = [None if p.grad is None else p.grad.detach().clone().numpy() for p in params]
    if ctx is not None:  # every rank must hold the same summed gradients
        import torch.distributed as dist

        flat = torch.cat(
            [torch.zeros(1)] + [p.grad.reshape(-1) for p in params if p.grad is not None]
        )
        total = flat.clone()
        dist.all_reduce(total)
        assert torch.equal(total, flat * ctx.world)
    return loss_value, grads


def test_shard_cuts_contiguous_pieces():
    rows = np.arange(10) * 3
    pieces = [shard(rows, r, 3) for r in range(3)]
    assert [len(p) for p in pieces] == [3, 3, 4]
    np.testing.assert_array_equal(np.concatenate(pieces), rows)
    assert len(shard(rows[:1], 0, 2)) == 0 and len(shard(rows[:1], 1, 2)) == 1


def test_rank_seeds_differ_per_rank_and_seed():
    seeds = {rank_seed(s, r) for s in (0, 1) for r in (0, 1, 2)}
    assert len(seeds) == 6 and rank_seed(0, 1) == rank_seed(0, 1)


def test_step_gradient_matches_one_process():
    loss_1, grads_1 = _step_gradients()
    loss_2, grads_2 = run_data_parallel(_step_gradients, (), n_workers=2)
    assert loss_2 == pytest.approx(loss_1, rel=1e-6)
    # Parameters with no gradient (out of the batch's reach) stay None under both.
    assert [g is None for g in grads_1] == [g is None for g in grads_2]
    assert any(g is not None for g in grads_1)
    scale = max(np.abs(g).max() for g in grads_1 if g is not None)
    for g1, g2 in zip(grads_1, grads_2):
        if g1 is not None:
            np.testing.assert_allclose(g2, g1, rtol=1e-5, atol=1e-6 * scale)


def test_two_ranks_follow_the_one_process_loss_curve():
    database, X = _database(), _X()
    one = TVEPretrainer(database=database, mask_rate=0.0, **FAST).fit(X)
    two = TVEPretrainer(database=database, mask_rate=0.0, n_workers=2, **FAST).fit(X)
    assert len(two.history_) == len(one.history_) and two.n_steps_ == one.n_steps_
    for key in ("train_loss", "holdout_loss"):
        np.testing.assert_allclose(
            [h[key] for h in two.history_], [h[key] for h in one.history_], rtol=1e-3
        )
    assert two.best_epoch_ == one.best_epoch_


def _fit_twice():
    """Two fits inside one process group (one spawn): mask_rate=0.15, per-rank corruption."""
    database, X = _database(), _X()
    params = dict(FAST, max_epochs=1, steps_per_epoch=2)
    fits = [TVEPretrainer(database=database, **params).fit(X) for _ in range(2)]
    return [(f.encoder_state_, f.history_) for f in fits]


def test_two_ranks_are_deterministic_given_random_state():
    (state_a, history_a), (state_b, history_b) = run_data_parallel(_fit_twice, (), n_workers=2)
    assert state_a == state_b
    assert history_a[-1]["train_loss"] == history_b[-1]["train_loss"]


TORCHRUN_SCRIPT = """
import json, pathlib, sys
sys.path.insert(0, {tests!r})
import torch.distributed as dist
from test_distributed import FAST, _database, _X
from sktve import TVEPretrainer
import hashlib

dist.init_process_group("gloo")  # env:// from torchrun
tve = TVEPretrainer(database=_database(), mask_rate=0.0, **FAST).fit(_X())
from test_distributed import _finetuner, _labels
clf = _finetuner().fit(_X(), _labels())  # fine-tuning over the same group
# One file per rank: the ranks' stdout lines can interleave.
pathlib.Path({out!r}, f"rank{{dist.get_rank()}}.json").write_text(json.dumps({{
    "rank": dist.get_rank(),
    "train_loss": [h["train_loss"] for h in tve.history_],
    "state": hashlib.sha1(tve.encoder_state_).hexdigest(),
    "finetune_loss": [h["train_loss"] for h in clf.history_],
    "finetune_state": hashlib.sha1(clf.encoder_state_ + clf.head_state_).hexdigest(),
}}))
dist.destroy_process_group()
"""


def test_fit_trains_over_a_torchrun_group(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(TORCHRUN_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert results[0]["state"] == results[1]["state"]  # the ranks end identical
    one = TVEPretrainer(database=_database(), mask_rate=0.0, **FAST).fit(_X())
    np.testing.assert_allclose(
        results[0]["train_loss"], [h["train_loss"] for h in one.history_], rtol=1e-3
    )
    assert results[0]["finetune_state"] == results[1]["finetune_state"]
    alone = _finetuner().fit(_X(), _labels())
    np.testing.assert_allclose(
        results[0]["finetune_loss"], [h["train_loss"] for h in alone.history_], rtol=1e-3
    )


def _fail_on_rank_one():
    if context().rank == 1:
        raise ValueError("rank one fails")
    import torch.distributed as dist

    dist.barrier()  # rank 0 waits on the failed rank: the parent must not hang
    return "unreachable"


def test_a_failing_rank_fails_the_run():
    with pytest.raises(RuntimeError, match="rank one fails"):
        run_data_parallel(_fail_on_rank_one, (), n_workers=2)


def test_n_workers_is_checked():
    with pytest.raises(ValueError, match="n_workers"):
        TVEPretrainer(database=_database(), entity_table="customers", n_workers=0).fit(_X())


def test_rank_device_gives_each_rank_its_own_gpu(monkeypatch):
    from sktve.distributed import DistContext, rank_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cuda = torch.device("cuda")
    # One process, CPU, or a device the user pinned: unchanged.
    assert rank_device(cuda, None) == cuda
    assert rank_device(torch.device("cpu"), DistContext(1, 2)) == torch.device("cpu")
    assert rank_device(torch.device("cuda", 0), DistContext(1, 2)) == torch.device("cuda", 0)
    # Several ranks: LOCAL_RANK (torchrun, spawned ranks), else the rank, modulo the GPUs.
    assert rank_device(cuda, DistContext(3, 4)) == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert rank_device(cuda, DistContext(3, 4)) == torch.device("cuda", 0)


def test_backend_is_nccl_only_for_cuda(monkeypatch):
    import torch.distributed as dist

    from sktve.distributed import backend_for

    assert backend_for(torch.device("cpu")) == "gloo"
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    assert backend_for(torch.device("cuda", 0)) == "nccl"
    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    assert backend_for(torch.device("cuda", 0)) == "gloo"


def test_run_data_parallel_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match="backend must be 'gloo' or 'nccl'"):
        run_data_parallel(_fail_on_rank_one, (), n_workers=2, backend="mpi")


def _labels():
    return (_X()["customer_id"].to_numpy() % 3 == 0).astype(int)


def _finetuner(database=None, **extra):
    """A small TVEClassifier from random init, without dropout or feature swap noise (ranks
    match one process)."""
    from sktve import TVEClassifier

    return TVEClassifier(
        database=_database() if database is None else database,
        entity_table="customers",
        init="random",
        pretrainer=TVEPretrainer(embedding_dim=16, fanouts=(8, 4), dropout=0.0),
        dropout=0.0,
        mask_rate=0.0,
        max_epochs=3,
        steps_per_epoch=3,
        batch_size=64,
        random_state=0,
        **extra,
    )


@pytest.mark.parametrize(
    "scoring, probe_head, weighted",
    [
        ("loss", False, False),
        ("roc_auc", False, False),
        ("loss", True, False),
        ("roc_auc", True, True),
    ],
)
def test_fine_tuning_on_two_ranks_matches_one_process(scoring, probe_head, weighted):
    """TVEClassifier(n_workers=2): batches sharded over 2 spawned ranks, same training."""
    database, X, y = _database(), _X(), _labels()
    params = dict(scoring=scoring, probe_head=probe_head)
    # Uneven weights: ranks' shards must add weighted sums, not row counts.
    weights = 1.0 + 3.0 * (X["customer_id"].to_numpy() % 4 == 0) if weighted else None
    one = _finetuner(database, **params).fit(X, y, sample_weight=weights)
    two = _finetuner(database, n_workers=2, **params).fit(X, y, sample_weight=weights)
    assert two.n_workers == 2 and two.database_ is database
    keys = ("train_loss", "holdout_loss") + (("holdout_score",) if scoring != "loss" else ())
    for key in keys:
        np.testing.assert_allclose(
            [h[key] for h in two.history_], [h[key] for h in one.history_], rtol=1e-3
        )
        if probe_head and key != "holdout_score":  # the probe's epochs too (it stops on loss)
            assert len(one.probe_history_) >= 1
            np.testing.assert_allclose(
                [h[key] for h in two.probe_history_],
                [h[key] for h in one.probe_history_],
                rtol=1e-3,
            )
    assert two.best_epoch_ == one.best_epoch_ and two.probe_epoch_ == one.probe_epoch_
    # The estimator fitted in the ranks predicts here, on this process's database.
    np.testing.assert_allclose(two.predict_proba(X), one.predict_proba(X), atol=1e-3)
