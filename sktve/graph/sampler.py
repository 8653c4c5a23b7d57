"""Vectorised temporal neighbour sampler and the batch it produces.

For a seed ``(row, t)`` the sampler grows a tree of hops: at hop ``h`` every node of the
frontier picks up to ``fanouts[h]`` of its neighbours along every edge type, among the
neighbours whose time is at or before ``t`` (static tables always qualify); all of them
when there are fewer. Subgraphs are disjoint per seed: a row reached from two seeds is
two nodes, each carrying its seed's index. A row that one seed reaches along several paths
at the same hop is one node with an edge to each node that reached it (``merge_repeats``):
its copies would have drawn the same neighbours, so the tree and the merged graph give the
encoder the same means, the latter from fewer nodes.

Randomness is *counter-based*: the neighbours a node picks are a keyed pseudo-random
permutation of the offsets ``0 .. n_valid - 1`` of its visible-neighbour prefix, keyed by
a hash of (random_state, seed table, seed key, seed time, hop, edge type, node key),
where a row's key is its primary key value (its position in tables without one).
Nothing depends on rows a seed cannot see, nor on which other seeds share the batch, so
changing or adding rows later than ``t`` never changes a seed's subgraph, and a seed's
embedding is the same alone or in any batch.

Everything is vectorised over the batch with numpy; Python loops run over hops and edge
types only. The many-neighbour edge types into one table are expanded together, over the
table's shared CSR (:class:`~sktve.graph.NeighborLists`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from itertools import accumulate
from typing import Any

import numpy as np
import torch

from sktve.graph.build import TemporalGraph
from sktve.graph.features import EdgeType

__all__ = [
    "TEMPORAL_STRATEGIES",
    "SampledBatch",
    "TemporalNeighborSampler",
    "check_temporal_strategy",
]

#: Which visible neighbours a node keeps beyond its fan-out (see TemporalNeighborSampler).
TEMPORAL_STRATEGIES = ("uniform", "last")


def check_temporal_strategy(value: Any) -> None:
    """Raise a clear error unless ``value`` is one of :data:`TEMPORAL_STRATEGIES`."""
    if value not in TEMPORAL_STRATEGIES:
        raise ValueError(f"temporal_strategy must be one of {TEMPORAL_STRATEGIES}, got {value!r}.")


_NS_PER_DAY = 86400.0 * 1e9
_INT64_MAX = np.iinfo(np.int64).max
# Age (days) of the latest referencing row, as a history input, at most this: also the
# value when there is none. Ten years: older than that reads as "never".
HISTORY_RECENCY_CAP_DAYS = 3650.0
_U = np.uint64
_GOLDEN = 0x9E3779B97F4A7C15
_ROUNDS = 4
_DENSE_FACTOR = 4  # exact hash-score sampling for lists up to 4x the fan-out
_DENSE_CELLS = 1 << 22  # candidate scores held at once
_DENSE_MIN = 256  # ... and for all lists this short (tiny permutation domains are biased)


# Hash constants as 0-d arrays: numpy operates on them faster than on numpy scalars,
# which matters for the many small arrays of a batch.
_MIX_SHIFTS = tuple(np.array(v, dtype=np.uint64) for v in (30, 27, 31))
_FOLD_SHIFT = np.array(32, dtype=np.uint64)
_MIX_MULS = tuple(np.array(v, dtype=np.uint64) for v in (0xBF58476D1CE4E5B9, 0x94D049BB133111EB))
_H32 = tuple(np.array(v, dtype=np.uint32) for v in (16, 0x7FEB352D, 15, 0x846CA68B))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (returns a new array)."""
    s30, s27, s31 = _MIX_SHIFTS
    tmp = np.right_shift(x, s30)
    x = np.bitwise_xor(x, tmp)
    x *= _MIX_MULS[0]
    np.right_shift(x, s27, out=tmp)
    x ^= tmp
    x *= _MIX_MULS[1]
    np.right_shift(x, s31, out=tmp)
    x ^= tmp
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
        right = np.maximum(bits >> _U(1), _U(1))
        salts = np.array([_salt(j) for j in range(1, 2 * _ROUNDS + 1)], dtype=np.uint64)
        keyed = _mix(keys[None, :] + salts[:, None])  # round r: add = row 2r, mul = row 2r+1
        keyed[1::2] |= _U(1)
        # rows: mask, right shift, left shift, n, then (add, mul) per round
        self.params = np.vstack(
            [
                (_U(1) << bits) - _U(1),
                right,
                np.maximum(bits - right, _U(1)),
                n.astype(np.uint64),
                keyed,
            ]
        )

    @staticmethod
    def _apply(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The rounds, in place on ``x`` (``p``: the parameter rows of its elements)."""
        mask, right, left = p[0], p[1], p[2]
        t = np.empty_like(x)
        for r in range(_ROUNDS):
            # (x + add) * mul, both mod 2**b: masking once after the product is the same
            x += p[4 + 2 * r]
            x *= p[5 + 2 * r]
            x &= mask
            np.right_shift(x, right, out=t)
            x ^= t
            np.left_shift(x, left, out=t)
            t &= mask
            x ^= t
        return x

    def __call__(self, i: np.ndarray) -> np.ndarray:
        p = self.params
        with np.errstate(over="ignore"):
            y = self._apply(i.astype(np.uint64), p)
            todo = np.flatnonzero(y >= p[3])
            while len(todo):
                q = p.take(todo, axis=1)
                z = self._apply(y[todo], q)
                y[todo] = z
                todo = todo[z >= q[3]]
        return y.astype(np.int64)


_U32 = np.uint32
_U32_MAX = np.iinfo(np.uint32).max


def _hash32_into(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """A bijective 32-bit integer hash (Wellons' "lowbias32") in place on a uint32 array
    (``tmp``: scratch of the same shape)."""
    s16, m1, s15, m2 = _H32
    np.right_shift(x, s16, out=tmp)
    x ^= tmp
    x *= m1
    np.right_shift(x, s15, out=tmp)
    x ^= tmp
    x *= m2
    np.right_shift(x, s16, out=tmp)
    x ^= tmp
    return x


_SALTS = np.zeros(0, dtype=np.uint32)


def _dense_salts(width: int) -> np.ndarray:
    """Per-offset salts of the exact (dense) sampler: distinct uint32 values (a bijective
    hash of the offsets), cached and grown on demand."""
    global _SALTS
    salts = _SALTS
    if len(salts) < width:
        size = max(width, 2 * len(salts), _DENSE_MIN)
        salts = np.arange(size, dtype=np.uint32) ^ _U32(0x9E3779B9)
        _SALTS = _hash32_into(salts, np.empty_like(salts))
    return _SALTS[:width]


def _dense_scores(keys: np.ndarray, width: int) -> np.ndarray:
    """Score of offset ``j`` for key ``i``: ``hash32(fold32(keys[i]) ^ salt[j])``, shape
    ``(len(keys), width)``. A row's scores are distinct: the salts are, and the hash is a
    bijection."""
    folded = (keys ^ (keys >> _FOLD_SHIFT)).astype(np.uint32)
    score = np.bitwise_xor(folded[:, None], _dense_salts(width)[None, :])
    return _hash32_into(score, np.empty_like(score))


def _smallest(score: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` smallest of ``score[i, :n[i]]`` per row (all ``n > k``), in
    increasing order (``score``, uint32, is overwritten).

    A row's scores are distinct, so "the k smallest" is a set. Cells past a row's end
    are set to the largest uint32; a valid cell of that value is its row's largest, so
    (with ``n > k``) never among the ``k`` smallest.
    """
    rows, width = score.shape
    if int(n.min()) < width:
        np.copyto(score, _U32_MAX, where=np.arange(width)[None, :] >= n)
    chosen = score <= np.partition(score, k - 1, axis=1)[:, k - 1 : k]
    return np.flatnonzero(chosen).reshape(rows, k) - np.arange(0, rows * width, width)[:, None]


def _choose_offsets(keys: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct pseudo-random offsets in ``[0, n[i])`` for each key (all ``n > k``),
    in increasing order.

    Lists at most ``max(4 k, 256)`` long are sampled exactly (the ``k`` smallest of one
    32-bit hash score per candidate, see :func:`_dense_scores`): small domains are where
    a cheap keyed permutation is visibly biased. Longer lists use the O(k) keyed
    permutation, so a hub with millions of visible neighbours costs O(k), not O(degree).
    """
    out = np.empty((len(keys), k), dtype=np.int64)
    dense = n <= max(_DENSE_FACTOR * k, _DENSE_MIN)
    idx = np.flatnonzero(dense)
    if len(idx):
        n_dense = n[idx]
        width = int(n_dense.max())
        step = max(1, _DENSE_CELLS // width)
        for lo in range(0, len(idx), step):  # chunks bound memory, not a loop over seeds
            part = idx[lo : lo + step]
            score = _dense_scores(keys[part], width)
            out[part] = _smallest(score, n_dense[lo : lo + step, None], k)
    idx = np.flatnonzero(~dense)
    if len(idx):
        perm = _KeyedPermutation(np.repeat(keys[idx], k), np.repeat(n[idx], k))
        drawn = perm(np.tile(np.arange(k, dtype=np.int64), len(idx))).reshape(-1, k)
        out[idx] = np.sort(drawn, axis=1)
    return out


# Parts of an output array, ``(length, kind, a, b)``, written into it by `_fill`.
_OWN = 0  # a: a fresh array (returned as is when it is the whole output)
_COPY = 1  # a: an array owned elsewhere (copied)
_TAKE = 2  # a[b]
_RANGE = 3  # a + arange(length)
_ADD = 4  # a + b
_Part = tuple[int, int, Any, Any]


def _fill(out: np.ndarray, part: _Part, ar: np.ndarray) -> None:
    n, kind, a, b = part
    if kind == _TAKE:
        a.take(b, out=out, mode="clip")  # indices are valid; "raise" would buffer
    elif kind == _RANGE:
        np.add(ar[:n], a, out=out)
    elif kind == _ADD:
        np.add(a, b, out=out)
    else:
        out[...] = a


def _own(part: _Part) -> _Part:
    """The part as an array (kind _OWN, or _COPY when it is another array as is)."""
    if part[1] in (_OWN, _COPY):
        return part
    out = np.empty(part[0], dtype=np.int64)
    _fill(out, part, np.arange(part[0] if part[1] == _RANGE else 0, dtype=np.int64))
    return (part[0], _OWN, out, 0)


def _joined(parts: list[_Part]) -> np.ndarray:
    """The parts end to end, as an array that nothing else holds (only a lone part owned
    elsewhere needs a copy: a concatenation is one)."""
    if len(parts) > 1:
        return np.concatenate([_own(p)[2] for p in parts])
    if parts[0][1] == _COPY:
        return parts[0][2].copy()
    return _own(parts[0])[2]


def _groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_index=True, return_inverse=True)`` without the values: the
    first position of each distinct key (in key order) and each entry's group.

    A stable sort puts each group's first occurrence first. Keys come seed by seed, so
    they are nearly sorted already, which the stable sort is quick on.
    """
    order = np.argsort(key, kind="stable")
    sorted_key = key.take(order)
    starts_group = np.empty(len(key), dtype=bool)
    starts_group[:1] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=starts_group[1:])
    first = order[starts_group]
    group = np.cumsum(starts_group, dtype=np.int64)
    group -= 1
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = group
    return first, inverse


def _merge_repeats(
    row_parts: list[_Part], seed_parts: list[_Part], n_rows: int, n_seeds: int, merge: bool
) -> tuple[np.ndarray, np.ndarray, list[int | np.ndarray]]:
    """One node per (seed, row) among the nodes of one type reached at one hop.

    A row that one seed reaches at one hop along several paths (the race of each of a
    driver's results and qualifyings, the driver itself behind each of its results)
    would expand into identical subtrees: a node's draws are keyed by its seed, hop, edge
    type and row, never by its path. Kept once, with an edge to each of its parents, it
    gives the parents the same means, so the encoder computes the same embeddings from
    far fewer nodes.

    Returns the kept nodes' rows and seeds (first occurrences, in order) and, per part,
    the index among them of each of its nodes: an int (the part's first node; the rest
    follow it) when nothing was merged. Without ``merge``, every copy is kept.
    """
    starts = list(accumulate((p[0] for p in row_parts[:-1]), initial=0))
    node_rows = _joined(row_parts)
    node_seed = _joined(seed_parts)
    if len(node_rows) < 2 or not merge:
        return node_rows, node_seed, starts
    if n_seeds * max(n_rows, 1) < 2**62:
        key = node_seed * n_rows
        key += node_rows
        first, inverse = _groups(key)
    else:  # keys would overflow int64: unique pairs instead (slower)
        pairs = np.stack([node_seed, node_rows], axis=1)
        _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    if len(first) == len(node_rows):
        return node_rows, node_seed, starts
    order = np.argsort(first)
    rank = np.empty(len(first), dtype=np.int64)
    rank[order] = np.arange(len(first), dtype=np.int64)
    index = rank.take(inverse.reshape(-1))
    kept = first.take(order)
    return node_rows.take(kept), node_seed.take(kept), np.split(index, starts[1:])


def _assemble(parts: list[_Part], ar: np.ndarray) -> np.ndarray:
    if len(parts) == 1 and parts[0][1] == _OWN:
        return parts[0][2]
    out = np.empty(sum(p[0] for p in parts), dtype=np.int64)
    at = 0
    for part in parts:
        _fill(out[at : at + part[0]], part, ar)
        at += part[0]
    return out


def _tile(values: np.ndarray, reps: int) -> np.ndarray:
    """``np.tile`` of a 1-d array, without its Python-level overhead."""
    if reps == 1:
        return values
    out = np.empty(reps * len(values), dtype=values.dtype)
    out.reshape(reps, len(values))[...] = values
    return out


def _visible_ends(
    when: np.ndarray, start: np.ndarray, stop: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """End of the prefix with time ``<= t[i]`` of each list ``when[start[i]:stop[i]]``
    (non-decreasing within each list).

    A binary search runs for all lists together, touching only their own entries (a
    search over the whole array is a chain of cache misses on large tables).
    """
    last = stop - 1  # index of the list's last entry
    found = start - 1  # index of the last entry known to be <= t
    longest = int((stop - start).max(initial=0))
    if longest == 0:
        return start.copy()
    probe = np.empty_like(found)
    value = np.empty_like(found)
    ok = np.empty(len(found), dtype=bool)
    step = 1 << (longest.bit_length() - 1)  # 2 * step > any list length
    while step:
        np.add(found, step, out=probe)
        np.minimum(probe, last, out=probe)
        # empty lists read anything (clipped): they are masked out by `last` anyway
        when.take(probe, out=value, mode="clip")
        np.less_equal(value, t, out=ok)
        np.copyto(found, probe, where=ok)
        step >>= 1
    found += 1
    return found


class _Frontier:
    """Nodes of one type to expand at a hop: table rows, seed index, local index (an
    ``int`` when they are the contiguous nodes ``local, local + 1, ...``)."""

    __slots__ = ("local", "rows", "seed", "_seen", "seed_is_local")

    def __init__(
        self,
        rows: np.ndarray,
        seed: np.ndarray,
        local: int | np.ndarray,
        seed_is_local: bool = False,
    ) -> None:
        self.rows, self.seed, self.local = rows, seed, local
        self._seen = None
        # The seeds themselves: each node's seed index is its local index.
        self.seed_is_local = seed_is_local

    def seen(self, times: np.ndarray) -> np.ndarray:
        """Seed time of each node."""
        if self._seen is None:
            self._seen = times.take(self.seed, mode="clip")
        return self._seen


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
        that sampled it; messages flow from row 0 to row 1 (PyG convention). A node
        reached along several paths at one hop (``merge_repeats``) is the source of
        several edges.
    edge_ptr : dict of edge type to list of int
        Edges sampled at hop <= h are ``[0, edge_ptr[E][h + 1])``.
    seed_history : FloatTensor (num_seeds, n_child_edge_types * (2 + n_windows))
        Each seed's whole visible history, not just the fan-out sampled: per edge type
        of ``GraphMetadata.child_edge_types()`` into the seed table, a block of
        ``log1p`` of the number of rows referencing the seed with time <= the seed time
        (all of them from static tables), ``log1p`` of those within each of the
        sampler's ``history_windows`` before the seed time, and ``log1p`` of the days
        since the latest of them (capped at ``HISTORY_RECENCY_CAP_DAYS``, the cap when
        there is none; 0 from static tables). Mean aggregation cannot count; this
        carries the counts. Zero columns when nothing references the seed table.
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
    seed_history: torch.Tensor | None = None

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
    temporal_strategy : {"uniform", "last"}, default="uniform"
        Which visible neighbours a node keeps when it has more than the fan-out:
        ``"uniform"`` draws them without replacement (keyed as above); ``"last"`` keeps
        the most recent ones (for timestamped neighbours; the last ones in table order
        for static ones), as PyG's ``temporal_strategy="last"``.
    history_windows : sequence of int, default=()
        Windows (nanoseconds) of the recent counts in ``SampledBatch.seed_history``.
    merge_repeats : bool, default=True
        Keep one node per (seed, row) among the nodes reached at one hop, with an edge to
        each node that reached it. Its copies would expand alike (draws are keyed by seed,
        hop, edge type and row, never by path), so the encoder computes the same
        embeddings from fewer nodes. ``False`` keeps the full tree, one node per path.

    Examples
    --------
    >>> sampler = TemporalNeighborSampler(graph, fanouts=[16, 8])  # doctest: +SKIP
    >>> batch = sampler.sample("users", positions, times_ns)       # doctest: +SKIP
    """

    def __init__(
        self,
        graph: TemporalGraph,
        fanouts: Sequence[int] = (128, 64),
        random_state: int = 0,
        temporal_strategy: str = "uniform",
        history_windows: Sequence[int] = (),
        merge_repeats: bool = True,
    ) -> None:
        if not isinstance(graph, TemporalGraph):
            raise TypeError(
                f"graph must be a TemporalGraph (GraphFeaturizer.transform), got "
                f"{type(graph).__name__}."
            )
        fanouts = [int(k) for k in fanouts]
        if any(k == 0 or k < -1 for k in fanouts):
            raise ValueError(f"fanouts must be positive (or -1 for all), got {fanouts}.")
        check_temporal_strategy(temporal_strategy)
        self.graph = graph
        self.fanouts = fanouts
        self.temporal_strategy = temporal_strategy
        self.random_state = int(random_state)
        self.history_windows = tuple(int(w) for w in history_windows)
        self.merge_repeats = bool(merge_repeats)
        if any(w <= 0 for w in self.history_windows):
            raise ValueError(f"history_windows must be positive, got {self.history_windows}.")
        self._edge_type_id = {et: i for i, et in enumerate(graph.metadata.edge_types)}
        self._table_id = {t: i for i, t in enumerate(graph.metadata.node_types)}
        self._direct: dict[EdgeType, tuple[bool, np.ndarray | None]] = {}
        self._ar = np.zeros(0, dtype=np.int64)
        self._consts: dict[int, np.ndarray] = {}
        self._direct_into: dict[str, list[EdgeType]] = {t: [] for t in graph.metadata.node_types}
        for et in graph.metadata.edge_types:
            if graph.adj[et].direct is not None:
                self._direct_into[et[2]].append(et)
        self._list_salts: dict[tuple[str, int], np.ndarray] = {}
        self._child_edge_types = graph.metadata.child_edge_types()

    # ------------------------------------------------------------------ keys
    def _const(self, value: int) -> np.ndarray:
        out = self._consts.get(value)
        if out is None:
            with np.errstate(over="ignore"):
                out = self._consts[value] = _const(value)
        return out

    # (uint64 array arithmetic wraps silently; only numpy scalars warn on overflow)
    def _seed_keys(self, seed_table: str, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
        base = self._const(
            (self.random_state & 0xFFFFFFFFFFFF) * 1_000_003 + self._table_id[seed_table]
        )
        return _mix(_mix(base ^ _u64(rows)) ^ _u64(times))

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

    def _arange(self, n: int) -> np.ndarray:
        """A cached ``arange`` at least ``n`` long (read-only use: slices are views)."""
        ar = self._ar
        if len(ar) < n:
            ar = np.arange(max(n, 2 * len(ar)), dtype=np.int64)
            self._ar = ar
        return ar

    def _direct_info(self, edge_type: EdgeType) -> tuple[bool, np.ndarray | None]:
        """(some rows lack a neighbour, neighbour time per row or None) of a one-neighbour
        edge type; the time is None when no check is needed: static neighbours, or
        neighbours never later than the (temporal) row itself, which is already visible."""
        info = self._direct.get(edge_type)
        if info is None:
            src, _, dst = edge_type
            direct = self.graph.adj[edge_type].direct
            has = direct >= 0
            missing = not bool(has.all())
            src_time, dst_time = self.graph.time[src], self.graph.time[dst]
            when = None
            if src_time is not None:
                # Filled by mask, not gathered with a dummy index: src may have no rows.
                when = np.full(len(direct), _INT64_MAX, dtype=np.int64)
                when[has] = src_time[direct[has]]
                if dst_time is not None and bool((when[has] <= dst_time[has]).all()):
                    when = None
            info = self._direct[edge_type] = (missing, when)
        return info

    def _expand_direct(
        self, edge_type: EdgeType, front: _Frontier, times: np.ndarray
    ) -> tuple[int, _Part, _Part, _Part]:
        """(number of sampled nodes, their rows, their seeds, their parents' local index)
        along a one-neighbour edge type, as parts of the output arrays."""
        adj = self.graph.adj[edge_type]
        rows = front.rows
        local = front.local
        missing, when = self._direct_info(edge_type)
        nbr = None
        if when is not None:
            seen = front.seen(times)
            ok = when.take(rows, mode="clip") <= seen
            if missing and seen.max(initial=0) == _INT64_MAX:
                ok &= adj.direct.take(rows, mode="clip") >= 0
        elif missing:
            nbr = adj.direct.take(rows, mode="clip")
            ok = nbr >= 0
        else:
            ok = None
        if ok is None or bool(ok.all()):
            n = len(rows)
            row_part = (n, _OWN, nbr, 0) if nbr is not None else (n, _TAKE, adj.direct, rows)
            parent = (n, _RANGE, local, 0) if isinstance(local, int) else (n, _COPY, local, 0)
            return n, row_part, (n, _COPY, front.seed, 0), parent
        owner = np.flatnonzero(ok)
        n = len(owner)
        if nbr is not None:
            row_part = (n, _TAKE, nbr, owner)
        else:
            row_part = (n, _TAKE, adj.direct, rows.take(owner, mode="clip"))
        if isinstance(local, int):
            parent = (n, _ADD, owner, local)
        else:
            parent = (n, _TAKE, local, owner)
        return n, row_part, (n, _TAKE, front.seed, owner), parent

    def _salts(self, node_type: str, hop: int) -> np.ndarray:
        """Hash salt of each many-neighbour edge type into ``node_type`` at ``hop``."""
        salts = self._list_salts.get((node_type, hop))
        if salts is None:
            ids = [self._edge_type_id[et] for et in self.graph.neighbor_lists[node_type].edge_types]
            salts = np.concatenate([self._const((hop + 1) * 65_537 + i) for i in ids])
            self._list_salts[(node_type, hop)] = salts
        return salts

    def _expand_lists(
        self,
        node_type: str,
        front: _Frontier,
        times: np.ndarray,
        seed_keys: np.ndarray,
        hop: int,
        fanout: int,
    ) -> dict[EdgeType, tuple[int, _Part, _Part, _Part]]:
        """:meth:`_expand_direct`'s parts for every many-neighbour edge type into
        ``node_type``, sampled together: the lists of all edge types are rows of one
        (edge type, node) grid over the shared CSR, flattened edge type first, so each
        edge type's sampled nodes are one contiguous slice of the outputs."""
        lists = self.graph.neighbor_lists[node_type]
        rows = front.rows
        n_front = len(rows)
        n_types = len(lists.edge_types)
        bounds = lists.bounds.take(rows, axis=2, mode="clip")  # (2, n_types, n_front)
        start, stop = bounds[0].reshape(-1), bounds[1].reshape(-1)
        n_timed = lists.num_timed * n_front
        if n_timed:
            seen = front.seen(times)
            stop[:n_timed] = _visible_ends(
                lists.nbr_time,
                start[:n_timed],
                stop[:n_timed],
                _tile(seen, lists.num_timed),
            )
        n_valid = stop
        n_valid -= start
        count = n_valid if fanout < 0 else np.minimum(n_valid, fanout)
        per_type = count.reshape(n_types, n_front).sum(axis=1)
        n = int(per_type.sum())
        if n == 0:
            return {}
        ar = self._arange(max(n, n_front + (front.local if isinstance(front.local, int) else 0)))
        first = np.cumsum(count)
        first -= count
        if fanout > 0 and self.temporal_strategy == "last":
            # The visible prefix is time-sorted: its last `count` entries are the latest.
            pos = np.repeat(start + n_valid - count - first, count)
        else:
            pos = np.repeat(start - first, count)
        pos += ar[:n]
        if fanout > 0 and self.temporal_strategy == "uniform":
            crowded = np.flatnonzero(n_valid > fanout)
            if len(crowded):
                # Only nodes with more visible neighbours than the fan-out draw at random;
                # their draws are keyed by information the seed can see.
                which, node = np.divmod(crowded, n_front)
                node_ids = self.graph.node_id[node_type].take(rows.take(node, mode="clip"))
                salted = _u64(node_ids) + self._salts(node_type, hop).take(which)
                keys = _mix(seed_keys.take(front.seed.take(node)) ^ _mix(salted))
                picked = _choose_offsets(keys, n_valid.take(crowded), fanout)
                picked += start.take(crowded)[:, None]
                pos[first.take(crowded)[:, None] + ar[:fanout]] = picked
        seed = np.repeat(_tile(front.seed, n_types), count)
        if front.seed_is_local:
            parent = seed
        else:
            local = front.local
            if isinstance(local, int):
                local = ar[local : local + n_front]
            parent = np.repeat(_tile(local, n_types), count)
        node_rows = lists.nbr.take(pos, mode="clip")
        out = {}
        at = 0
        for et, m in zip(lists.edge_types, per_type.tolist()):
            if m:
                part = slice(at, at + m)
                row_part = (m, _OWN, node_rows[part], 0)
                out[et] = (m, row_part, (m, _OWN, seed[part], 0), (m, _COPY, parent[part], 0))
                at += m
        return out

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
        edge_types = graph.metadata.edge_types
        n_seeds = len(positions)
        seed_keys = self._seed_keys(seed_table, graph.node_id[seed_table][positions], times)
        # Output arrays are assembled once at the end from parts (see `_fill`), one part
        # per hop and type (edges: per hop and edge type). Types and edge types that
        # nothing reaches get no parts (and empty outputs).
        rows: dict[str, list[_Part]] = {seed_table: [(n_seeds, _COPY, positions, 0)]}
        seeds: dict[str, list[_Part]] = {seed_table: [(n_seeds, _RANGE, 0, 0)]}
        # per edge type: (sampled nodes' local index part, number of edges, parent part)
        edges: dict[EdgeType, list[tuple[_Part, int, _Part]]] = {}
        n_hops = len(self.fanouts)
        n_edges: dict[EdgeType, list[int]] = {}  # per hop
        count = {seed_table: n_seeds}  # nodes of each type so far
        counts = [dict(count)]  # ... after each depth
        # Nodes of one type reached at one hop are contiguous: local index `local` onwards.
        all_seeds = self._arange(n_seeds)[:n_seeds]
        frontier = {seed_table: _Frontier(positions, all_seeds, 0, seed_is_local=True)}
        seed_row_time = graph.time[seed_table]
        if seed_row_time is not None:
            # A seed row stamped after its seed time is future data, references included:
            # it stays in the batch (blanked by `sample`) but is not expanded.
            visible = np.flatnonzero(seed_row_time[positions] <= times)
            if len(visible) < n_seeds:
                front = _Frontier(positions[visible], visible, visible, seed_is_local=True)
                frontier = {seed_table: front}
        last = n_hops - 1
        lists_into = graph.neighbor_lists
        order = self._edge_type_id.__getitem__
        for hop, fanout in enumerate(self.fanouts):
            expanded: dict[EdgeType, tuple[int, _Part, _Part, _Part]] = {}
            for dst, front in frontier.items():
                if len(front.rows) == 0:
                    continue
                for et in self._direct_into[dst]:
                    expanded[et] = self._expand_direct(et, front, times)
                if dst in lists_into:
                    expanded.update(self._expand_lists(dst, front, times, seed_keys, hop, fanout))
            reached: dict[str, list[tuple[EdgeType, int, _Part, _Part, _Part]]] = {}
            # Edge-type order fixes the order of each type's nodes within a hop.
            for et in sorted(expanded, key=order):
                n, row_part, seed_part, parent = expanded[et]
                if n == 0:
                    continue
                n_edges.setdefault(et, [0] * n_hops)[hop] = n
                reached.setdefault(et[0], []).append((et, n, row_part, seed_part, parent))
            frontier = {}
            for t, parts in reached.items():
                before = count.get(t, 0)
                # The rows that one edge type's lists give a frontier of distinct (seed,
                # row) nodes are distinct: a row is in one list per foreign key.
                repeats = len(parts) > 1 or graph.adj[parts[0][0]].direct is not None
                node_rows, node_seed, sources = _merge_repeats(
                    [p[2] for p in parts],
                    [p[3] for p in parts],
                    graph.num_nodes[t],
                    n_seeds,
                    self.merge_repeats and repeats,
                )
                rows.setdefault(t, []).append((len(node_rows), _OWN, node_rows, 0))
                seeds.setdefault(t, []).append((len(node_seed), _OWN, node_seed, 0))
                for (et, n, _, _, parent), src in zip(parts, sources):
                    if isinstance(src, int):
                        src_part = (n, _RANGE, before + src, 0)
                    else:
                        src_part = (n, _ADD, src, before)
                    edges.setdefault(et, []).append((src_part, n, parent))
                count[t] = before + len(node_rows)
                if hop < last:
                    frontier[t] = _Frontier(node_rows, node_seed, before)
            counts.append(dict(count))
            if hop == last:
                break
        ar = self._arange(max(count.values()))
        out_edges = {}
        for et, parts in edges.items():
            out = np.empty((2, sum(n_edges[et])), dtype=np.int64)
            at = 0
            for src_part, n, parent in parts:
                _fill(out[0, at : at + n], src_part, ar)
                _fill(out[1, at : at + n], parent, ar)
                at += n
            out_edges[et] = out
        for et in edge_types:
            if et not in out_edges:
                out_edges[et] = np.zeros((2, 0), dtype=np.int64)
        depth_ptr = {}
        for t in node_types:
            if t in count:
                depth_ptr[t] = [0, *(c.get(t, 0) for c in counts)]
            else:
                depth_ptr[t] = [0] * (n_hops + 2)
        edge_ptr = {}
        for et in edge_types:
            if et in n_edges:
                edge_ptr[et] = list(accumulate(n_edges[et], initial=0))
            else:
                edge_ptr[et] = [0] * (n_hops + 1)
        no_nodes = np.zeros(0, dtype=np.int64)
        return {
            "rows": {t: _assemble(rows[t], ar) if t in rows else no_nodes for t in node_types},
            "seed": {t: _assemble(seeds[t], ar) if t in seeds else no_nodes for t in node_types},
            "depth_ptr": depth_ptr,
            "edges": out_edges,
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
            xn = graph.x_num[t].take(node_rows, axis=0, mode="clip")
            xc = graph.x_cat[t].take(node_rows, axis=0, mode="clip")
            node_time = graph.time[t]
            if node_time is not None:
                abs_time[t] = node_time.take(node_rows, mode="clip")
                rel = times.take(sub["seed"][t], mode="clip")
                rel -= abs_time[t]
                if t == seed_table and n_seeds:
                    # A seed row stamped after its own seed time is not visible to it:
                    # keep the node (it is the entity) but blank its features.
                    hidden = np.flatnonzero(rel[:n_seeds] < 0)
                    xn[hidden] = 0.0
                    xc[hidden] = 0
                np.maximum(rel, 0, out=rel)
                days = np.empty(len(rel), dtype=np.float32)
                # float64 division, then rounded to float32 (as `.astype(np.float32)`)
                np.true_divide(rel, _NS_PER_DAY, out=days, casting="unsafe")
                rel_time[t] = torch.from_numpy(days)
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
            seed_history=self._seed_history(seed_table, sub["positions"], times),
        )

    def _seed_history(
        self, seed_table: str, positions: np.ndarray, times: np.ndarray
    ) -> torch.Tensor:
        """``SampledBatch.seed_history``: each seed's visible referencing rows, all of them."""
        edge_types = self._child_edge_types.get(seed_table, [])
        windows = self.history_windows
        width = 2 + len(windows)
        out = np.zeros((len(positions), len(edge_types) * width), dtype=np.float32)
        for j, et in enumerate(edge_types):
            block = out[:, j * width : (j + 1) * width]
            adj = self.graph.adj[et]
            start = adj.indptr.take(positions, mode="clip")
            stop = adj.indptr.take(positions + 1, mode="clip")
            if adj.nbr_time is None:  # static rows: all visible, all "recent", no age
                block[:, : 1 + len(windows)] = (stop - start)[:, None]
                continue
            stop = _visible_ends(adj.nbr_time, start, stop, times)
            block[:, 0] = stop - start
            for k, window in enumerate(windows):
                # Rows at or before t - window are not in the window (t - window, t].
                older = _visible_ends(adj.nbr_time, start, stop, times - window)
                block[:, 1 + k] = stop - older
            if len(adj.nbr_time) == 0:  # an empty table: no rows, no age
                block[:, -1] = HISTORY_RECENCY_CAP_DAYS
                continue
            latest = adj.nbr_time.take(np.maximum(stop - 1, 0), mode="clip")
            days = (times - latest) / _NS_PER_DAY
            block[:, -1] = np.where(
                stop > start, np.minimum(days, HISTORY_RECENCY_CAP_DAYS), HISTORY_RECENCY_CAP_DAYS
            )
        return torch.from_numpy(np.log1p(out, out=out))
