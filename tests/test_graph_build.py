"""TemporalGraph: time-sorted adjacency and the shared CSR of each table's neighbour lists."""

from __future__ import annotations

import numpy as np

from sktve.graph import Adjacency, GraphFeaturizer, NeighborLists, TemporalGraph


def test_graph_adjacency_sorted_by_time(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    assert isinstance(graph, TemporalGraph)
    adj = graph.adj[("orders", "customer_id", "customers")]
    fk = small_db.fkey_positions("orders", "customer_id")
    np.testing.assert_array_equal(np.diff(adj.indptr), np.bincount(fk[fk >= 0], minlength=300))
    times = graph.time["orders"]
    for v in range(0, 300, 37):
        nbr = adj.nbr[adj.indptr[v] : adj.indptr[v + 1]]
        assert (fk[nbr] == v).all()
        assert (np.diff(times[nbr]) >= 0).all()
    back = graph.adj[("customers", "rev_customer_id", "orders")]
    assert back.direct is not None
    np.testing.assert_array_equal(back.direct, fk)
    assert "TemporalGraph" in repr(graph)


def test_neighbor_lists_share_one_csr_per_table(small_db):
    graph = GraphFeaturizer().fit_transform(small_db)
    lists = graph.neighbor_lists["customers"]
    assert isinstance(lists, NeighborLists)
    many = {et for et, a in graph.adj.items() if et[2] == "customers" and a.direct is None}
    assert set(lists.edge_types) == many and len(many) > 1
    timed = [graph.adj[et].nbr_time is not None for et in lists.edge_types]
    assert timed == sorted(timed, reverse=True) and sum(timed) == lists.num_timed
    for i, et in enumerate(lists.edge_types):
        adj = graph.adj[et]
        # each edge type's arrays are views of the shared buffers, at its bounds
        assert np.shares_memory(adj.nbr, lists.nbr)
        lo = lists.bounds[0, i]
        np.testing.assert_array_equal(lists.bounds[1, i] - lo, np.diff(adj.indptr))
        for v in range(0, graph.num_nodes["customers"], 7):
            own = adj.nbr[adj.indptr[v] : adj.indptr[v + 1]]
            np.testing.assert_array_equal(lists.nbr[lo[v] : lists.bounds[1, i, v]], own)
            if i < lists.num_timed:
                np.testing.assert_array_equal(
                    lists.nbr_time[lo[v] : lists.bounds[1, i, v]],
                    adj.nbr_time[adj.indptr[v] : adj.indptr[v + 1]],
                )
    # a graph assembled from separate arrays groups them the same way (by copying)
    separate = {
        et: Adjacency(a.indptr, a.nbr.copy(), a.nbr_time, a.direct) for et, a in graph.adj.items()
    }
    copied = TemporalGraph(
        graph.metadata, graph.x_num, graph.x_cat, graph.time, separate, graph.node_id
    )
    for dst, group in graph.neighbor_lists.items():
        other = copied.neighbor_lists[dst]
        assert other.edge_types == group.edge_types and other.num_timed == group.num_timed
        np.testing.assert_array_equal(other.bounds, group.bounds)
        np.testing.assert_array_equal(other.nbr, group.nbr)
        np.testing.assert_array_equal(other.nbr_time, group.nbr_time)
