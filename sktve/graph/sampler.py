"""Vectorised temporal neighbour sampler and the batch it produces.

For a seed ``(row, t)`` the sampler grows a tree of hops: at hop ``h`` every node of the
frontier picks up to ``fanouts[h]`` of its neighbours along every edge type, among the
neighbours whose time is at or before ``t`` (static tables always qualify); all of them
when there are fewer. Subgraphs are disjoint per seed: a row reached from two seeds (or
along two paths) is two nodes, each carrying its seed's index.

Randomness is *counter-based*: the neighbours a node picks are a keyed pseudo-random
permutation of the offsets ``0 .. n_valid - 1`` of its visible-neighbour prefix, keyed by
a hash of (random_state, seed table, seed key, seed time, hop, edge type, node key),
where a row's key is its primary key value (its position in tables without one).
Nothing depends on rows a seed cannot see, nor on which other seeds share the batch, so
changing or adding rows later than ``t`` never changes a seed's subgraph, and a seed's
embedding is the same alone or in any batch.

Everything is vectorised over the batch with numpy; Python loops run over hops and edge
types only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from sktve.graph.build import TemporalGraph
from sktve.graph.features import EdgeType

__all__ = ["SampledBatch", "TemporalNeighborSampler"]

_NS_PER_DAY = 86400.0 * 1e9
_U = np.uint64
_GOLDEN = 0x9E3779B97F4A7C15
_ROUNDS = 4
_DENSE_FACTOR = 4  # exact hash-score sampling for lists up to 4x the fan-out
_DENSE_CELLS = 1 << 22  # candidate scores held at once
_DENSE_MIN = 256  # ... and for all lists this short (tiny permutation domains are biased)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (returns a new array)."""
    x = x ^ (x >> _U(30))
    x *= _U(0xBF58476D1CE4E5B9)
    x ^= x >> _U(27)
    x *= _U(0x94D049BB133111EB)
    x ^= x >> _U(31)
    return x


def _salt(i: int) -> np.uint64:
    # Python ints do not overflow; wrap to 64 bits before numpy sees the constant.
    return _U((i * _GOLDEN) & 0xFFFFFFFFFFFFFFFF)


def _u64(values: Any) -> np.ndarray:
    return np.asarray(values).astype(np.int64, copy=False).view(np.uint64)


def _const(value: int) -> np.ndarray:
    return _mix(np.array([value], dtype=np.uint64))


class _KeyedPermutation:
    """Pseudo-random bijections of ``[0, n)``, one per key, evaluated elementwise.

    Each element works on the power-of-two domain ``[0, 2**b)`` with ``2**b >= n``
    through rounds of (add key, multiply by an odd key, xor-shift right, xor-shift left),
    each a bijection of that domain; values landing at or above ``n`` are walked through
    the permutation again (cycle walking), which turns it into a bijection of ``[0, n)``.
    Distinct inputs thus give distinct outputs: sampling without replacement.
    """

    def __init__(self, keys: np.ndarray, n: np.ndarray) -> None:
        bits = np.frexp((n - 1).astype(np.float64))[1].astype(np.uint64)  # bit length
        self.mask = (_U(1) << bits) - _U(1)
        self.right = np.maximum(bits >> _U(1), _U(1))
        self.left = np.maximum(bits - self.right, _U(1))
        self.n = n.astype(np.uint64)
        self.add = [_mix(keys + _salt(2 * r + 1)) for r in range(_ROUNDS)]
        self.mul = [_mix(keys + _salt(2 * r + 2)) | _U(1) for r in range(_ROUNDS)]

    def _apply(self, x: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        def take(a: np.ndarray) -> np.ndarray:
            return a if idx is None else a[idx]

        mask, right, left = take(self.mask), take(self.right), take(self.left)
        for r in range(_ROUNDS):
            x = (x + take(self.add[r])) & mask
            x = (x * take(self.mul[r])) & mask
            x ^= x >> right
            x ^= (x << left) & mask
        return x

    def __call__(self, i: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            y = self._apply(i.astype(np.uint64), None)
            todo = np.flatnonzero(y >= self.n)
            while len(todo):
                y[todo] = self._apply(y[todo], todo)
                todo = todo[y[todo] >= self.n[todo]]
        return y.astype(np.int64)


def _choose_offsets(keys: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct pseudo-random offsets in ``[0, n[i])`` for each key (all ``n > k``).

    Lists at most ``max(4 k, 256)`` long are sampled exactly (the ``k`` smallest of one
    hash score per candidate): small domains are where a cheap keyed permutation is
    visibly biased. Longer lists use the O(k) keyed permutation, so a hub with millions
    of visible neighbours costs O(k), not O(degree).
    """
    out = np.empty((len(keys), k), dtype=np.int64)
    dense = n <= max(_DENSE_FACTOR * k, _DENSE_MIN)
    idx = np.flatnonzero(dense)
    if len(idx):
        width = int(n[idx].max())
        step = max(1, _DENSE_CELLS // width)
        salts = _mix(np.arange(width, dtype=np.uint64) + _U(_salt(7)))
        for lo in range(0, len(idx), step):  # chunks bound memory, not a loop over seeds
            part = idx[lo : lo + step]
            with np.errstate(over="ignore"):
                score = _mix(keys[part, None] ^ salts[None, :])
            score[np.arange(width)[None, :] >= n[part, None]] = np.iinfo(np.uint64).max
            out[part] = np.argpartition(score, k - 1, axis=1)[:, :k]
    idx = np.flatnonzero(~dense)
    if len(idx):
        perm = _KeyedPermutation(np.repeat(keys[idx], k), np.repeat(n[idx], k))
        out[idx] = perm(np.tile(np.arange(k, dtype=np.int64), len(idx))).reshape(-1, k)
    return out


@dataclass
class SampledBatch:
    """Disjoint temporal subgraphs of a batch of seeds, ready for the encoder.

    Node ``j`` of type ``T`` in the batch is row ``node_rows[T][j]`` of table ``T``,
    reached from seed ``node_seed[T][j]`` at hop ``depth``; nodes of each type are
    ordered by depth, and the seeds are nodes ``0 .. num_seeds - 1`` of ``seed_table``.

    Attributes
    ----------
    seed_table : str
    num_seeds : int
    num_hops : int
    seed_time : LongTensor (num_seeds,)
        Seed times, ns since the epoch.
    node_rows, node_seed : dict of str to LongTensor
        Table row and seed index of each node, for every node type (possibly empty).
    depth_ptr : dict of str to list of int
        Nodes with depth <= d are ``[0, depth_ptr[T][d + 1])``; ``depth_ptr[T][0] == 0``.
    x_num : dict of str to FloatTensor (n_nodes, num_dim)
    x_cat : dict of str to LongTensor (n_nodes, n_categorical)
    rel_time : dict of str to FloatTensor (n_nodes,)
        Seed time minus node time, in days (>= 0), for temporal node types only.
    node_time : dict of str to LongTensor (n_nodes,)
        Node times (ns since the epoch), for temporal node types only.
    edge_index : dict of edge type to LongTensor (2, n_edges)
        Row 0: local index of the sampled (source) node, row 1: local index of the node
        that sampled it; messages flow from row 0 to row 1 (PyG convention).
    edge_ptr : dict of edge type to list of int
        Edges sampled at hop <= h are ``[0, edge_ptr[E][h + 1])``.
    """

    seed_table: str
    num_seeds: int
    num_hops: int
    seed_time: torch.Tensor
    node_rows: dict[str, torch.Tensor]
    node_seed: dict[str, torch.Tensor]
    depth_ptr: dict[str, list[int]]
    x_num: dict[str, torch.Tensor]
    x_cat: dict[str, torch.Tensor]
    rel_time: dict[str, torch.Tensor]
    node_time: dict[str, torch.Tensor]
    edge_index: dict[EdgeType, torch.Tensor]
    edge_ptr: dict[EdgeType, list[int]] = field(default_factory=dict)

    @property
    def num_nodes(self) -> dict[str, int]:
        return {t: int(v.shape[0]) for t, v in self.node_rows.items()}

    @property
    def num_edges(self) -> int:
        return int(sum(e.shape[1] for e in self.edge_index.values()))

    @property
    def device(self) -> torch.device:
        return self.seed_time.device

    def to(self, device: Any, non_blocking: bool = False) -> SampledBatch:
        """A copy with every tensor on ``device``."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=non_blocking)
            elif (
                isinstance(value, dict)
                and value
                and isinstance(next(iter(value.values())), torch.Tensor)
            ):
                value = {k: v.to(device, non_blocking=non_blocking) for k, v in value.items()}
            moved[f.name] = value
        return SampledBatch(**moved)

    def to_hetero_data(self):
        """The batch as a PyG ``HeteroData`` (``x_num``, ``x_cat``, ``rel_time``,
        ``row``, ``batch`` per node type; ``edge_index`` per edge type)."""
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for t in self.node_rows:
            data[t].x_num = self.x_num[t]
            data[t].x_cat = self.x_cat[t]
            data[t].row = self.node_rows[t]
            data[t].batch = self.node_seed[t]
            data[t].num_nodes = int(self.node_rows[t].shape[0])
            if t in self.rel_time:
                data[t].rel_time = self.rel_time[t]
        for et, ei in self.edge_index.items():
            data[et].edge_index = ei
        data.seed_table = self.seed_table
        data.seed_time = self.seed_time
        return data


class TemporalNeighborSampler:
    """Sample disjoint temporal subgraphs around seeds, hop by hop.

    Parameters
    ----------
    graph : TemporalGraph
    fanouts : sequence of int
        Neighbours sampled per node, per edge type, at each hop (e.g. ``[128, 64]``);
        the length is the number of hops. ``-1`` takes every visible neighbour.
    random_state : int, default=0
        Key of the counter-based hash that drives sampling.

    Examples
    --------
    >>> sampler = TemporalNeighborSampler(graph, fanouts=[16, 8])  # doctest: +SKIP
    >>> batch = sampler.sample("users", positions, times_ns)       # doctest: +SKIP
    """

    def __init__(
        self, graph: TemporalGraph, fanouts: Sequence[int] = (128, 64), random_state: int = 0
    ) -> None:
        if not isinstance(graph, TemporalGraph):
            raise TypeError(
                f"graph must be a TemporalGraph (GraphFeaturizer.transform), got "
                f"{type(graph).__name__}."
            )
        fanouts = [int(k) for k in fanouts]
        if any(k == 0 or k < -1 for k in fanouts):
            raise ValueError(f"fanouts must be positive (or -1 for all), got {fanouts}.")
        self.graph = graph
        self.fanouts = fanouts
        self.random_state = int(random_state)
        self._edge_type_id = {et: i for i, et in enumerate(graph.metadata.edge_types)}
        self._table_id = {t: i for i, t in enumerate(graph.metadata.node_types)}

    # ------------------------------------------------------------------ keys
    def _seed_keys(self, seed_table: str, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            base = _const(
                (self.random_state & 0xFFFFFFFFFFFF) * 1_000_003 + self._table_id[seed_table]
            )
            key = _mix(base ^ _u64(rows))
            return _mix(key ^ _u64(times))

    def _owner_keys(
        self, seed_keys: np.ndarray, rows: np.ndarray, hop: int, edge_type: EdgeType
    ) -> np.ndarray:
        with np.errstate(over="ignore"):
            salt = _const((hop + 1) * 65_537 + self._edge_type_id[edge_type])
            return _mix(seed_keys ^ _mix(_u64(rows) + salt))

    # ------------------------------------------------------------------ sampling
    def _check_seeds(
        self, seed_table: str, seed_positions: Any, seed_times: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        if seed_table not in self.graph.num_nodes:
            raise KeyError(
                f"unknown seed table {seed_table!r}; node types are {self.graph.node_types}."
            )
        positions = np.asarray(seed_positions)
        times = np.asarray(seed_times)
        if times.dtype.kind == "M":
            times = times.astype("datetime64[ns]").view(np.int64)
        if positions.ndim != 1 or times.shape != positions.shape:
            raise ValueError(
                f"seed_positions and seed_times must be 1-d arrays of one length; got shapes "
                f"{positions.shape} and {times.shape}."
            )
        if positions.dtype.kind not in "iu" or times.dtype.kind not in "iu":
            raise TypeError(
                "seed_positions must be integer row positions and seed_times int64 ns (or "
                f"datetime64); got {positions.dtype} and {times.dtype}."
            )
        positions = positions.astype(np.int64, copy=False)
        n_rows = self.graph.num_nodes[seed_table]
        if len(positions) and (positions.min() < 0 or positions.max() >= n_rows):
            raise ValueError(
                f"seed_positions must be row positions in [0, {n_rows}) of {seed_table!r}; "
                "map ids to positions with Database.entity_positions first."
            )
        return positions, times.astype(np.int64, copy=False)

    def _sample_edge_type(
        self,
        edge_type: EdgeType,
        rows: np.ndarray,
        seeds: np.ndarray,
        times: np.ndarray,
        seed_keys: np.ndarray,
        hop: int,
        fanout: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(owner index into ``rows``, sampled neighbour row) for one edge type and hop."""
        graph = self.graph
        adj = graph.adj[edge_type]
        src = edge_type[0]
        src_time = graph.time[src]
        if adj.direct is not None:
            nbr = adj.direct[rows]
            ok = nbr >= 0
            if src_time is not None:
                ok &= src_time[np.where(ok, nbr, 0)] <= times
            owner = np.flatnonzero(ok)
            return owner, nbr[owner]
        start = adj.indptr[rows]
        if src_time is None:
            n_valid = adj.indptr[rows + 1] - start
        else:
            level = np.searchsorted(graph.time_levels[src], times, side="right")
            end = np.searchsorted(adj.time_key, rows * adj.stride + level, side="left")
            n_valid = end - start
        count = n_valid if fanout < 0 else np.minimum(n_valid, fanout)
        total = int(count.sum())
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), count)
        first = np.cumsum(count) - count
        offset = np.arange(total, dtype=np.int64) - np.repeat(first, count)
        if fanout > 0:
            crowded = np.flatnonzero(n_valid > fanout)
            if len(crowded):
                # Only nodes with more visible neighbours than the fan-out draw at random;
                # their draws are keyed by information the seed can see.
                keys = self._owner_keys(
                    seed_keys[seeds[crowded]],
                    graph.node_id[edge_type[2]][rows[crowded]],
                    hop,
                    edge_type,
                )
                elem = first[crowded][:, None] + np.arange(fanout)
                offset[elem.ravel()] = _choose_offsets(keys, n_valid[crowded], fanout).ravel()
        return owner, adj.nbr[start[owner] + offset]

    def sample_subgraph(
        self, seed_table: str, seed_positions: Any, seed_times: Any
    ) -> dict[str, Any]:
        """Sample the disjoint subgraphs as numpy index arrays (no features gathered).

        Returns
        -------
        dict with ``rows``, ``seed``, ``depth_ptr`` (per node type), ``edges`` and
        ``edge_ptr`` (per edge type), ``positions`` and ``times`` of the seeds.
        """
        positions, times = self._check_seeds(seed_table, seed_positions, seed_times)
        graph = self.graph
        node_types = graph.metadata.node_types
        n_seeds = len(positions)
        seed_keys = self._seed_keys(seed_table, graph.node_id[seed_table][positions], times)
        arange = np.arange(n_seeds, dtype=np.int64)
        rows: dict[str, list[np.ndarray]] = {t: [] for t in node_types}
        seeds: dict[str, list[np.ndarray]] = {t: [] for t in node_types}
        count = dict.fromkeys(node_types, 0)
        depth_ptr = {t: [0] for t in node_types}
        edges: dict[EdgeType, list[np.ndarray]] = {et: [] for et in graph.metadata.edge_types}
        edge_ptr = {et: [0] for et in graph.metadata.edge_types}
        rows[seed_table].append(positions)
        seeds[seed_table].append(arange)
        count[seed_table] = n_seeds
        for t in node_types:
            depth_ptr[t].append(count[t])
        # frontier[type] = (table rows, seed index, local node index)
        frontier = {seed_table: (positions, arange, arange)}
        seed_row_time = graph.time[seed_table]
        if seed_row_time is not None:
            # A seed row stamped after its seed time is future data, references included:
            # it stays in the batch (blanked by `sample`) but is not expanded.
            visible = np.flatnonzero(seed_row_time[positions] <= times)
            frontier = {seed_table: (positions[visible], visible, visible)}
        for hop, fanout in enumerate(self.fanouts):
            new: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
            for et in graph.metadata.edge_types:
                src, _, dst = et
                if dst not in frontier or len(frontier[dst][0]) == 0:
                    edge_ptr[et].append(edge_ptr[et][-1])
                    continue
                f_rows, f_seed, f_local = frontier[dst]
                owner, nbr = self._sample_edge_type(
                    et, f_rows, f_seed, times[f_seed], seed_keys, hop, fanout
                )
                child_seed = f_seed[owner]
                child_local = np.arange(count[src], count[src] + len(nbr), dtype=np.int64)
                count[src] += len(nbr)
                rows[src].append(nbr)
                seeds[src].append(child_seed)
                edges[et].append(np.stack([child_local, f_local[owner]]))
                edge_ptr[et].append(edge_ptr[et][-1] + len(nbr))
                new.setdefault(src, []).append((nbr, child_seed, child_local))
            for t in node_types:
                depth_ptr[t].append(count[t])
            frontier = {
                t: tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
                for t, parts in new.items()
            }
        empty = np.zeros(0, dtype=np.int64)
        return {
            "rows": {t: np.concatenate(v) if v else empty for t, v in rows.items()},
            "seed": {t: np.concatenate(v) if v else empty for t, v in seeds.items()},
            "depth_ptr": depth_ptr,
            "edges": {
                et: np.concatenate(v, axis=1) if v else np.zeros((2, 0), dtype=np.int64)
                for et, v in edges.items()
            },
            "edge_ptr": edge_ptr,
            "positions": positions,
            "times": times,
        }

    def sample(self, seed_table: str, seed_positions: Any, seed_times: Any) -> SampledBatch:
        """Sample subgraphs around seeds and gather their features.

        Parameters
        ----------
        seed_table : str
            Node type of the seeds.
        seed_positions : ndarray of int64, shape (n_seeds,)
            Row positions of the seeds in ``seed_table``.
        seed_times : ndarray of int64 (ns since the epoch) or datetime64, shape (n_seeds,)
            Each seed sees only rows with time <= its time.

        Returns
        -------
        SampledBatch
            On the CPU; move it with ``batch.to(device)``.
        """
        sub = self.sample_subgraph(seed_table, seed_positions, seed_times)
        graph = self.graph
        times = sub["times"]
        n_seeds = len(times)
        x_num, x_cat, rel_time, abs_time = {}, {}, {}, {}
        for t in graph.metadata.node_types:
            node_rows = sub["rows"][t]
            xn = graph.x_num[t][node_rows]
            xc = graph.x_cat[t][node_rows]
            node_time = graph.time[t]
            if node_time is not None:
                abs_time[t] = node_time[node_rows]
                rel = times[sub["seed"][t]] - abs_time[t]
                if t == seed_table and n_seeds:
                    # A seed row stamped after its own seed time is not visible to it:
                    # keep the node (it is the entity) but blank its features.
                    hidden = np.flatnonzero(rel[:n_seeds] < 0)
                    xn[hidden] = 0.0
                    xc[hidden] = 0
                rel_time[t] = torch.from_numpy(
                    (np.maximum(rel, 0) / _NS_PER_DAY).astype(np.float32)
                )
            x_num[t] = torch.from_numpy(xn)
            x_cat[t] = torch.from_numpy(xc)
        return SampledBatch(
            seed_table=seed_table,
            num_seeds=n_seeds,
            num_hops=len(self.fanouts),
            seed_time=torch.from_numpy(times.copy()),
            node_rows={t: torch.from_numpy(v) for t, v in sub["rows"].items()},
            node_seed={t: torch.from_numpy(v) for t, v in sub["seed"].items()},
            depth_ptr=sub["depth_ptr"],
            x_num=x_num,
            x_cat=x_cat,
            rel_time=rel_time,
            node_time={t: torch.from_numpy(v) for t, v in abs_time.items()},
            edge_index={et: torch.from_numpy(v) for et, v in sub["edges"].items()},
            edge_ptr=sub["edge_ptr"],
        )
