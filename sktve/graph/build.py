"""The heterogeneous temporal graph: node features, node times and time-sorted adjacency.

One node type per table (node ``i`` of a type is row ``i`` of the table), and for every
foreign key ``child.col -> parent`` two edge types (messages flow ``src -> dst``, as in
PyG):

- ``(child, col, parent)``: a parent row's neighbours are the child rows that reference
  it (an entity's fact rows). This is where fan-out and time filtering matter.
- ``(parent, "rev_" + col, child)``: a child row's single neighbour is the row it
  references (none for a null key).

For sampling, each edge type stores a CSR indexed by the *destination* row (the node
that samples), whose neighbour lists are sorted by (neighbour time, neighbour identity).
The neighbours visible at time ``t`` are then a prefix of the list, found for a whole
batch at once by a vectorised binary search within each list on ``nbr_time`` (the
neighbours' times in CSR order).

The many-neighbour edge types into one node type also share one CSR
(:class:`NeighborLists`): their ``nbr`` and ``nbr_time`` arrays are views of one buffer,
so the sampler expands a frontier along all of them with one set of array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sktve.database import Database
from sktve.graph.features import EdgeType, GraphMetadata

__all__ = ["Adjacency", "NeighborLists", "TemporalGraph"]


@dataclass
class Adjacency:
    """Neighbour lists of one edge type, indexed by destination row.

    Attributes
    ----------
    indptr : ndarray of int64, shape (n_dst + 1,)
        Neighbours of destination row ``v`` are ``nbr[indptr[v]:indptr[v + 1]]``.
    nbr : ndarray of int64
        Source rows, sorted within each segment by (source time, source row).
    nbr_time : ndarray of int64 or None
        Time of each neighbour in ``nbr`` (non-decreasing within each segment), for
        temporal sources; None for static ones.
    direct : ndarray of int64 or None
        When every row has at most one neighbour: that neighbour or -1 (fast path).
    """

    indptr: np.ndarray
    nbr: np.ndarray
    nbr_time: np.ndarray | None
    direct: np.ndarray | None

    @property
    def num_edges(self) -> int:
        return int(len(self.nbr))


@dataclass
class NeighborLists:
    """The many-neighbour edge types into one node type, laid out as one CSR.

    List ``(i, v)`` (edge type ``edge_types[i]``, destination row ``v``) is
    ``nbr[bounds[0, i, v]:bounds[1, i, v]]``. Timestamped edge types come first, and
    ``nbr_time`` holds the times of their neighbours (``nbr_time[j]`` is the time of
    ``nbr[j]`` for ``j < len(nbr_time)``).

    Attributes
    ----------
    edge_types : list of (src, rel, dst)
    num_timed : int
        The first ``num_timed`` edge types have timestamped neighbours.
    bounds : ndarray of int64, shape (2, len(edge_types), n_dst)
    nbr : ndarray of int64
        Each edge type's ``Adjacency.nbr`` is a view of a slice of it.
    nbr_time : ndarray of int64
        Each timestamped edge type's ``Adjacency.nbr_time`` is a view of a slice of it.
    """

    edge_types: list[EdgeType]
    num_timed: int
    bounds: np.ndarray
    nbr: np.ndarray
    nbr_time: np.ndarray

    @classmethod
    def of(
        cls,
        ordered: list[EdgeType],
        num_timed: int,
        adj: dict[EdgeType, Adjacency],
        n_dst: int,
        nbr: np.ndarray,
        nbr_time: np.ndarray | None,
    ) -> NeighborLists:
        """The group of ``ordered`` edge types whose ``Adjacency`` arrays already lie, in
        that order, in the buffers ``nbr`` and ``nbr_time``."""
        bounds = np.empty((2, len(ordered), n_dst), dtype=np.int64)
        offset = 0
        for i, et in enumerate(ordered):
            np.add(adj[et].indptr[:-1], offset, out=bounds[0, i])
            np.add(adj[et].indptr[1:], offset, out=bounds[1, i])
            offset += adj[et].num_edges
        if nbr_time is None:
            nbr_time = np.zeros(0, dtype=np.int64)
        return cls(ordered, num_timed, bounds, nbr, nbr_time)

    @classmethod
    def group(
        cls, edge_types: list[EdgeType], adj: dict[EdgeType, Adjacency], n_dst: int
    ) -> NeighborLists:
        """Copy the lists of ``edge_types`` (all into one node type) into shared buffers
        and re-point their ``Adjacency`` arrays at slices of them (``adj`` is updated in
        place, one edge type at a time, so each one's separate arrays can be freed as
        soon as they are copied)."""
        ordered = [et for et in edge_types if adj[et].nbr_time is not None]
        num_timed = len(ordered)
        ordered += [et for et in edge_types if adj[et].nbr_time is None]
        if len(ordered) == 1:  # nothing to concatenate: share the arrays as they are
            a = adj[ordered[0]]
            return cls.of(ordered, num_timed, adj, n_dst, a.nbr, a.nbr_time)
        sizes = [adj[et].num_edges for et in ordered]
        nbr = np.empty(sum(sizes), dtype=np.int64)
        nbr_time = np.empty(sum(sizes[:num_timed]), dtype=np.int64)
        lo = 0
        for i, et in enumerate(ordered):
            hi = lo + sizes[i]
            nbr[lo:hi] = adj[et].nbr
            if i < num_timed:
                nbr_time[lo:hi] = adj[et].nbr_time
            adj[et] = Adjacency(
                indptr=adj[et].indptr,
                nbr=nbr[lo:hi],
                nbr_time=nbr_time[lo:hi] if i < num_timed else None,
                direct=None,
            )
            lo = hi
        return cls.of(ordered, num_timed, adj, n_dst, nbr, nbr_time)


class TemporalGraph:
    """Heterogeneous temporal graph of a database; build it with ``GraphFeaturizer.transform``.

    Attributes
    ----------
    metadata : GraphMetadata
        Node types, edge types and feature layout (the featurizer's ``metadata_``).
    num_nodes : dict of str to int
    x_num : dict of str to ndarray of float32, shape (n_rows, num_dim)
    x_cat : dict of str to ndarray of int64, shape (n_rows, n_categorical)
    time : dict of str to ndarray of int64 or None
        Node times in ns since the epoch; None for static tables.
    node_id : dict of str to ndarray of int64
        A stable identity per row: a hash of the primary key value (the row position for
        tables without one). Sampling keys and neighbour tie-breaks use it, so a seed's
        subgraph does not depend on the order of rows in a table.
    adj : dict of edge type to Adjacency
    neighbor_lists : dict of str to NeighborLists
        For each node type with many-neighbour edge types into it: those lists as one CSR.
    """

    def __init__(
        self,
        metadata: GraphMetadata,
        x_num: dict[str, np.ndarray],
        x_cat: dict[str, np.ndarray],
        time: dict[str, np.ndarray | None],
        adj: dict[EdgeType, Adjacency],
        node_id: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.metadata = metadata
        self.x_num = x_num
        self.x_cat = x_cat
        self.time = time
        self.num_nodes = {t: int(len(x_num[t])) for t in metadata.node_types}
        # `adj` is updated in place (its many-neighbour entries re-pointed at the shared
        # buffers of `neighbor_lists`), so the separate arrays are freed as they are copied.
        self.adj = adj
        many: dict[str, list[EdgeType]] = {}
        for et in metadata.edge_types:
            if adj[et].direct is None:
                many.setdefault(et[2], []).append(et)
        self.neighbor_lists = {
            dst: NeighborLists.group(ets, adj, self.num_nodes[dst]) for dst, ets in many.items()
        }
        self.node_id = node_id or {
            t: np.arange(n, dtype=np.int64) for t, n in self.num_nodes.items()
        }

    @property
    def node_types(self) -> list[str]:
        return list(self.metadata.node_types)

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.metadata.edge_types)

    @classmethod
    def from_database(
        cls,
        database: Database,
        metadata: GraphMetadata,
        features: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> TemporalGraph:
        """Assemble the graph from a database and per-table ``(x_num, x_cat)`` features."""
        time = {t: database.time_values(t) for t in metadata.node_types}
        node_id = {t: _row_identity(database, t) for t in metadata.node_types}
        adj: dict[EdgeType, Adjacency] = {}
        for fk in database.foreign_keys:
            child, col, parent = fk.src_table, fk.fkey_col, fk.dst_table
            parent_pos = database.fkey_positions(child, col)
            n_child, n_parent = len(parent_pos), database.num_rows(parent)
            # Parent samples its children (many, time-filtered).
            adj[(child, col, parent)] = _build_adjacency(
                dst_of_edge=parent_pos,
                src_of_edge=np.arange(n_child, dtype=np.int64),
                n_dst=n_parent,
                src_time=time[child],
                src_id=node_id[child],
            )
            # Child samples the one row it references.
            adj[(parent, f"rev_{col}", child)] = _build_adjacency(
                dst_of_edge=np.arange(n_child, dtype=np.int64),
                src_of_edge=parent_pos,
                n_dst=n_child,
                src_time=time[parent],
                src_id=node_id[parent],
            )
        x_num = {t: features[t][0] for t in metadata.node_types}
        x_cat = {t: features[t][1] for t in metadata.node_types}
        return cls(metadata, x_num, x_cat, time, adj, node_id)

    def __repr__(self) -> str:
        nodes = ", ".join(f"{t}={n}" for t, n in self.num_nodes.items())
        n_edges = sum(a.num_edges for a in self.adj.values())
        return f"TemporalGraph(nodes: {nodes}; {len(self.adj)} edge types, {n_edges} edges)"


def _row_identity(database: Database, table: str) -> np.ndarray:
    pkey = database.pkey(table)
    if pkey is None:
        return np.arange(database.num_rows(table), dtype=np.int64)
    # pandas' hash is seeded with a fixed key: stable across processes and runs.
    hashed = pd.util.hash_pandas_object(database.table(table)[pkey], index=False)
    return hashed.to_numpy().view(np.int64)


def _build_adjacency(
    dst_of_edge: np.ndarray,
    src_of_edge: np.ndarray,
    n_dst: int,
    src_time: np.ndarray | None,
    src_id: np.ndarray,
) -> Adjacency:
    valid = (dst_of_edge >= 0) & (src_of_edge >= 0)
    dst = dst_of_edge[valid]
    src = src_of_edge[valid]
    if src_time is not None:
        edge_time = src_time[src]
        # Sort by destination, then time, then source identity: the visible neighbours of
        # a destination at time t are then a prefix of its list, in an order that does not
        # depend on row positions.
        order = np.lexsort((src_id[src], edge_time, dst))
    else:
        edge_time = None
        order = np.lexsort((src_id[src], dst))
    counts = np.bincount(dst, minlength=n_dst)
    indptr = np.zeros(n_dst + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nbr_time = None
    if edge_time is not None:
        nbr_time = np.ascontiguousarray(edge_time[order], dtype=np.int64)
    direct = None
    if n_dst == 0 or counts.max(initial=0) <= 1:
        direct = np.full(n_dst, -1, dtype=np.int64)
        direct[dst] = src
    return Adjacency(
        indptr=indptr,
        nbr=np.ascontiguousarray(src[order], dtype=np.int64),
        nbr_time=nbr_time,
        direct=direct,
    )
