"""TemporalNeighborSampler: time-correctness, sampling semantics, determinism, batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _graph_dbs import perturb_future, random_database

from sktve import load_database
from sktve.graph import GraphFeaturizer, SampledBatch, TemporalNeighborSampler
from sktve.graph.sampler import (
    HISTORY_RECENCY_CAP_DAYS,
    _choose_offsets,
    _groups,
    _mix,
    _smallest,
    _visible_ends,
)


def _seeds(db, table, n, rng, lo="2020-01-01", hi="2021-12-31"):
    pos = rng.integers(0, db.num_rows(table), n)
    span = pd.Timestamp(hi).value - pd.Timestamp(lo).value
    times = pd.Timestamp(lo).value + rng.integers(0, span, n)
    # round to days so that seed times coincide with (day-rounded) row times
    times = times // 86_400_000_000_000 * 86_400_000_000_000
    return pos, times


def _entity(db):
    return next(t for t in db.table_names if t.startswith("ent"))


def _node_set(batch, seed):
    """Multiset of (type, row, depth) of one seed's subgraph."""
    out = []
    for t, rows in batch.node_rows.items():
        depth = np.zeros(len(rows), dtype=int)
        for d in range(len(batch.depth_ptr[t]) - 1):
            depth[batch.depth_ptr[t][d] : batch.depth_ptr[t][d + 1]] = d
        mine = batch.node_seed[t].numpy() == seed
        out += [(t, int(r), int(d)) for r, d in zip(rows.numpy()[mine], depth[mine])]
    return sorted(out)


@pytest.mark.parametrize("strategy", ["uniform", "last"])
@pytest.mark.parametrize("seed", range(6))
def test_no_sampled_node_is_later_than_its_seed(seed, strategy):
    db, _, _ = random_database(seed)
    graph = GraphFeaturizer().fit_transform(db)
    rng = np.random.default_rng(seed)
    for table in db.table_names:
        pos, times = _seeds(db, table, 40, rng)
        sampler = TemporalNeighborSampler(
            graph, [5, 3, 2], random_state=seed, temporal_strategy=strategy
        )
        batch = sampler.sample(table, pos, times)
        for t, node_time in batch.node_time.items():
            horizon = batch.seed_time[batch.node_seed[t]]
            later = node_time > horizon
            if t == table:  # a seed row itself may be later; it is blanked, not sampled
                later[: batch.num_seeds] = False
            assert not later.any(), (table, t)
            assert (batch.rel_time[t] >= 0).all()


@pytest.mark.parametrize("strategy", ["uniform", "last"])
@pytest.mark.parametrize("seed", range(5))
def test_future_perturbation_leaves_subgraphs_unchanged(seed, strategy):
    db, frames, schema = random_database(seed)
    cutoff = pd.Timestamp("2020-12-31")
    fz = GraphFeaturizer().fit(db, boundary=cutoff)
    perturbed = load_database(perturb_future(frames, schema, cutoff, seed + 100), schema=schema)
    g1, g2 = fz.transform(db), fz.transform(perturbed)
    rng = np.random.default_rng(seed)
    for table in db.table_names:
        pos, times = _seeds(db, table, 30, rng, hi="2020-12-31")
        kw = dict(random_state=1, temporal_strategy=strategy, history_windows=[20 * 86_400 * 10**9])
        b1 = TemporalNeighborSampler(g1, [4, 3], **kw).sample(table, pos, times)
        b2 = TemporalNeighborSampler(g2, [4, 3], **kw).sample(table, pos, times)
        assert b1.num_nodes == b2.num_nodes
        for t in b1.node_rows:
            assert torch.equal(b1.node_rows[t], b2.node_rows[t])
            assert torch.equal(b1.x_num[t], b2.x_num[t])
            assert torch.equal(b1.x_cat[t], b2.x_cat[t])
        for et in b1.edge_index:
            assert torch.equal(b1.edge_index[et], b2.edge_index[et])
        assert torch.equal(b1.seed_history, b2.seed_history)


def _valid_children(db, child, col, parent_row, t, after=None):
    fk = db.fkey_positions(child, col)
    times = db.time_values(child)
    ok = fk == parent_row
    if times is not None:
        ok &= times <= t
        if after is not None:
            ok &= times > after
    return set(np.flatnonzero(ok).tolist())


@pytest.mark.parametrize("strategy", ["uniform", "last"])
@pytest.mark.parametrize("seed", range(4))
def test_history_counts_every_visible_referencing_row(seed, strategy):
    # The counts cover the whole visible history, whatever the fan-out kept: all of it,
    # each recent window (t - w, t], and the age of the latest row, against brute force.
    db, _, _ = random_database(seed)
    graph = GraphFeaturizer().fit_transform(db)
    children = graph.metadata.child_edge_types()
    assert children, "the random schemas all have foreign keys"
    windows = [pd.Timedelta("20D"), pd.Timedelta("200D")]
    rng = np.random.default_rng(seed)
    for table in db.table_names:
        pos, times = _seeds(db, table, 25, rng)
        batch = TemporalNeighborSampler(
            graph,
            [2, 1],
            random_state=seed,
            temporal_strategy=strategy,
            history_windows=[w.value for w in windows],
        ).sample(table, pos, times)
        edge_types = children.get(table, [])
        width = 2 + len(windows)
        assert batch.seed_history.shape == (len(pos), len(edge_types) * width)
        assert batch.seed_history.dtype == torch.float32
        got = np.expm1(batch.seed_history.numpy().astype(np.float64))
        for j, (child, col, _) in enumerate(edge_types):
            block = got[:, j * width : (j + 1) * width]
            visible = [_valid_children(db, child, col, r, s) for r, s in zip(pos, times)]
            np.testing.assert_allclose(block[:, 0], [len(v) for v in visible], rtol=1e-5, atol=1e-4)
            child_times = db.time_values(child)
            for k, w in enumerate(windows):
                expected = [
                    len(_valid_children(db, child, col, r, s, after=s - w.value))
                    for r, s in zip(pos, times)
                ]
                if child_times is None:
                    expected = [len(v) for v in visible]
                np.testing.assert_allclose(block[:, 1 + k], expected, rtol=1e-5, atol=1e-4)
            if child_times is None:
                np.testing.assert_array_equal(block[:, -1], 0.0)
                continue
            cap = HISTORY_RECENCY_CAP_DAYS
            ages = [
                min((s - child_times[sorted(v)].max()) / 86_400e9, cap) if v else cap
                for v, s in zip(visible, times)
            ]
            np.testing.assert_allclose(block[:, -1], ages, rtol=1e-4, atol=1e-3)


def test_child_edge_types_are_the_referencing_tables(small_db):
    children = GraphFeaturizer().fit(small_db).metadata_.child_edge_types()
    for t, edge_types in children.items():
        for src, rel, dst in edge_types:
            assert dst == t and not rel.startswith("rev_")
            assert small_db.fkeys(src)[rel] == t
    assert "customers" in children and "reviews" not in children


@pytest.mark.parametrize("fanout", [1, 3, 1000])
def test_first_hop_is_a_uniform_subset_of_valid_neighbours(fanout):
    db, _, _ = random_database(7)
    graph = GraphFeaturizer().fit_transform(db)
    ent = _entity(db)
    rng = np.random.default_rng(0)
    pos, times = _seeds(db, ent, 25, rng)
    batch = TemporalNeighborSampler(graph, [fanout]).sample(ent, pos, times)
    for et, ei in batch.edge_index.items():
        child, col, parent = et
        if parent != ent or col.startswith("rev_"):
            continue
        rows = batch.node_rows[child].numpy()
        for s in range(len(pos)):
            picked = rows[ei[0][ei[1] == s].numpy()]
            valid = _valid_children(db, child, col, pos[s], times[s])
            assert len(set(picked)) == len(picked), "sampled with replacement"
            assert set(picked) <= valid
            assert len(picked) == min(fanout, len(valid))


@pytest.mark.parametrize("fanout", [1, 3, 1000])
def test_last_strategy_keeps_the_latest_valid_neighbours(fanout):
    db, _, _ = random_database(7)
    graph = GraphFeaturizer().fit_transform(db)
    ent = _entity(db)
    pos, times = _seeds(db, ent, 25, np.random.default_rng(0))
    sampler = TemporalNeighborSampler(graph, [fanout], temporal_strategy="last")
    batch = sampler.sample(ent, pos, times)
    checked = 0
    for et, ei in batch.edge_index.items():
        child, col, parent = et
        if parent != ent or col.startswith("rev_") or db.time_col(child) is None:
            continue
        rows = batch.node_rows[child].numpy()
        child_times = db.time_values(child)
        keys = db.table(child)[db.pkey(child)].to_numpy()
        for s in range(len(pos)):
            picked = rows[ei[0][ei[1] == s].numpy()]
            valid = np.array(sorted(_valid_children(db, child, col, pos[s], times[s])))
            if len(valid) == 0:
                assert len(picked) == 0
                continue
            # the latest by (time, key), as the adjacency lists are sorted
            order = valid[np.lexsort((keys[valid], child_times[valid]))]
            assert sorted(picked.tolist()) == sorted(order[-fanout:].tolist())
            checked += 1
    assert checked > 10
    # the same subgraphs, one seed at a time: row-independent
    alone = sampler.sample(ent, pos[:1], times[:1])
    for t in alone.node_rows:
        n = int((batch.node_seed[t] == 0).sum())
        assert (
            sorted(alone.node_rows[t].tolist())
            == sorted(batch.node_rows[t][batch.node_seed[t] == 0].tolist())
            and len(alone.node_rows[t]) == n
        )
    with pytest.raises(ValueError, match="temporal_strategy"):
        TemporalNeighborSampler(graph, [2], temporal_strategy="recent")


def test_referenced_temporal_row_excluded_when_later():
    events = pd.DataFrame(
        {"event_id": [0, 1], "when": pd.to_datetime(["2020-01-10", "2020-03-01"])}
    )
    facts = pd.DataFrame(
        {
            "fact_id": [0, 1],
            "event_id": [0, 1],
            "ts": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "v": [1.0, 2.0],
        }
    )
    db = load_database(
        {"events": events, "facts": facts},
        schema={
            "events": {"pkey": "event_id", "time_col": "when"},
            "facts": {"pkey": "fact_id", "time_col": "ts", "fkeys": {"event_id": "events"}},
        },
    )
    graph = GraphFeaturizer().fit_transform(db)
    sampler = TemporalNeighborSampler(graph, [10])
    t = pd.Timestamp("2020-02-01").value
    batch = sampler.sample("facts", np.array([0, 1]), np.array([t, t]))
    # fact 0 -> event 0 (2020-01-10) is visible, fact 1 -> event 1 (2020-03-01) is not
    assert batch.node_rows["events"].tolist() == [0]
    assert batch.node_seed["events"].tolist() == [0]
    # a seed time equal to the row time counts as visible
    at = pd.Timestamp("2020-01-10").value
    batch = sampler.sample("facts", np.array([0]), np.array([at]))
    assert batch.node_rows["events"].tolist() == [0]


def test_empty_table_samples_like_rows_after_every_seed():
    """An empty fact table (an early snapshot) samples as one whose rows are all later."""
    facts = pd.DataFrame(
        {"fact_id": [0, 1, 2], "ts": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"])}
    )
    notes = pd.DataFrame(  # at most one note per fact: a one-neighbour edge type
        {"note_id": [0, 1], "fact_id": [0, 2], "ts": pd.to_datetime(["2020-01-05"] * 2)}
    )
    schema = {
        "facts": {"pkey": "fact_id", "time_col": "ts"},
        "notes": {"pkey": "note_id", "time_col": "ts", "fkeys": {"fact_id": "facts"}},
    }
    t = np.full(3, pd.Timestamp("2020-01-04").value)
    batches = []
    for frame in (notes.iloc[:0], notes):
        graph = GraphFeaturizer().fit_transform(
            load_database({"facts": facts, "notes": frame}, schema)
        )
        batch = TemporalNeighborSampler(graph, [4, 4]).sample("facts", np.arange(3), t)
        batches.append({k: v.tolist() for k, v in batch.node_rows.items()})
    assert batches[0] == batches[1] and batches[0]["notes"] == []


def test_deterministic_and_keyed_by_random_state(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 300, 64)
    times = np.full(64, pd.Timestamp("2023-06-01").value)
    a = TemporalNeighborSampler(graph, [4, 2], random_state=0).sample("customers", pos, times)
    b = TemporalNeighborSampler(graph, [4, 2], random_state=0).sample("customers", pos, times)
    c = TemporalNeighborSampler(graph, [4, 2], random_state=1).sample("customers", pos, times)
    assert all(torch.equal(a.node_rows[t], b.node_rows[t]) for t in a.node_rows)
    assert not torch.equal(a.node_rows["orders"], c.node_rows["orders"])


def test_subgraph_does_not_depend_on_batch_composition(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    sampler = TemporalNeighborSampler(graph, [6, 3], random_state=5)
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 300, 50)
    times = pd.Timestamp("2021-01-01").value + rng.integers(0, 10**17, 50)
    full = sampler.sample("customers", pos, times)
    for i in (0, 17, 49):
        alone = sampler.sample("customers", pos[i : i + 1], times[i : i + 1])
        assert _node_set(alone, 0) == _node_set(full, i)
    shuffled = np.random.default_rng(2).permutation(50)
    other = sampler.sample("customers", pos[shuffled], times[shuffled])
    j = int(np.flatnonzero(shuffled == 17)[0])
    assert _node_set(other, j) == _node_set(full, 17)


def test_seeds_without_history_and_empty_batch(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    sampler = TemporalNeighborSampler(graph, [8, 4])
    early = np.full(3, pd.Timestamp("2000-01-01").value)
    batch = sampler.sample("customers", np.array([0, 1, 2]), early)
    assert batch.num_nodes["orders"] == 0 and batch.num_nodes["reviews"] == 0
    assert batch.num_nodes["customers"] == 3
    empty = sampler.sample("customers", np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert empty.num_seeds == 0 and empty.num_edges == 0


def test_static_only_schema():
    a = pd.DataFrame({"a_id": np.arange(6), "x": np.arange(6.0)})
    b = pd.DataFrame({"b_id": np.arange(30), "a_id": np.arange(30) % 6, "y": ["u", "v"] * 15})
    db = load_database(
        {"a": a, "b": b},
        schema={"a": {"pkey": "a_id"}, "b": {"pkey": "b_id", "fkeys": {"a_id": "a"}}},
    )
    graph = GraphFeaturizer().fit_transform(db)
    batch = TemporalNeighborSampler(graph, [3, 2]).sample("a", np.arange(6), np.zeros(6, np.int64))
    assert batch.rel_time == {} and batch.node_time == {}
    assert batch.num_nodes["b"] == 18  # 3 of the 5 children of each a
    # seeds, then each b's parent at hop 2: its seed again, one node per seed (merged)
    assert batch.num_nodes["a"] == 6 + 6


def test_hidden_seed_row_is_blanked():
    db, _, _ = random_database(0)
    if "event" not in db.table_names:
        pytest.skip("random schema without a timestamped entity")
    graph = GraphFeaturizer().fit_transform(db)
    when = db.time_values("event")
    batch = TemporalNeighborSampler(graph, [2]).sample("event", np.array([0]), when[:1] - 1)
    assert float(batch.x_num["event"][0].abs().sum()) == 0.0
    assert int(batch.x_cat["event"][0].abs().sum()) == 0
    assert float(batch.rel_time["event"][0]) == 0.0
    assert batch.num_edges == 0  # its references are future data too: not expanded


def test_input_validation(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    sampler = TemporalNeighborSampler(graph, [2])
    with pytest.raises(KeyError, match="unknown seed table"):
        sampler.sample("nope", np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="row positions"):
        sampler.sample("customers", np.array([300]), np.array([0]))
    with pytest.raises(ValueError, match="one length"):
        sampler.sample("customers", np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="fanouts"):
        TemporalNeighborSampler(graph, [0])
    with pytest.raises(TypeError):
        TemporalNeighborSampler(small_db, [2])
    dt = np.array(["2022-01-01"], dtype="datetime64[ns]")
    assert sampler.sample("customers", np.array([0]), dt).seed_time.tolist() == [
        dt.view(np.int64)[0]
    ]


def test_batch_to_and_hetero_data(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    batch = TemporalNeighborSampler(graph, [3, 2]).sample(
        "customers", np.arange(4), np.full(4, pd.Timestamp("2023-01-01").value)
    )
    assert isinstance(batch, SampledBatch)
    moved = batch.to("cpu")
    assert moved.num_nodes == batch.num_nodes and moved.device.type == "cpu"
    data = batch.to_hetero_data()
    assert data["orders"].num_nodes == batch.num_nodes["orders"]
    et = ("orders", "customer_id", "customers")
    assert torch.equal(data[et].edge_index, batch.edge_index[et])


@pytest.mark.parametrize(("n", "k"), [(3, 2), (9, 2), (600, 7), (5000, 64)])
def test_choose_offsets_distinct_and_uniform(n, k):
    draws = 20000 if n < 1000 else 3000
    keys = _mix(np.arange(draws, dtype=np.uint64) + np.uint64(99))
    out = _choose_offsets(keys, np.full(draws, n, dtype=np.int64), k)
    assert ((out >= 0) & (out < n)).all()
    assert (np.diff(np.sort(out, axis=1), axis=1) > 0).all()
    freq = np.bincount(out.ravel(), minlength=n) / draws
    z = (freq - k / n) / np.sqrt(k / n * (1 - k / n) / draws)
    # chi-square of inclusion counts, in standard deviations above its mean
    assert ((z**2).sum() - n) / np.sqrt(2 * n) < 4


def test_choose_offsets_are_the_smallest_scores_in_order():
    from sktve.graph.sampler import _dense_scores

    rng = np.random.default_rng(0)
    keys = _mix(np.arange(300, dtype=np.uint64))
    n = rng.integers(9, 200, 300)
    out = _choose_offsets(keys, n, 8)
    score = _dense_scores(keys, 200)
    for i in range(300):
        assert len(set(score[i].tolist())) == 200  # distinct within a row
        assert out[i].tolist() == sorted(np.argsort(score[i, : n[i]])[:8].tolist())
    long = _choose_offsets(keys[:50], np.full(50, 10_000), 8)  # keyed permutation
    assert (np.diff(long, axis=1) > 0).all() and (long < 10_000).all()


def test_choose_offsets_pairs_are_uniform():
    # Uniform k-subsets include each pair of offsets with probability k(k-1)/(n(n-1)).
    n, k, draws = 12, 5, 40_000
    keys = _mix(np.arange(draws, dtype=np.uint64) + np.uint64(7))
    out = _choose_offsets(keys, np.full(draws, n, dtype=np.int64), k)
    hit = np.zeros((draws, n), dtype=np.float64)
    np.put_along_axis(hit, out, 1.0, axis=1)
    pairs = (hit.T @ hit)[np.triu_indices(n, 1)] / draws
    p = k * (k - 1) / (n * (n - 1))
    z = (pairs - p) / np.sqrt(p * (1 - p) / draws)
    assert ((z**2).sum() - len(pairs)) / np.sqrt(2 * len(pairs)) < 4


def test_smallest_masks_cells_past_each_rows_end():
    rng = np.random.default_rng(1)
    for _ in range(50):
        rows, width = int(rng.integers(1, 20)), int(rng.integers(3, 120))
        k = int(rng.integers(1, width))
        n = rng.integers(k + 1, width + 1, (rows, 1))
        score = np.stack([rng.permutation(2**32 - width + np.arange(width)) for _ in range(rows)])
        score = score.astype(np.uint32)  # the largest uint32 is a valid score in some rows
        expect = [sorted(np.argsort(score[i, : n[i, 0]])[:k].tolist()) for i in range(rows)]
        assert _smallest(score.copy(), n, k).tolist() == expect


def test_visible_ends_match_searchsorted():
    rng = np.random.default_rng(2)
    lengths = rng.integers(0, 40, 80)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    when = np.concatenate([np.sort(rng.integers(0, 100, m)) for m in lengths])
    rows = rng.integers(0, 80, 192)
    t = rng.integers(0, 100, 192)
    end = _visible_ends(when, indptr[rows], indptr[rows + 1], t)
    for j, r in enumerate(rows):
        lo, hi = indptr[r], indptr[r + 1]
        assert end[j] == lo + np.searchsorted(when[lo:hi], t[j], side="right")


def test_crowded_picks_in_time_order_and_outputs_own_their_memory(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    sampler = TemporalNeighborSampler(graph, [3, 2], random_state=2)
    pos = np.arange(40)
    times = np.full(40, pd.Timestamp("2024-01-01").value)
    sub = sampler.sample_subgraph("customers", pos, times)
    et = ("orders", "customer_id", "customers")
    child, parent = sub["edges"][et]
    order_time = graph.time["orders"][sub["rows"]["orders"][child]]
    same_parent = parent[1:] == parent[:-1]
    assert (np.diff(order_time)[same_parent] >= 0).all()  # each node's picks in time order
    sub["rows"]["customers"][:] = -1
    assert (pos == np.arange(40)).all()  # the seed positions were copied


def test_pyg_neighbor_loader_statistics(small_db):
    pytest.importorskip("pyg_lib")
    from torch_geometric.loader import NeighborLoader

    graph = GraphFeaturizer().fit_transform(small_db)
    data = __import__("torch_geometric.data", fromlist=["HeteroData"]).HeteroData()
    for t in graph.node_types:
        data[t].num_nodes = graph.num_nodes[t]
        if graph.time[t] is not None:
            data[t].time = torch.from_numpy(graph.time[t])
        else:
            data[t].time = torch.full((graph.num_nodes[t],), np.iinfo(np.int64).min)
    for et, adj in graph.adj.items():
        dst = np.repeat(np.arange(len(adj.indptr) - 1), np.diff(adj.indptr))
        data[et].edge_index = torch.from_numpy(np.stack([adj.nbr, dst]))
    t = pd.Timestamp("2022-06-01").value
    seeds = torch.arange(300)
    loader = NeighborLoader(
        data,
        num_neighbors=[4, 2],
        input_nodes=("customers", seeds),
        input_time=torch.full((300,), t),
        time_attr="time",
        temporal_strategy="uniform",
        disjoint=True,
        batch_size=300,
    )
    ref = next(iter(loader))
    ours = TemporalNeighborSampler(graph, [4, 2]).sample(
        "customers", seeds.numpy(), np.full(300, t)
    )
    # hop-1 orders per customer follow the same rule: min(fanout, visible orders)
    assert ours.num_nodes["orders"] == ref["orders"].num_nodes


@pytest.mark.relf1
def test_relf1_time_correct(relf1_db):
    graph = GraphFeaturizer().fit_transform(relf1_db, boundary=pd.Timestamp("2005-01-01"))
    rng = np.random.default_rng(0)
    pos = rng.integers(0, relf1_db.num_rows("drivers"), 256)
    times = pd.Timestamp("1990-01-01").value + rng.integers(0, 15 * 365 * 86_400 * 10**9, 256)
    batch = TemporalNeighborSampler(graph, [128, 64]).sample("drivers", pos, times)
    assert batch.num_nodes["results"] > 0
    for t, node_time in batch.node_time.items():
        assert (node_time <= batch.seed_time[batch.node_seed[t]]).all()


def _repeats_within_a_depth(batch) -> int:
    """Number of (type, seed, row) that occur twice at one depth."""
    repeats = 0
    for t, rows in batch.node_rows.items():
        ptr = batch.depth_ptr[t]
        for d in range(len(ptr) - 1):
            seed = batch.node_seed[t][ptr[d] : ptr[d + 1]].numpy()
            row = rows[ptr[d] : ptr[d + 1]].numpy()
            repeats += len(row) - len(set(zip(seed.tolist(), row.tolist())))
    return repeats


@pytest.mark.parametrize("strategy", ["uniform", "last"])
@pytest.mark.parametrize("seed", range(4))
def test_merged_repeats_give_the_tree_embeddings_from_fewer_nodes(seed, strategy):
    from sktve.nn import RelationalEncoder

    db, _, _ = random_database(seed)
    featurizer = GraphFeaturizer().fit(db)
    graph = featurizer.transform(db)
    rng = np.random.default_rng(seed)
    kw = dict(random_state=seed, temporal_strategy=strategy, history_windows=[30 * 86_400 * 10**9])
    merged_sampler = TemporalNeighborSampler(graph, [4, 3, 2], **kw)
    tree_sampler = TemporalNeighborSampler(graph, [4, 3, 2], merge_repeats=False, **kw)
    torch.manual_seed(seed)
    encoder = RelationalEncoder(
        featurizer.metadata_,
        channels=16,
        num_layers=3,
        history_counts=True,
        n_history_windows=1,
        recency_days=(30.0, 360.0),
    ).eval()
    fewer = 0
    for table in db.table_names:
        pos, times = _seeds(db, table, 30, rng)
        merged = merged_sampler.sample(table, pos, times)
        tree = tree_sampler.sample(table, pos, times)
        assert _repeats_within_a_depth(merged) == 0
        assert sum(merged.num_nodes.values()) <= sum(tree.num_nodes.values())
        assert merged.num_edges <= tree.num_edges  # a merged node expands once
        fewer += sum(merged.num_nodes.values()) < sum(tree.num_nodes.values())
        with torch.no_grad():
            torch.testing.assert_close(encoder(merged), encoder(tree), atol=1e-5, rtol=1e-4)
    assert fewer  # the schemas do reach rows along several paths


@pytest.mark.parametrize("n", [0, 1, 7, 500])
def test_groups_match_numpy_unique(n):
    rng = np.random.default_rng(n)
    for key in (rng.integers(0, max(n // 3, 1), n), np.sort(rng.integers(0, 40, n))):
        first, inverse = _groups(key.astype(np.int64))
        _, first_np, inverse_np = np.unique(key, return_index=True, return_inverse=True)
        assert np.array_equal(first, first_np)
        assert np.array_equal(inverse, inverse_np.reshape(-1))
