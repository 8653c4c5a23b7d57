"""RelationalEncoder: shapes, determinism, state dicts, gradients, time-correctness."""

from __future__ import annotations

import copy
import io

import numpy as np
import pandas as pd
import pytest
import torch
from _graph_dbs import perturb_future, random_database

from sktve import load_database
from sktve.graph import GraphFeaturizer, TemporalNeighborSampler
from sktve.nn import RelationalEncoder, corrupt_features, recency_means, scatter_mean

T0 = pd.Timestamp("2023-01-01").value


@pytest.fixture(scope="module")
def setup(small_db):
    fz = GraphFeaturizer().fit(small_db, boundary=pd.Timestamp("2023-06-01"))
    graph = fz.transform(small_db)
    sampler = TemporalNeighborSampler(graph, [8, 4], random_state=0)
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 300, 32)
    times = T0 + rng.integers(0, 180 * 86_400 * 10**9, 32)
    return fz, graph, sampler, pos, times


def _encoder(meta, **kw):
    torch.manual_seed(0)
    return RelationalEncoder(meta, channels=kw.pop("channels", 32), **kw).eval()


def test_shapes_and_determinism(setup):
    fz, _, sampler, pos, times = setup
    enc = _encoder(fz.metadata_)
    batch = sampler.sample("customers", pos, times)
    out = enc(batch)
    assert out.shape == (32, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    same = _encoder(fz.metadata_)
    for (k, a), (_, b) in zip(enc.state_dict().items(), same.state_dict().items()):
        assert torch.equal(a, b), k
    assert torch.equal(out, same(sampler.sample("customers", pos, times)))


def test_state_dict_round_trip_and_rebuild_from_metadata_dict(setup):
    fz, _, sampler, pos, times = setup
    enc = _encoder(fz.metadata_, num_layers=2)
    buffer = io.BytesIO()
    torch.save(enc.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    torch.manual_seed(123)
    rebuilt = RelationalEncoder(fz.metadata_.to_dict(), channels=32, num_layers=2).eval()
    rebuilt.load_state_dict(state)
    batch = sampler.sample("customers", pos, times)
    assert torch.equal(enc(batch), rebuilt(batch))


def test_batch_composition_independence(setup):
    fz, _, sampler, pos, times = setup
    enc = _encoder(fz.metadata_)
    full = enc(sampler.sample("customers", pos, times))
    for i in (0, 13, 31):
        alone = enc(sampler.sample("customers", pos[i : i + 1], times[i : i + 1]))
        torch.testing.assert_close(alone[0], full[i], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_encoder(setup):
    fz, graph, _, pos, times = setup
    # suppliers are three hops from customers (customer <- order -> product -> supplier)
    enc = _encoder(fz.metadata_, num_layers=3).train()
    batch = TemporalNeighborSampler(graph, [8, 4, 2]).sample("customers", pos, times)
    enc(batch).pow(2).sum().backward()
    present = {t for t, n in batch.num_nodes.items() if n}
    assert present == set(fz.metadata_.node_types)
    for i, t in enumerate(enc.node_types):
        for name, p in enc.table_encoders[i].named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (t, name)
    for name, p in enc.time_encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the first layer carries the deepest relation (supplier -> product) ...
    et = enc.edge_types.index(("suppliers", "rev_supplier_id", "products"))
    assert enc.layers[0].lin_nbr[et].weight.grad.abs().sum() > 0
    for t in ("customers", "orders", "products", "reviews"):
        assert enc.layers[0].lin_self[enc.node_types.index(t)].weight.grad.abs().sum() > 0
    # the last layer only updates the seeds
    seed_idx = enc.node_types.index("customers")
    assert enc.layers[-1].lin_self[seed_idx].weight.grad.abs().sum() > 0


def test_history_counts_enter_the_embedding(setup):
    fz, _, sampler, pos, times = setup
    batch = sampler.sample("customers", pos, times)
    with_counts = _encoder(fz.metadata_, history_counts=True)
    without = _encoder(fz.metadata_)
    assert len(with_counts.history_encoders) == len(fz.metadata_.child_edge_types())
    assert len(without.history_encoders) == 0
    # Same seeds, counts doubled: only an encoder that reads them changes its output.
    more = copy.copy(batch)
    more.seed_history = torch.log1p(2 * torch.expm1(batch.seed_history))
    assert not torch.allclose(with_counts(batch), with_counts(more))
    assert torch.equal(without(batch), without(more))


def test_recency_means_weigh_recent_rows_per_group():
    src = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    age = torch.tensor([10.0, 0.0, 400.0, 100.0])  # days before each row's seed
    index = torch.tensor([0, 0, 2, 2])
    out = recency_means(src, age, index, 3, (10.0, 1e9))
    assert out.shape == (3, 2)
    # group 0: lags 10 and 0 -> weights e^-1 and 1 at scale 10; group 1 is empty.
    w = np.exp(-1.0)
    assert out[0, 0].item() == pytest.approx((w * 1 + 3) / (w + 1), rel=1e-6)
    assert out[1].tolist() == [0.0, 0.0]
    # group 2: ages 400 and 100 are taken relative to the youngest (100), never underflow.
    assert out[2, 0].item() == pytest.approx(7.0, rel=1e-6)
    assert out[2, 1].item() == pytest.approx(6.0, rel=1e-6)  # a long scale: the plain mean


def test_recency_means_enter_the_embedding(setup):
    fz, _, sampler, pos, times = setup
    batch = sampler.sample("customers", pos, times)
    plain = _encoder(fz.metadata_)
    recent = _encoder(fz.metadata_, recency_days=(30.0, 360.0))
    # One map per relation whose rows have times, in every layer; none without scales.
    timed = [e for e in recent.edge_types if fz.metadata_.tables[e[0]].temporal]
    assert len(recent.layers[0].lin_recent) == len(timed) > 0
    assert len(plain.layers[0].lin_recent) == 0
    # With the recency maps zeroed it is the plain encoder; with them, it is not.
    missing, unexpected = recent.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".lin_recent." in k for k in missing)
    with torch.no_grad():
        for layer in recent.layers:
            for p in layer.lin_recent.parameters():
                p.zero_()
    assert torch.equal(recent(batch), plain(batch))
    with torch.no_grad():
        for layer in recent.layers:
            for p in layer.lin_recent.parameters():
                p.normal_(0.0, 0.1)
    assert not torch.allclose(recent(batch), plain(batch), atol=1e-4)
    recent.train()
    recent(batch).pow(2).sum().backward()
    grads = [p.grad for p in recent.layers[-1].lin_recent.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    "history_counts, recency_days", [(False, ()), (True, ()), (True, (30.0, 360.0))]
)
@pytest.mark.parametrize("seed", range(4))
def test_future_perturbation_leaves_embeddings_unchanged(seed, history_counts, recency_days):
    db, frames, schema = random_database(seed)
    cutoff = pd.Timestamp("2020-12-31")
    fz = GraphFeaturizer().fit(db, boundary=cutoff)
    windows = [30 * 86_400 * 10**9] if history_counts else []
    enc = _encoder(
        fz.metadata_,
        channels=16,
        history_counts=history_counts,
        n_history_windows=len(windows),
        recency_days=recency_days,
    )
    perturbed = load_database(perturb_future(frames, schema, cutoff, seed + 7), schema=schema)
    g1, g2 = fz.transform(db), fz.transform(perturbed)
    rng = np.random.default_rng(seed)
    for table in db.table_names:
        pos = rng.integers(0, db.num_rows(table), 20)
        times = cutoff.value - rng.integers(0, 300, 20) * 86_400 * 10**9
        e1 = enc(
            TemporalNeighborSampler(g1, [4, 3], history_windows=windows).sample(table, pos, times)
        )
        e2 = enc(
            TemporalNeighborSampler(g2, [4, 3], history_windows=windows).sample(table, pos, times)
        )
        torch.testing.assert_close(e1, e2, atol=1e-6, rtol=1e-6)


def test_corruption(setup):
    fz, _, sampler, pos, times = setup
    enc = _encoder(fz.metadata_)
    batch = sampler.sample("customers", pos, times)
    clean = enc(batch)
    assert torch.equal(clean, enc(batch, corruption_rate=0.0))
    g = torch.Generator().manual_seed(0)
    noisy = enc(batch, corruption_rate=0.5, generator=g)
    assert not torch.allclose(clean, noisy)
    again = enc(batch, corruption_rate=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    # every swapped-in cell comes from a donor no later than the receiver's seed time
    groups = torch.tensor(fz.metadata_.tables["orders"].num_groups)
    x_num, x_cat = corrupt_features(batch, "orders", groups, 1.0, torch.Generator())
    assert x_num.shape == batch.x_num["orders"].shape
    assert x_cat.shape == batch.x_cat["orders"].shape
    assert not torch.equal(x_num, batch.x_num["orders"])


def test_corruption_never_uses_future_donors():
    db, _, _ = random_database(1)
    fz = GraphFeaturizer().fit(db)
    graph = fz.transform(db)
    fact = next(t for t in db.table_names if t.startswith("fact"))
    ent = next(iter(db.fkeys(fact).values()))
    sampler = TemporalNeighborSampler(graph, [50])
    n = db.num_rows(ent)
    # seed 0 sees nothing after 2020-02-01; the other seeds see everything
    times = np.full(n, pd.Timestamp("2030-01-01").value)
    times[0] = pd.Timestamp("2020-02-01").value
    batch = sampler.sample(ent, np.arange(n), times)
    groups = torch.tensor(fz.metadata_.tables[fact].num_groups)
    # mark every fact row's first float feature by its own time, then corrupt
    marker = batch.node_time[fact].double() / 1e18
    batch.x_num[fact] = torch.zeros_like(batch.x_num[fact], dtype=torch.float64)
    batch.x_num[fact][:, 0] = marker
    x_num, _ = corrupt_features(batch, fact, groups, 1.0, torch.Generator().manual_seed(1))
    mine = batch.node_seed[fact] == 0
    if mine.any():
        assert (x_num[mine, 0] <= times[0] / 1e18 + 1e-12).all()


def test_empty_neighbourhoods_and_no_history(setup):
    fz, _, sampler, _, _ = setup
    enc = _encoder(fz.metadata_)
    early = np.full(4, pd.Timestamp("1999-01-01").value)
    batch = sampler.sample("customers", np.arange(4), early)
    out = enc(batch)
    assert out.shape == (4, 32) and torch.isfinite(out).all()
    empty = enc(sampler.sample("customers", np.zeros(0, np.int64), np.zeros(0, np.int64)))
    assert empty.shape == (0, 32)


def test_seeds_of_fact_table_and_layers_vs_hops(setup):
    fz, graph, _, _, _ = setup
    times = np.full(10, T0)
    for layers, fanouts in [(1, [4, 2]), (3, [4, 2]), (2, [])]:
        sampler = TemporalNeighborSampler(graph, fanouts)
        enc = _encoder(fz.metadata_, num_layers=layers)
        out = enc(sampler.sample("orders", np.arange(10), times))
        assert out.shape == (10, 32) and torch.isfinite(out).all()


def test_static_only_schema():
    a = pd.DataFrame({"a_id": np.arange(6), "x": np.arange(6.0)})
    b = pd.DataFrame({"b_id": np.arange(30), "a_id": np.arange(30) % 6})
    db = load_database(
        {"a": a, "b": b},
        schema={"a": {"pkey": "a_id"}, "b": {"pkey": "b_id", "fkeys": {"a_id": "a"}}},
    )
    fz = GraphFeaturizer().fit(db)
    assert fz.metadata_.tables["b"].num_dim == 0  # a table with keys only
    graph = fz.transform(db)
    enc = _encoder(fz.metadata_, channels=8)
    out = enc(
        TemporalNeighborSampler(graph, [3, 2]).sample("a", np.arange(6), np.zeros(6, np.int64))
    )
    assert out.shape == (6, 8) and torch.isfinite(out).all()


def test_scatter_mean():
    src = torch.tensor([[1.0], [3.0], [5.0]])
    out = scatter_mean(src, torch.tensor([0, 0, 2]), 3)
    assert out.squeeze(1).tolist() == [2.0, 0.0, 5.0]


def test_bad_metadata():
    with pytest.raises(TypeError, match="GraphMetadata"):
        RelationalEncoder(object())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(setup):
    fz, _, sampler, pos, times = setup
    enc = _encoder(fz.metadata_).cuda()
    batch = sampler.sample("customers", pos, times).to("cuda")
    out = enc(batch, corruption_rate=0.2, generator=torch.Generator().manual_seed(0))
    assert out.device.type == "cuda"
    cpu = _encoder(fz.metadata_)(sampler.sample("customers", pos, times))
    torch.testing.assert_close(enc(batch).cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.relf1
def test_relf1_forward(relf1_db):
    fz = GraphFeaturizer().fit(relf1_db, boundary=pd.Timestamp("2005-01-01"))
    graph = fz.transform(relf1_db)
    enc = _encoder(fz.metadata_)
    pos = np.arange(16)
    times = np.full(16, pd.Timestamp("2004-06-01").value)
    out = enc(TemporalNeighborSampler(graph, [32, 16]).sample("drivers", pos, times))
    assert out.shape == (16, 32) and torch.isfinite(out).all()
