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

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
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
_U64_MAX = np.iinfo(np.uint64).max
_LITTLE_ENDIAN = sys.byteorder == "little"
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


def _mix_into(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """:func:`_mix` in place on ``x`` (``tmp``: scratch of the same shape)."""
    np.right_shift(x, _U(30), out=tmp)
    x ^= tmp
    x *= _U(0xBF58476D1CE4E5B9)
    np.right_shift(x, _U(27), out=tmp)
    x ^= tmp
    x *= _U(0x94D049BB133111EB)
    np.right_shift(x, _U(31), out=tmp)
    x ^= tmp
    return x


_SALTS = np.zeros(0, dtype=np.uint64)


def _dense_salts(width: int) -> np.ndarray:
    """Per-offset salts of the exact (dense) sampler, cached and grown on demand."""
    global _SALTS
    salts = _SALTS
    if len(salts) < width:
        size = max(width, 2 * len(salts), _DENSE_MIN)
        with np.errstate(over="ignore"):
            salts = _mix(np.arange(size, dtype=np.uint64) + _U(_salt(7)))
        _SALTS = salts
    return salts[:width]


def _smallest(score: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` smallest of ``score[i, :n[i]]`` per row, in increasing order
    (``score`` is overwritten).

    The scores of a row are distinct (a bijective hash of distinct inputs), so "the k
    smallest" is a set. It is found on the high 32 bits (a selection on half the bytes);
    rows whose high halves tie at the k-th value fall back to the full 64 bits.
    """
    rows, width = score.shape
    if int(n.min()) < width:
        np.copyto(score, _U64_MAX, where=np.arange(width)[None, :] >= n)
    if _LITTLE_ENDIAN:
        high = score.view(np.uint32)[:, 1::2]
    else:  # pragma: no cover
        high = (score >> _U(32)).astype(np.uint32)
    chosen = high <= np.partition(high, k - 1, axis=1)[:, k - 1 : k]
    if np.count_nonzero(chosen) != rows * k:  # every row has at least k
        tied = np.flatnonzero(np.count_nonzero(chosen, axis=1) != k)
        full = score[tied]
        chosen[tied] = full <= np.partition(full, k - 1, axis=1)[:, k - 1 : k]
    return np.flatnonzero(chosen).reshape(rows, k) - np.arange(0, rows * width, width)[:, None]


def _choose_offsets(keys: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct pseudo-random offsets in ``[0, n[i])`` for each key (all ``n > k``),
    in increasing order.

    Lists at most ``max(4 k, 256)`` long are sampled exactly (the ``k`` smallest of one
    hash score per candidate): small domains are where a cheap keyed permutation is
    visibly biased. Longer lists use the O(k) keyed permutation, so a hub with millions
    of visible neighbours costs O(k), not O(degree).
    """
    out = np.empty((len(keys), k), dtype=np.int64)
    dense = n <= max(_DENSE_FACTOR * k, _DENSE_MIN)
    idx = np.flatnonzero(dense)
    if len(idx):
        n_dense = n[idx]
        width = int(n_dense.max())
        step = max(1, _DENSE_CELLS // width)
        salts = _dense_salts(width)
        for lo in range(0, len(idx), step):  # chunks bound memory, not a loop over seeds
            part = idx[lo : lo + step]
            score = np.bitwise_xor(keys[part, None], salts[None, :])
            _mix_into(score, np.empty_like(score))
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
_EMPTY: _Part = (0, _OWN, np.zeros(0, dtype=np.int64), 0)


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


def _assemble(parts: list[_Part], ar: np.ndarray) -> np.ndarray:
    if len(parts) == 1 and parts[0][1] == _OWN:
        return parts[0][2]
    out = np.empty(sum(p[0] for p in parts), dtype=np.int64)
    at = 0
    for part in parts:
        _fill(out[at : at + part[0]], part, ar)
        at += part[0]
    return out


def _visible_ends(
    whens: list[np.ndarray], start: np.ndarray, stop: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """End of the prefix with time ``<= t`` of each neighbour list, for several edge types
    into one frontier at once.

    Block ``i`` of ``start``/``stop`` (``len(t)`` entries each) holds the lists
    ``[start, stop)`` of ``whens[i]``, non-decreasing within each list. A binary search
    runs for all lists together, touching only their own entries (a search over the
    whole array is a chain of cache misses on large tables).
    """
    n = len(t)
    last = stop - 1  # index of the list's last entry
    found = start - 1  # index of the last entry known to be <= t
    longest = int((stop - start).max(initial=0))
    if longest == 0:
        return start.copy()
    if len(whens) > 1:
        t = np.tile(t, len(whens))
    probe = np.empty_like(found)
    value = np.empty_like(found)
    ok = np.empty(len(found), dtype=bool)
    step = 1 << (longest.bit_length() - 1)  # 2 * step > any list length
    while step:
        np.add(found, step, out=probe)
        np.minimum(probe, last, out=probe)
        for i, when in enumerate(whens):  # empty lists read anything: masked below anyway
            block = slice(i * n, (i + 1) * n)
            when.take(probe[block], out=value[block], mode="clip")
        np.less_equal(value, t, out=ok)
        np.copyto(found, probe, where=ok)
        step >>= 1
    found += 1
    return found


class _Frontier:
    """Nodes of one type to expand at a hop: table rows, seed index, local index (an
    ``int`` when they are the contiguous nodes ``local, local + 1, ...``)."""

    __slots__ = ("local", "rows", "seed", "_seen", "lists")

    def __init__(self, rows: np.ndarray, seed: np.ndarray, local: int | np.ndarray) -> None:
        self.rows, self.seed, self.local = rows, seed, local
        self._seen = None
        # edge type -> (start, number of visible neighbours) of each node's list
        self.lists: dict[EdgeType, tuple[np.ndarray, np.ndarray]] | None = None

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
    temporal_strategy : {"uniform", "last"}, default="uniform"
        Which visible neighbours a node keeps when it has more than the fan-out:
        ``"uniform"`` draws them without replacement (keyed as above); ``"last"`` keeps
        the most recent ones (for timestamped neighbours; the last ones in table order
        for static ones), as PyG's ``temporal_strategy="last"``.

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
        self._edge_type_id = {et: i for i, et in enumerate(graph.metadata.edge_types)}
        self._table_id = {t: i for i, t in enumerate(graph.metadata.node_types)}
        self._direct: dict[EdgeType, tuple[bool, np.ndarray | None]] = {}
        self._ar = np.zeros(0, dtype=np.int64)
        self._consts: dict[int, np.ndarray] = {}
        self._lists_into: dict[str, list[EdgeType]] = {t: [] for t in graph.metadata.node_types}
        for et in graph.metadata.edge_types:
            if graph.adj[et].direct is None:
                self._lists_into[et[2]].append(et)

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

    def _owner_keys(
        self, seed_keys: np.ndarray, rows: np.ndarray, hop: int, edge_type: EdgeType
    ) -> np.ndarray:
        salt = self._const((hop + 1) * 65_537 + self._edge_type_id[edge_type])
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
                when = np.where(has, src_time[np.where(has, direct, 0)], _INT64_MAX)
                if dst_time is not None and bool((when[has] <= dst_time[has]).all()):
                    when = None
            info = self._direct[edge_type] = (missing, when)
        return info

    def _visible_lists(
        self, node_type: str, front: _Frontier, times: np.ndarray
    ) -> dict[EdgeType, tuple[np.ndarray, np.ndarray]]:
        """(list start, number of visible neighbours) of the frontier's nodes for every
        many-neighbour edge type into ``node_type``, searched together."""
        out = {}
        timed: list[tuple[EdgeType, np.ndarray, np.ndarray]] = []
        for et in self._lists_into[node_type]:
            adj = self.graph.adj[et]
            start = adj.indptr.take(front.rows, mode="clip")
            stop = adj.indptr[1:].take(front.rows, mode="clip")
            if adj.nbr_time is None:
                out[et] = (start, stop - start)
            else:
                timed.append((et, start, stop))
        if timed:
            n = len(front.rows)
            start = np.concatenate([s for _, s, _ in timed])
            end = _visible_ends(
                [self.graph.adj[et].nbr_time for et, _, _ in timed],
                start,
                np.concatenate([s for _, _, s in timed]),
                front.seen(times),
            )
            end -= start
            for i, (et, s, _) in enumerate(timed):
                out[et] = (s, end[i * n : (i + 1) * n])
        return out

    def _expand(
        self,
        edge_type: EdgeType,
        front: _Frontier,
        times: np.ndarray,
        seed_keys: np.ndarray,
        hop: int,
        fanout: int,
    ) -> tuple[int, _Part, _Part, _Part]:
        """(number of sampled nodes, their rows, their seeds, their parents' local index)
        for one edge type and hop, as parts of the output arrays."""
        adj = self.graph.adj[edge_type]
        rows = front.rows
        local = front.local
        if adj.direct is not None:
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

        if front.lists is None:
            front.lists = self._visible_lists(edge_type[2], front, times)
        start, n_valid = front.lists[edge_type]
        count = n_valid if fanout < 0 else np.minimum(n_valid, fanout)
        n = int(count.sum())
        if n == 0:
            return 0, _EMPTY, _EMPTY, _EMPTY
        ar = self._arange(max(n, len(rows) + (local if isinstance(local, int) else 0)))
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
                keys = self._owner_keys(
                    seed_keys[front.seed[crowded]],
                    self.graph.node_id[edge_type[2]][rows[crowded]],
                    hop,
                    edge_type,
                )
                picked = _choose_offsets(keys, n_valid[crowded], fanout)
                picked += start[crowded][:, None]
                pos[first[crowded][:, None] + ar[:fanout]] = picked
        if isinstance(local, int):
            local = ar[local : local + len(rows)]
        return (
            n,
            (n, _TAKE, adj.nbr, pos),
            (n, _OWN, np.repeat(front.seed, count), 0),
            (n, _OWN, np.repeat(local, count), 0),
        )

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
        # Output arrays are assembled once at the end from parts (see `_fill`), so that
        # the last hop's gathers write straight into them.
        rows: dict[str, list[_Part]] = {t: [] for t in node_types}
        seeds: dict[str, list[_Part]] = {t: [] for t in node_types}
        edges: dict[EdgeType, list[tuple[_Part, _Part]]] = {et: [] for et in edge_types}
        count = dict.fromkeys(node_types, 0)
        depth_ptr = {t: [0] for t in node_types}
        edge_ptr = {et: [0] for et in edge_types}
        rows[seed_table].append((n_seeds, _COPY, positions, 0))
        seeds[seed_table].append((n_seeds, _RANGE, 0, 0))
        count[seed_table] = n_seeds
        for t in node_types:
            depth_ptr[t].append(count[t])
        # Nodes of one type reached at one hop are contiguous: local index `local` onwards.
        all_seeds = self._arange(n_seeds)[:n_seeds]
        frontier = {seed_table: _Frontier(positions, all_seeds, 0)}
        seed_row_time = graph.time[seed_table]
        if seed_row_time is not None:
            # A seed row stamped after its seed time is future data, references included:
            # it stays in the batch (blanked by `sample`) but is not expanded.
            visible = np.flatnonzero(seed_row_time[positions] <= times)
            if len(visible) < n_seeds:
                frontier = {seed_table: _Frontier(positions[visible], visible, visible)}
        last = len(self.fanouts) - 1
        for hop, fanout in enumerate(self.fanouts):
            reached: dict[str, list[tuple[_Part, _Part]]] = {}
            for et in edge_types:
                src, _, dst = et
                front = frontier.get(dst)
                if front is None or len(front.rows) == 0:
                    edge_ptr[et].append(edge_ptr[et][-1])
                    continue
                n, row_part, seed_part, parent = self._expand(
                    et, front, times, seed_keys, hop, fanout
                )
                edge_ptr[et].append(edge_ptr[et][-1] + n)
                if n == 0:
                    continue
                if hop < last:
                    row_part, seed_part = _own(row_part), _own(seed_part)
                    reached.setdefault(src, []).append((row_part, seed_part))
                rows[src].append(row_part)
                seeds[src].append(seed_part)
                edges[et].append(((n, _RANGE, count[src], 0), parent))
                count[src] += n
            for t in node_types:
                depth_ptr[t].append(count[t])
            if hop == last:
                break
            frontier = {}
            for t, parts in reached.items():
                if len(parts) == 1:
                    node_rows, node_seed = parts[0][0][2], parts[0][1][2]
                else:
                    node_rows = np.concatenate([p[0][2] for p in parts])
                    node_seed = np.concatenate([p[1][2] for p in parts])
                    k = len(parts)
                    rows[t][-k:] = [(len(node_rows), _OWN, node_rows, 0)]
                    seeds[t][-k:] = [(len(node_seed), _OWN, node_seed, 0)]
                frontier[t] = _Frontier(node_rows, node_seed, depth_ptr[t][-2])
        ar = self._arange(max([n_seeds, *count.values()]))
        out_edges = {}
        for et, parts in edges.items():
            total = edge_ptr[et][-1]
            out = np.empty((2, total), dtype=np.int64)
            at = 0
            for child, parent in parts:
                _fill(out[0, at : at + child[0]], child, ar)
                _fill(out[1, at : at + child[0]], parent, ar)
                at += child[0]
            out_edges[et] = out
        return {
            "rows": {t: _assemble(v, ar) for t, v in rows.items()},
            "seed": {t: _assemble(v, ar) for t, v in seeds.items()},
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
        )
