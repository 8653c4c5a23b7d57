"""Task vectors: aggregates of what happens to each entity in the window after a cutoff.

:func:`task_vectors` ties the stages together: paths from the schema graph
(:mod:`~sktve.targets.paths`), the aggregates of each path and window, and the assembly of
one wide frame. Direct, dimension (static dimension table) and sibling paths are computed
by a numpy range engine (sorted arrays, prefix sums, sparse tables; see the "range
engine" section below), which scales linearly to tens of millions of rows; child paths
and dimension tables with a time column run as SQL (:mod:`~sktve.targets.sql`) on an
engine (:mod:`~sktve.targets.engine`). :func:`compute_blocks` is shared with
:class:`sktve.AggregateFeatures`, which computes the same aggregates on the window
*before* the cutoff.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sktve._threads import current_thread_budget, thread_budget
from sktve._validation import parse_windows, to_naive_times
from sktve.database import TIME_DTYPE, Database
from sktve.targets.engine import DuckDBEngine, engine_dialect, engine_for_call, resolve_engine
from sktve.targets.paths import (
    AggregateSpec,
    Hop,
    PathSpec,
    check_entity_table,
    direct_edges,
    enumerate_paths,
    plan_aggregates,
)
from sktve.targets.sql import first_time_sql, path_query_sql, sibling_partials_sql

__all__ = [
    "DEFAULT_CHUNK_PAIRS",
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_WRITE_CHUNK_ROWS",
    "task_vectors",
    "window_label",
    "write_task_vectors",
]

#: Default cap on aggregate columns per window block.
DEFAULT_MAX_COLUMNS = 500
#: Default number of (entity, cutoff) pairs computed at once (see :func:`compute_blocks`).
DEFAULT_CHUNK_PAIRS = 500_000
#: Default output rows per chunk (and parquet row group) of :func:`write_task_vectors`.
DEFAULT_WRITE_CHUNK_ROWS = 1_000_000


def window_label(window: pd.Timedelta) -> str:
    """A short stable label for a window: ``"30D"``, ``"12h"``, ``"90min"``, ``"45s"``."""
    ns = int(window.value)
    for unit, size in (("D", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if ns % (size * 1_000_000_000) == 0:
            return f"{ns // (size * 1_000_000_000)}{unit}"
    return f"{ns}ns"


#: Aggregates whose value over no rows is 0 (the others are undefined: NaN, or None).
ZERO_WHEN_EMPTY = ("count", "nunique", "sum")


def empty_value(agg: str) -> float:
    """An aggregate's value over no rows: 0 for counts and sums, else NaN."""
    return 0.0 if agg in ZERO_WHEN_EMPTY else np.nan


def block_names(plan: Sequence[AggregateSpec], windows: Sequence[pd.Timedelta]):
    """Every aggregate column's name in block order, and those of the numeric ones."""
    labels = [window_label(w) for w in windows]
    names = [f"{label}|{spec.name}" for label in labels for spec in plan]
    numeric = [f"{label}|{spec.name}" for label in labels for spec in plan if spec.agg != "mode"]
    return names, numeric


@dataclass
class Blocks:
    """Raw aggregates for unique (entity, cutoff) pairs.

    Numeric aggregates share one matrix of shape (n_numeric, n_pairs) so that a wide
    frame is built without copying column by column; modes are object arrays.
    """

    names: list[str]
    numeric_names: list[str]
    matrix: np.ndarray
    modes: dict[str, np.ndarray]
    block_inactive: dict[str, np.ndarray]
    dropped: list[str]
    paths: list[PathSpec]


# ---------------------------------------------------------------------- views
def _view_frame(
    database: Database,
    table: str,
    paths: Sequence[PathSpec],
    horizon_ns: int | None,
    floor_ns: int | None = None,
) -> pd.DataFrame:
    """The columns of ``table`` the queries need, in engine-friendly types."""
    frame = database.table(table)
    schema = database.schema[table]
    keep = _kept_rows(frame, schema.time_col, horizon_ns, floor_ns)
    if keep is not None:
        # Rows after the horizon (or at or before the floor) are physically absent from
        # the engine: they cannot influence any result, not even summation order.
        frame = frame.iloc[keep]
    out: dict[str, Any] = {}
    if schema.pkey is not None:
        out["__pkey"] = frame[schema.pkey]
    for col in schema.fkeys:
        out[col] = frame[col]
    kinds: dict[str, str] = {}
    for path in paths:
        if path.last_table == table:
            kinds.update({c.name: c.kind for c in path.columns})
    for col, kind in kinds.items():
        values = frame[col]
        if kind in ("numeric", "boolean"):
            if values.dtype != np.float64:
                if values.dtype == object:
                    values = values.astype("boolean")
                values = pd.Series(
                    values.to_numpy(dtype=np.float64, na_value=np.nan), index=values.index
                )
        else:
            present = values.notna().to_numpy()
            text = np.full(len(values), None, dtype=object)
            text[present] = values[present].astype(str).to_numpy(dtype=object)
            values = pd.Series(text, index=values.index, dtype=object)
        out[col] = values
    if schema.time_col is not None:
        out["__t"] = frame[schema.time_col].to_numpy(dtype=TIME_DTYPE).view(np.int64)
    view = pd.DataFrame(out)
    view.index = pd.RangeIndex(len(view))
    return view


# ---------------------------------------------------------------------- range engine
# Direct, dimension (static dimension table) and sibling paths are computed in numpy from
# sorted arrays instead of SQL joins: a table's rows sorted by (key, time) put the rows
# of one entity in one window, or the siblings of one first-hop row, in a contiguous range
# [a, b) found with two binary searches. Additive aggregates (counts, sums, sums of
# squares) are differences of prefix sums; min / max come from a sparse table queried
# level by level; modes and distinct counts from per-category prefix counts (few
# categories) or from sorting the (pair, category) incidences (many). Every step is
# O(rows log rows) with no (cutoff x rows) intermediate. Child paths and dimension tables
# with a time column keep the SQL queries of :mod:`sktve.targets.sql`.

#: Categorical columns with at most this many categories use per-category prefix counts.
_FEW_CATEGORIES = 32
#: Incidences (pair, row) expanded at once for modes of many-category columns.
_CHUNK_INCIDENCES = 4_000_000
#: Float prefix sums restart every this many values (see :func:`_range_sum`).
_BLOCK = 1024


def _cumsum0(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Prefix sums with a leading 0: sum of values[a:b] is out[b] - out[a]."""
    out = np.zeros(len(values) + 1, dtype=dtype)
    np.cumsum(values, dtype=dtype, out=out[1:])
    return out


def _small_codes(codes: np.ndarray) -> np.ndarray:
    """Codes in the narrowest unsigned type (numpy's stable sort is a radix sort <= 16 bits)."""
    top = int(codes.max()) if len(codes) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes.astype(np.int64)


class _Ranges:
    """Rows of one table grouped by an integer key code and ordered by time.

    ``rows`` lists the table's row positions in (key, time) order (rows with a negative
    code are left out); :meth:`bound` finds, per query (code, x), the end of the rows
    with a smaller key or the same key and time <= x. Key and time are packed into one
    int64 so that one ``searchsorted`` answers it: ``code * span + (time - t0) // unit``
    where ``unit`` is the gcd of the time differences (a second, a day) when that fits,
    else ``code * (n + 1) + rank of the time``.
    """

    def __init__(self, codes: np.ndarray, times: np.ndarray) -> None:
        valid = codes >= 0
        everything = bool(valid.all())
        rows = None if everything else np.flatnonzero(valid)
        t = times if everything else times[rows]
        valid_codes = codes if everything else codes[rows]
        # (Random gathers dominate at tens of millions of rows: skip the avoidable ones.)
        if len(t) < 2 or bool(np.all(t[1:] >= t[:-1])):
            order = np.argsort(_small_codes(valid_codes), kind="stable")
            sorted_times = t
        else:
            by_time = np.argsort(t, kind="stable")
            order = by_time[np.argsort(_small_codes(valid_codes[by_time]), kind="stable")]
            sorted_times = t[by_time]
            del by_time
        self.rows = order if everything else rows[order]
        del rows, valid
        counts = np.bincount(valid_codes) if len(valid_codes) else np.zeros(0, np.int64)
        key = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self.sorted_times = None
        self.t0, self.unit, self.span = 0, 1, 1
        if len(t):
            self.t0 = int(sorted_times[0])
            self.unit = max(int(np.gcd.reduce(np.diff(sorted_times))), 1)
            self.span = (int(sorted_times[-1]) - self.t0) // self.unit + 2
        if max(len(counts), 1) * self.span < 2**62:
            self.packed = key * self.span + (t[order] - self.t0) // self.unit
        else:
            self.sorted_times = sorted_times
            self.span = len(t) + 1
            self.packed = key * self.span + np.searchsorted(sorted_times, t[order], side="right")

    def bound(self, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self.sorted_times is None:
            # Offsets clipped into [-1, span - 2] stay inside the code's own block.
            offset = np.clip(np.floor_divide(x - self.t0, self.unit), -1, self.span - 2)
        else:
            offset = np.searchsorted(self.sorted_times, x, side="right")
        # A negative code packs below every row: its ranges are empty.
        query = codes.astype(np.int64) * self.span + offset
        return np.searchsorted(self.packed, query, side="right")

    def window(self, codes: np.ndarray, start: np.ndarray, stop: np.ndarray):
        """Ranges [a, b) of the rows with the query's key and time in (start, stop]."""
        return self.bound(codes, start), self.bound(codes, stop)


def _range_sum(values: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: Any) -> np.ndarray:
    """Sum of values[a:b] per range, from prefix sums."""
    if np.dtype(dtype).kind != "f":
        prefix = _cumsum0(values, dtype)
        return prefix[b] - prefix[a]
    # A float prefix sum over millions of values would carry rounding errors of the size
    # of the running total into every difference. Prefix sums restart every _BLOCK values
    # instead (errors stay local) and block totals are carried in extended precision.
    n_blocks = len(values) // _BLOCK + 1
    local = np.zeros(n_blocks * _BLOCK, dtype=np.float64)
    local[1 : len(values) + 1] = values  # local[i] ends the prefix of values[:i]
    blocks = local.reshape(n_blocks, _BLOCK)
    np.cumsum(blocks, axis=1, out=blocks)
    base = np.zeros(n_blocks, dtype=np.longdouble)
    np.cumsum(blocks[:-1, -1], dtype=np.longdouble, out=base[1:])
    # Block offsets as float64 pairs (high + low part): differences of the high parts
    # round relative to the difference, the low parts restore the extended precision.
    high = base.astype(np.float64)
    low = (base - high).astype(np.float64)
    ka, kb = a // _BLOCK, b // _BLOCK
    carried = (high[kb] - high[ka]) + (low[kb] - low[ka])
    return carried + (local[b] - local[a])


def _range_reduce(values: np.ndarray, a: np.ndarray, b: np.ndarray, fn: Any) -> np.ndarray:
    """``fn`` (np.fmin / np.fmax: NaN-skipping) over values[a:b] per range; NaN if empty.

    Sparse table built one level at a time: level j holds fn over windows of 2**j values,
    and a range of length L is answered at level floor(log2 L) from two overlapping
    windows. Memory stays at two arrays of the input's length.
    """
    out = np.full(len(a), np.nan)
    length = b - a
    hit = np.flatnonzero(length > 0)
    if len(hit) == 0:
        return out
    level = (np.frexp(length[hit].astype(np.float64))[1] - 1).astype(np.uint8)  # floor(log2)
    order = np.argsort(level, kind="stable")  # a radix sort on uint8
    hit, level = hit[order], level[order]
    edges = np.searchsorted(level, np.arange(int(level[-1]) + 2))
    table = values
    for j in range(int(level[-1]) + 1):
        if j:
            half = 1 << (j - 1)
            table = fn(table[:-half], table[half:])
        sel = hit[edges[j] : edges[j + 1]]
        if len(sel):
            out[sel] = fn(table[a[sel]], table[b[sel] - (1 << j)])
    return out


class _Moments:
    """Count, centred sum and centred sum of squares per range (from prefix sums)."""

    def __init__(self, n, s, q, shift: float) -> None:
        self.n, self.s, self.q, self.shift = n, s, q, shift

    @classmethod
    def of_values(cls, values: np.ndarray, a, b, squares: bool) -> _Moments:
        ok = ~np.isnan(values)
        n = (b - a) if ok.all() else _range_sum(ok, a, b, np.int64)
        # Centring on the (rounded) column mean keeps sum-of-squares variances accurate;
        # an integer shift keeps sums of integer-valued columns exact.
        shift = float(np.round(values[ok].mean())) if ok.any() else 0.0
        d = np.where(ok, values - shift, 0.0)
        s = _range_sum(d, a, b, np.float64)
        q = _range_sum(d * d, a, b, np.float64) if squares else None
        return cls(n, s, q, shift)

    def summed(self, a, b) -> _Moments:
        """Sums of these per-row moments over ranges of rows."""
        q = None if self.q is None else _range_sum(self.q, a, b, np.float64)
        return _Moments(
            _range_sum(self.n, a, b, self.n.dtype),
            _range_sum(self.s, a, b, np.float64),
            q,
            self.shift,
        )

    def finish(self, agg: str) -> np.ndarray:
        n = self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            if agg == "count":
                return n.astype(np.float64)
            if agg == "sum":
                return self.s + n * self.shift
            if agg == "mean":
                return np.where(n > 0, (self.s + n * self.shift) / np.maximum(n, 1), np.nan)
            mean_c = np.where(n > 0, self.s / np.maximum(n, 1), np.nan)
            if agg == "std":
                var = self.q / np.maximum(n, 1) - mean_c * mean_c
                # Population std, clamped at 0 against rounding; undefined over no values.
                return np.where(n > 0, np.sqrt(np.maximum(var, 0)), np.nan).astype(np.float64)
        raise ValueError(agg)


def _exact_zero_std(values: dict[str, np.ndarray]) -> None:
    """Std is 0 where all values are equal (prefix-sum rounding would leave ~1e-7)."""
    if "std" in values:
        values["std"][values["min"] == values["max"]] = 0.0


def _categorical_stats(codes: np.ndarray, n_cat: int, a, b):
    """Distinct count and mode code (-1 if none; ties -> smallest code) per range."""
    n_pairs = len(a)
    nunique = np.zeros(n_pairs, dtype=np.int64)
    best = np.zeros(n_pairs, dtype=np.int64)
    mode = np.full(n_pairs, -1, dtype=np.int64)
    if n_cat <= _FEW_CATEGORIES:
        for k in range(n_cat):
            count = _range_sum(codes == k, a, b, np.int64)
            nunique += count > 0
            better = count > best  # strict: ties keep the smaller code
            best[better] = count[better]
            mode[better] = k
        return nunique, mode
    for pair, rows in _incidences(a, b):
        c = codes[rows]
        keep = c >= 0
        key, count = np.unique(pair[keep] * n_cat + c[keep], return_counts=True)
        if len(key) == 0:
            continue  # a chunk of empty ranges, or of null values only: no mode there
        p, k = key // n_cat, key % n_cat
        # Groups are sorted by (pair, code): the first maximal count per pair is the mode.
        firsts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
        top = np.maximum.reduceat(count, firsts) if len(firsts) else count[:0]
        owner = np.repeat(np.arange(len(firsts)), np.diff(np.r_[firsts, len(p)]))
        is_top = count == top[owner]
        _, first_top = np.unique(owner[is_top], return_index=True)
        pairs_here = p[firsts]
        nunique[pairs_here] = np.diff(np.r_[firsts, len(p)])
        mode[pairs_here] = k[np.flatnonzero(is_top)[first_top]]
    return nunique, mode


def _incidences(a: np.ndarray, b: np.ndarray):
    """Yield (pair, row) index arrays for every row of every range [a, b), in chunks."""
    lengths = b - a
    ends = np.cumsum(lengths)
    start = 0
    while start < len(a):
        before = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, before + _CHUNK_INCIDENCES, side="right"))
        stop = min(max(stop, start + 1), len(a))
        ln = lengths[start:stop]
        pair = np.repeat(np.arange(start, stop, dtype=np.int64), ln)
        offsets = np.arange(len(pair), dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
        yield pair, np.repeat(a[start:stop], ln) + offsets
        start = stop


def _range_std(v: np.ndarray, a: np.ndarray, b: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Population std per range in two passes (deviations from the range's mean).

    Sums of squares from prefix sums lose digits when a range's values are close to each
    other; summing squared deviations over the expanded (range, row) incidences (about
    rows x cutoffs per row of them, in chunks) is as exact as a SQL ``stddev_pop``.
    """
    m2 = np.zeros(len(a))
    n = np.zeros(len(a))
    for pair, rows in _incidences(a, b):
        x = v[rows]
        ok = ~np.isnan(x)
        pair, dev = pair[ok], x[ok] - mean[pair[ok]]
        m2 += np.bincount(pair, weights=dev * dev, minlength=len(a))
        n += np.bincount(pair, minlength=len(a))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.sqrt(m2 / np.maximum(n, 1)), np.nan)


def _kept_rows(
    frame: pd.DataFrame, time_col: str | None, horizon_ns: int | None, floor_ns: int | None
) -> np.ndarray | None:
    """Positions of the rows with floor < time <= horizon (None: every row is kept)."""
    if time_col is None or (horizon_ns is None and floor_ns is None):
        return None
    times = frame[time_col].to_numpy(dtype=TIME_DTYPE).view(np.int64)
    keep = np.ones(len(times), dtype=bool)
    if horizon_ns is not None:
        keep &= times <= horizon_ns
    if floor_ns is not None:
        keep &= times > floor_ns
    return None if keep.all() else np.flatnonzero(keep)


class _TableArrays:
    """Columns of one table as numpy arrays, rows outside (floor, horizon] left out (cached)."""

    def __init__(
        self, database: Database, table: str, horizon_ns: int | None, floor_ns: int | None = None
    ) -> None:
        self.frame = database.table(table)
        self.time_col = database.schema[table].time_col
        # Rows outside the bounds are physically absent, as for the SQL views.
        self.keep = _kept_rows(self.frame, self.time_col, horizon_ns, floor_ns)
        self._cache: dict[tuple[str, str], Any] = {}

    def _times_all(self) -> np.ndarray:
        return self.frame[self.time_col].to_numpy(dtype=TIME_DTYPE).view(np.int64)

    def _column(self, col: str) -> pd.Series:
        values = self.frame[col]
        return values if self.keep is None else values.iloc[self.keep]

    def times(self) -> np.ndarray:
        if ("t", "") not in self._cache:
            t = self._times_all()
            self._cache["t", ""] = t if self.keep is None else t[self.keep]
        return self._cache["t", ""]

    def keys(self, col: str) -> np.ndarray:
        return self._column(col).to_numpy()

    def numeric(self, col: str) -> np.ndarray:
        if ("n", col) not in self._cache:
            values = self._column(col)
            if values.dtype == object:
                values = values.astype("boolean")
            self._cache["n", col] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return self._cache["n", col]

    def categorical(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        """Codes (-1 for null) into the sorted distinct string values."""
        if ("c", col) not in self._cache:
            codes, uniques = pd.factorize(self._column(col))
            labels = np.array([str(u) for u in uniques], dtype=object)
            # Distinct values may share a string (1 and "1"): merge them, sorted by text.
            categories, remap = np.unique(labels, return_inverse=True)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int32)
            self._cache["c", col] = (codes, categories)
        return self._cache["c", col]


class _RangeEngine:
    """Aggregates of direct, static-dimension and sibling paths for (entity, cutoff) pairs."""

    def __init__(self, database, entities, cutoffs_ns, horizon_ns, floors=None) -> None:
        self.database = database
        self.horizon_ns = horizon_ns
        self.floors = floors or {}
        self.entity_index = pd.Index(pd.unique(entities))
        self.pair_codes = self.entity_index.get_indexer(entities)
        self.cutoffs = np.asarray(cutoffs_ns, dtype=np.int64)
        self._arrays: dict[str, _TableArrays] = {}
        self._ranges: dict[tuple, Any] = {}

    def arrays(self, table: str) -> _TableArrays:
        if table not in self._arrays:
            self._arrays[table] = _TableArrays(
                self.database, table, self.horizon_ns, self.floors.get(table)
            )
        return self._arrays[table]

    def supports(self, path: PathSpec) -> bool:
        if path.kind in ("direct", "sibling"):
            return True
        if path.kind == "dimension":
            dim = path.hops[1].table
            return not self.database.is_temporal(dim) and self.database.key_index(dim).is_unique
        return False

    def edge(self, table: str, fkey: str) -> _Ranges:
        """First-hop rows grouped by entity (rows of entities without pairs left out)."""
        key = ("edge", table, fkey)
        if key not in self._ranges:
            arrays = self.arrays(table)
            codes = self.entity_index.get_indexer(arrays.keys(fkey))
            self._ranges[key] = _Ranges(codes, arrays.times())
        return self._ranges[key]

    def pair_ranges(self, table: str, fkey: str, lo: int, hi: int):
        key = ("pairs", table, fkey, lo, hi)
        if key not in self._ranges:
            ranges = self.edge(table, fkey)
            self._ranges[key] = ranges.window(self.pair_codes, self.cutoffs + lo, self.cutoffs + hi)
        return self._ranges[key]

    def siblings(self, table: str, fkey: str) -> tuple[_Ranges, pd.Index]:
        """Rows of a timestamped table grouped by one foreign key."""
        key = ("sib", table, fkey)
        if key not in self._ranges:
            arrays = self.arrays(table)
            values = arrays.keys(fkey)
            index = pd.Index(pd.unique(values[pd.notna(values)]))
            self._ranges[key] = (_Ranges(index.get_indexer(values), arrays.times()), index)
        return self._ranges[key]

    def compute(self, path: PathSpec, specs, lo: int, hi: int, window_ns: int) -> dict:
        """Values per aggregate name (``path|column|agg``) for every pair."""
        first = path.hops[0]
        ranges = self.edge(first.table, first.fkey)
        a, b = self.pair_ranges(first.table, first.fkey, lo, hi)
        rows = ranges.rows
        by_column: dict[str | None, list[AggregateSpec]] = {}
        for spec in specs:
            by_column.setdefault(spec.column, []).append(spec)
        kinds = {c.name: c.kind for c in path.columns}
        out: dict[str, np.ndarray] = {}
        if path.kind == "sibling":
            self._sibling(path, by_column, kinds, rows, a, b, window_ns, out)
            return out
        if path.kind == "direct":
            source, pos, matched = self.arrays(first.table), rows, None
            count = (b - a).astype(np.float64)
        else:
            dim = path.hops[1]
            source = self.arrays(dim.table)
            pos = self.database.key_index(dim.table).get_indexer(
                self.arrays(first.table).keys(dim.fkey)[rows]
            )
            matched = pos >= 0
            count = _range_sum(matched, a, b, np.int64).astype(np.float64)
        for column, col_specs in by_column.items():
            aggs = {s.agg for s in col_specs}
            if column is None:
                values = {"count": count}
            elif kinds[column] == "categorical":
                codes, categories = source.categorical(column)
                codes = codes[pos] if matched is None else np.where(matched, codes[pos], -1)
                values = self._categorical(codes, categories, aggs, a, b)
            else:
                v = source.numeric(column)
                v = v[pos] if matched is None else np.where(matched, v[pos], np.nan)
                values = self._numeric(v, aggs, a, b)
            for spec in col_specs:
                out[spec.name] = values[spec.agg]
        return out

    @staticmethod
    def _numeric(v: np.ndarray, aggs: set[str], a, b) -> dict[str, np.ndarray]:
        values = {}
        moments = aggs & {"count", "sum", "mean"}
        if moments or "std" in aggs:
            m = _Moments.of_values(v, a, b, squares=False)
            values.update({agg: m.finish(agg) for agg in moments})
            if "std" in aggs:
                values["std"] = _range_std(v, a, b, values.get("mean", m.finish("mean")))
        if "min" in aggs:
            values["min"] = _range_reduce(v, a, b, np.fmin)
        if "max" in aggs:
            values["max"] = _range_reduce(v, a, b, np.fmax)
        return values

    @staticmethod
    def _categorical(codes, categories, aggs: set[str], a, b) -> dict[str, np.ndarray]:
        values = {}
        if "count" in aggs:
            values["count"] = _range_sum(codes >= 0, a, b, np.int64).astype(np.float64)
        if aggs & {"nunique", "mode"}:
            nunique, mode = _categorical_stats(codes, len(categories), a, b)
            values["nunique"] = nunique.astype(np.float64)
            modes = np.full(len(a), None, dtype=object)
            present = mode >= 0
            modes[present] = categories[mode[present]]
            values["mode"] = modes
        return values

    def _first_by_key(self, first: Hop, via: Hop, sib: Hop):
        """First-hop rows sorted by the sibling key (so sibling lookups are sorted queries).

        Returns the rows' key codes and times in that order, and per row of the entity
        order (``edge(...).rows``) its position there (-1 for a row without a key).
        """
        key = ("first_by_key", first.table, first.fkey, via.fkey, sib.table, sib.fkey)
        if key in self._ranges:
            return self._ranges[key]
        index = self.siblings(sib.table, sib.fkey)[1]
        f = self.arrays(first.table)
        in_pairs = self.edge(first.table, first.fkey).rows
        codes = np.full(len(f.times()), -1, dtype=np.int64)
        codes[in_pairs] = index.get_indexer(f.keys(via.fkey)[in_pairs])
        by_key = _Ranges(codes, f.times()).rows
        index_type = np.int32 if len(codes) < 2**31 - 1 else np.int64
        where = np.full(len(codes), -1, dtype=index_type)
        where[by_key] = np.arange(len(by_key), dtype=index_type)
        self._ranges[key] = codes[by_key], f.times()[by_key], where[in_pairs]
        return self._ranges[key]

    def _sibling(self, path, by_column, kinds, rows, a, b, window_ns, out) -> None:
        first, via, sib = path.hops
        lookback = int(path.lookback.value) if path.lookback is not None else window_ns
        g_ranges = self.siblings(sib.table, sib.fkey)[0]
        g = self.arrays(sib.table)
        codes, t, perm = self._first_by_key(first, via, sib)
        # Per first-hop row, its sibling rows: same key, time in (t - lookback, t].
        ga, gb = g_ranges.window(codes, t - lookback, t)
        del codes, t
        index_type = np.int32 if len(g_ranges.rows) < 2**31 - 1 else np.int64
        ga, gb = ga.astype(index_type), gb.astype(index_type)  # (peak memory)
        keyless = np.flatnonzero(perm < 0)

        def per_pair(per_row: np.ndarray, empty: float = 0.0) -> np.ndarray:
            # Back to the entity order; rows without a key get the empty value (counts
            # and sums 0, min / max NaN).
            if len(per_row) == 0:  # no row has a key (e.g. the table between is empty)
                return np.full(len(perm), empty, dtype=per_row.dtype)
            out = per_row[perm]
            out[keyless] = empty
            return out

        for column, col_specs in by_column.items():
            aggs = {s.agg for s in col_specs}
            if column is None:
                n = per_pair(gb - ga)
                values = {"count": _range_sum(n, a, b, np.int64).astype(np.float64)}
            elif kinds[column] == "categorical":
                present = g.categorical(column)[0][g_ranges.rows] >= 0
                n = per_pair(_range_sum(present, ga, gb, np.int64))
                values = {"count": _range_sum(n, a, b, np.int64).astype(np.float64)}
            else:
                v = g.numeric(column)[g_ranges.rows]
                m = _Moments.of_values(v, ga, gb, squares="std" in aggs)
                # One array at a time (peak memory): per first-hop row, then per pair.
                m.n = per_pair(m.n)
                m.s = per_pair(m.s)
                m.q = None if m.q is None else per_pair(m.q)
                m = m.summed(a, b)
                values = {agg: m.finish(agg) for agg in aggs & {"count", "sum", "mean", "std"}}
                del m
                if aggs & {"min", "max", "std"}:
                    for agg, fn in (("min", np.fmin), ("max", np.fmax)):
                        per_row = per_pair(_range_reduce(v, ga, gb, fn), np.nan)
                        values[agg] = _range_reduce(per_row, a, b, fn)
                        del per_row
                _exact_zero_std(values)
                del v
            for spec in col_specs:
                out[spec.name] = values[spec.agg]


# ---------------------------------------------------------------------- allocator
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024


_ALLOCATOR_LOCK = threading.Lock()
_allocator_depth = 0


@contextlib.contextmanager
def _reuse_freed_memory():
    """Let glibc reuse freed large blocks while aggregates are computed (Linux only).

    The range engine allocates many short-lived arrays of one value per row. glibc serves
    each with a fresh ``mmap`` and unmaps it on free, so every array is faulted in again;
    on small virtual machines those page faults took about half of the time at 10 million
    rows. Inside this block freed blocks stay in the process (as
    :func:`sktve.nn.keep_freed_memory` does for training); when the outermost block exits
    (chunks computed in threads nest these blocks) glibc's default thresholds are set
    again and the kept memory is returned with ``malloc_trim``.
    """
    global _allocator_depth
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            libc = None
    with _ALLOCATOR_LOCK:
        _allocator_depth += 1
        if libc is not None and _allocator_depth == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31)
    try:
        yield
    finally:
        with _ALLOCATOR_LOCK:
            _allocator_depth -= 1
            if libc is not None and _allocator_depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
                libc.malloc_trim(0)


class _BufferPool:
    """Float64 matrices handed from chunk to chunk instead of allocated fresh for each.

    A chunk's output matrix is the largest array of the computation (one value per pair
    and column). Allocated in a worker thread it is a fresh ``mmap`` every time (glibc
    serves blocks over 64 MiB outside the main arena that way, whatever the thresholds),
    and the first touch of fresh memory costs about 2 s per GiB on small virtual
    machines. The pool keeps the freed matrices and hands them out again.
    """

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, rows: int, columns: int) -> np.ndarray:
        """An uninitialised (rows, columns) float64 matrix, reusing a freed one if it fits."""
        size = rows * columns
        with self._lock:
            fits = [i for i, buf in enumerate(self._free) if buf.size >= size]
            buffer = self._free.pop(min(fits, key=lambda i: self._free[i].size)) if fits else None
        if buffer is None:
            buffer = np.empty(max(size, 1), dtype=np.float64)
        return buffer[:size].reshape(rows, columns)

    def give(self, matrix: np.ndarray) -> None:
        """Return a matrix from :meth:`take` once nothing reads it any more."""
        buffer = matrix.base if matrix.base is not None else matrix
        with self._lock:
            self._free.append(buffer)


# ---------------------------------------------------------------------- core
def _join_strategy(cutoffs: np.ndarray, n_pairs: int, pair_entities_unique: int, span: int) -> str:
    """Pick the join order that produces fewer intermediate rows (see sql._window_join).

    ``cutoffs`` are the distinct cutoffs (sorted), ``n_pairs`` the number of pairs.
    """
    per_span = np.searchsorted(cutoffs, cutoffs + span, side="right") - np.arange(len(cutoffs))
    cutoffs_per_row = float(per_span.mean())
    pairs_per_entity = n_pairs / max(pair_entities_unique, 1)
    # Unnesting cutoff ranges costs a few times more per row than a hash probe.
    return "cutoff" if 4 * cutoffs_per_row < pairs_per_entity else "entity"


def compute_blocks(
    database: Database,
    entity_table: str,
    entities: np.ndarray,
    cutoffs_ns: np.ndarray,
    windows: Sequence[pd.Timedelta],
    *,
    paths: Sequence[PathSpec],
    max_columns: int | None,
    direction: str,
    engine: Any = None,
    horizon_ns: int | None = None,
    backend: str = "auto",
    chunk_size: int | None = DEFAULT_CHUNK_PAIRS,
    buffers: _BufferPool | None = None,
) -> Blocks:
    """Aggregates of every path and window for unique (entity, cutoff) pairs.

    Parameters
    ----------
    entities, cutoffs_ns : arrays of shape (n_pairs,)
        Unique pairs; cutoffs as int64 nanoseconds.
    direction : {"future", "past"}
        ``"future"``: windows ``(t, t + w]`` (task vectors); ``"past"``: ``(t - w, t]``.
    horizon_ns : int, optional
        Rows after this time are left out of the engine's views.
    engine : engine object, "duckdb", "spark" or None
        Runs the SQL paths (None and ``"duckdb"``: a fresh :class:`DuckDBEngine`).
    backend : {"auto", "sql"}
        ``"auto"``: the numpy range engine where it applies, generated SQL elsewhere;
        ``"sql"``: generated SQL for every path (the portable form another SQL engine runs).
        An engine of another dialect than DuckDB's (Spark) always gets every path.
    chunk_size : int or None, default=DEFAULT_CHUNK_PAIRS
        Pairs computed at once, taken in cutoff order; each chunk reads only the rows its
        cutoffs can reach (see :func:`_row_floors`), so work and memory per chunk follow
        the chunk, not the whole history. None: one chunk.
    buffers : _BufferPool, optional
        Where the output matrix comes from (a caller writing chunk after chunk gives the
        matrices back for the next chunks). Default: a pool for this call's chunks.

    Returns
    -------
    Blocks
        Columns named ``"<window>|<path>|<column>|<aggregate>"``, per-window inactivity.
    """
    entities = np.asarray(entities)
    cutoffs_ns = np.asarray(cutoffs_ns, dtype=np.int64)
    spans = _chunk_spans(len(entities), chunk_size)
    kwargs = dict(paths=paths, max_columns=max_columns, direction=direction, backend=backend)
    buffers = _BufferPool() if buffers is None else buffers
    with engine_for_call(engine) as engine, _reuse_freed_memory():
        if len(spans) == 1:
            return _compute_blocks(
                database,
                entity_table,
                entities,
                cutoffs_ns,
                windows,
                engine=engine,
                horizon_ns=horizon_ns,
                buffers=buffers,
                **kwargs,
            )
        in_order = bool(np.all(cutoffs_ns[1:] >= cutoffs_ns[:-1]))
        # Pairs already in cutoff order (the active pairs) are chunked as slices.
        order = None if in_order else np.argsort(cutoffs_ns, kind="stable")

        def chunk(span: tuple[int, int]) -> tuple[np.ndarray, Blocks]:
            rows = slice(*span) if order is None else order[span[0] : span[1]]
            return rows, _compute_blocks(
                database,
                entity_table,
                entities[rows],
                cutoffs_ns[rows],
                windows,
                engine=engine,
                horizon_ns=horizon_ns,
                buffers=buffers,
                **kwargs,
            )

        result: Blocks | None = None
        for rows, part in _in_order(chunk, spans, _chunk_workers(engine, len(spans))):
            if result is None:
                result = _empty_blocks_like(part, len(entities))
            if order is None:
                result.matrix[:, rows] = part.matrix
            else:
                for i, values in enumerate(part.matrix):  # row by row: one scatter each
                    result.matrix[i, rows] = values
            for name, values in part.modes.items():
                result.modes[name][rows] = values
            for label, values in part.block_inactive.items():
                result.block_inactive[label][rows] = values
            buffers.give(part.matrix)
            del part
        return result


def _chunk_workers(engine: Any, n_chunks: int) -> int:
    """Chunks computed at once: the thread budget, or 1 with an engine given.

    Without an engine each chunk opens its own DuckDB connection when it needs one; a
    given engine (one connection, one Spark session's views) runs one chunk at a time.
    """
    if engine is not None:
        return 1
    return max(1, min(current_thread_budget(), n_chunks))


def _chunk_spans(n: int, chunk_size: int | None) -> list[tuple[int, int]]:
    """[start, stop) spans of at most ``chunk_size`` (one span for None or n <= size)."""
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    if chunk_size is None or n <= chunk_size:
        return [(0, n)]
    # Equal chunks (not a short last one), so every chunk costs about the same.
    n_chunks = -(-n // int(chunk_size))
    edges = np.linspace(0, n, n_chunks + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _empty_blocks_like(part: Blocks, n: int) -> Blocks:
    """Blocks with ``part``'s columns for ``n`` pairs, to be filled chunk by chunk."""
    return Blocks(
        part.names,
        part.numeric_names,
        np.empty((len(part.numeric_names), n), dtype=np.float64),
        {name: np.full(n, None, dtype=object) for name in part.modes},
        {label: np.zeros(n, dtype=np.int8) for label in part.block_inactive},
        part.dropped,
        part.paths,
    )


def _row_floors(
    database: Database,
    paths: Sequence[PathSpec],
    edges: Sequence[tuple[str, str]],
    first_cutoff: int,
    windows: Sequence[pd.Timedelta],
    direction: str,
) -> dict[str, int]:
    """Per timestamped table, a time at or before which none of its rows reach a pair.

    The pairs' cutoffs are at least ``first_cutoff``, so a first-hop row must be later
    than ``first_cutoff`` (``- largest window`` looking back) and a sibling row later than
    that minus the path's lookback. Rows of the other 2-hop tables (children, timestamped
    dimensions) are joined by key with no lower time bound: those tables get no floor,
    nor does a table in any such role.
    """
    longest = max(int(w.value) for w in windows)
    start = int(first_cutoff) - (longest if direction == "past" else 0)
    floors: dict[str, int] = {}
    unbounded: set[str] = set()

    def lower(table: str, value: int) -> None:
        floors[table] = min(floors.get(table, value), value)

    for table, _ in edges:
        lower(table, start)
    for path in paths:
        lower(path.first_table, start)
        later = list(path.hops[1:])
        if path.kind == "sibling":
            sibling = later.pop()
            lookback = max(int((path.lookback or w).value) for w in windows)
            lower(sibling.table, start - lookback)
        unbounded.update(hop.table for hop in later)
    return {
        table: floor
        for table, floor in floors.items()
        if table not in unbounded and database.is_temporal(table)
    }


def _compute_blocks(
    database,
    entity_table,
    entities,
    cutoffs_ns,
    windows,
    *,
    paths,
    max_columns,
    direction,
    engine,
    horizon_ns,
    backend="auto",
    buffers: _BufferPool | None = None,
) -> Blocks:
    if backend not in ("auto", "sql"):
        raise ValueError(f"backend must be 'auto' or 'sql', got {backend!r}.")
    # ``engine`` is resolved by compute_blocks. An engine of another dialect is there to
    # run the work elsewhere: every path as SQL.
    dialect = engine_dialect(engine)
    if dialect != "duckdb":
        backend = "sql"
    n = len(entities)
    edges = direct_edges(database, entity_table)
    plan, dropped = plan_aggregates(paths, max_columns)
    labels = [window_label(w) for w in windows]
    names, numeric_names = block_names(plan, windows)
    row_of = {name: i for i, name in enumerate(numeric_names)}
    matrix = (buffers or _BufferPool()).take(len(numeric_names), n)
    for label in labels:
        for spec in plan:
            if spec.agg != "mode":
                matrix[row_of[f"{label}|{spec.name}"]] = empty_value(spec.agg)
    modes: dict[str, np.ndarray] = {}
    block_inactive: dict[str, np.ndarray] = {}
    all_dropped: list[str] = []
    by_path: dict[str, list[AggregateSpec]] = {}
    for spec in plan:
        by_path.setdefault(spec.path.name, []).append(spec)
    floors = {}
    if n:
        # Only rows in (floor, last cutoff + reach] can reach these pairs: a chunk of
        # pairs reads the stretch of history its cutoffs need, not the whole of it.
        floors = _row_floors(database, paths, edges, int(cutoffs_ns.min()), windows, direction)
        reach = max(int(w.value) for w in windows) if direction == "future" else 0
        last = int(cutoffs_ns.max()) + reach
        horizon_ns = last if horizon_ns is None else min(int(horizon_ns), last)
    ranges = _RangeEngine(database, entities, cutoffs_ns, horizon_ns, floors)

    def in_numpy(path: PathSpec) -> bool:
        return backend == "auto" and ranges.supports(path)

    # Child paths and dimensions with a time column run as SQL (see sktve.targets.sql);
    # backend="sql" sends every path there.
    sql_paths = [p for p in paths if by_path.get(p.name) and not in_numpy(p)]
    partials_done: dict[tuple, str] = {}
    # A DuckDB engine made here for the SQL paths is closed here.
    own_engine = engine is None and bool(sql_paths)
    if engine is None and sql_paths:
        engine = DuckDBEngine()
    try:
        if sql_paths:
            views, unique_cutoffs, first_tables = _register_sql_views(
                engine, database, entities, cutoffs_ns, sql_paths, horizon_ns, floors
            )
            n_entities = len(pd.unique(entities))
        for window in windows:
            w = int(window.value)
            lo, hi = (0, w) if direction == "future" else (-w, 0)
            label = window_label(window)
            all_dropped.extend(f"{label}|{name}" for name in dropped)
            activity = np.zeros(n, dtype=np.int64)
            for table, col in edges:
                a, b = ranges.pair_ranges(table, col, lo, hi)
                activity += b - a
            block_inactive[label] = (activity == 0).astype(np.int8)
            if sql_paths:
                strategy = _join_strategy(unique_cutoffs, len(cutoffs_ns), n_entities, w)
                if strategy == "cutoff":
                    for table in first_tables:
                        times = views[table]["__t"].to_numpy()
                        engine.register(
                            f"__tve_{table}__w",
                            views[table].assign(
                                __i0=np.searchsorted(unique_cutoffs, times - hi, side="left"),
                                __i1=np.searchsorted(unique_cutoffs, times - lo, side="left"),
                            ),
                        )

            def store(name: str, agg: str, values: Any, ids: np.ndarray | None = None) -> None:
                if agg == "mode":
                    if ids is None:
                        modes[name] = values
                    else:
                        out = np.full(n, None, dtype=object)
                        present = values.notna().to_numpy()
                        out[ids[present]] = values[present].to_numpy(dtype=object)
                        modes[name] = out
                elif ids is None:
                    matrix[row_of[name]] = values
                else:
                    fill = empty_value(agg)
                    matrix[row_of[name], ids] = values.to_numpy(dtype=np.float64, na_value=fill)

            for path in paths:
                specs = by_path.get(path.name, [])
                if not specs:
                    continue
                if in_numpy(path):
                    values = ranges.compute(path, specs, lo, hi, w)
                    for spec in specs:
                        store(f"{label}|{spec.name}", spec.agg, values.pop(spec.name))
                    continue
                statements, aliases = path_statements(
                    database, path, specs, window, lo, hi, strategy, dialect, partials_done
                )
                result = engine.execute(statements)
                ids = result["pair_id"].to_numpy(dtype=np.int64)
                for spec, alias in zip(specs, aliases):
                    store(f"{label}|{spec.name}", spec.agg, result[alias], ids)
        return Blocks(names, numeric_names, matrix, modes, block_inactive, all_dropped, list(paths))
    finally:
        if own_engine and engine is not None:
            engine.close()


def path_statements(
    database: Any,
    path: PathSpec,
    specs: Sequence[AggregateSpec],
    window: pd.Timedelta,
    lo: int,
    hi: int,
    strategy: str,
    dialect: str,
    partials_done: dict[tuple, str],
    keys: str = "pair_id",
) -> tuple[list[str], list[str]]:
    """The statements computing one path's aggregates for one window, and their aliases.

    The last statement is the ``GROUP BY`` query (by ``keys``, see
    :func:`~sktve.targets.sql.path_query_sql`); a sibling path is preceded by its partials
    table when ``partials_done`` (shared over the call, updated here) has none for its
    (hops, lookback, columns) yet.
    """
    statements, partials = [], None
    if path.kind == "sibling":
        lookback = int((path.lookback or window).value)
        key = (path.hops, lookback, tuple(path.columns))
        if key not in partials_done:
            partials_done[key] = f"__tve_sib{len(partials_done)}"
            statements.append(sibling_partials_sql(path, lookback, partials_done[key], dialect))
        partials = partials_done[key]
    second_temporal = path.n_hops > 1 and database.is_temporal(path.hops[1].table)
    sql, aliases = path_query_sql(
        path,
        specs,
        lo=lo,
        hi=hi,
        strategy=strategy,
        second_temporal=second_temporal,
        partials=partials,
        dialect=dialect,
        keys=keys,
    )
    return [*statements, sql], aliases


def _register_sql_views(engine, database, entities, cutoffs_ns, sql_paths, horizon_ns, floors):
    """Register the views the SQL-computed paths read (see the module docstring of sql)."""
    tables = {h.table for path in sql_paths for h in path.hops}
    views = {}
    for table in sorted(tables):
        views[table] = _view_frame(database, table, sql_paths, horizon_ns, floors.get(table))
        engine.register(f"__tve_{table}", views[table])
    unique_cutoffs, cutoff_ids = np.unique(cutoffs_ns, return_inverse=True)
    engine.register(
        "__pairs",
        pd.DataFrame(
            {
                "pair_id": np.arange(len(entities), dtype=np.int64),
                "entity": entities,
                "cutoff": cutoffs_ns.astype(np.int64),
                "cutoff_id": cutoff_ids.astype(np.int64),
            }
        ),
    )
    engine.register(
        "__cutoffs",
        pd.DataFrame(
            {
                "cutoff_id": np.arange(len(unique_cutoffs), dtype=np.int64),
                "cutoff": unique_cutoffs.astype(np.int64),
            }
        ),
    )
    first_tables = sorted({path.first_table for path in sql_paths})
    return views, unique_cutoffs, first_tables


# ---------------------------------------------------------------------- public API
def _parse_cutoffs(cutoffs: Any) -> np.ndarray:
    if isinstance(cutoffs, (str, pd.Timestamp, np.datetime64)):
        cutoffs = [cutoffs]
    values = pd.Series(list(cutoffs) if not isinstance(cutoffs, pd.Series) else cutoffs)
    if len(values) == 0:
        raise ValueError("cutoffs is empty: give at least one timestamp.")
    if values.isna().any():
        raise ValueError(
            f"cutoffs has {int(values.isna().sum())} missing values (NaT); every cutoff must "
            "be a timestamp (drop the missing ones)."
        )
    return to_naive_times(values.reset_index(drop=True), "cutoffs").to_numpy(dtype=TIME_DTYPE)


def _warn_outside(
    database: Database, cutoffs: np.ndarray, what: str = "cutoffs", stacklevel: int = 3
) -> None:
    start, end = np.datetime64(database.min_timestamp), np.datetime64(database.max_timestamp)
    early = int((cutoffs < start).sum())
    late = int((cutoffs >= end).sum())
    if early or late:
        warnings.warn(
            f"{early + late} {what} lie outside the database's time range ({start} .. {end}): "
            f"{early} before its start, {late} at or after its end (those windows hold no "
            "rows, so every entity is inactive there).",
            UserWarning,
            stacklevel=stacklevel,
        )


def _active_pairs(
    database: Database,
    entity_table: str,
    cutoffs: np.ndarray,
    max_window: pd.Timedelta,
    engine: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Per cutoff, the entities with a first-hop row at or before cutoff + window."""
    edges = direct_edges(database, entity_table)
    resolved = resolve_engine(engine)
    own = resolved is None or resolved is not engine
    engine = resolved or DuckDBEngine()
    try:
        for table in sorted({t for t, _ in edges}):
            frame = database.table(table)
            schema = database.schema[table]
            view = pd.DataFrame(
                {
                    **{col: frame[col] for col, _ in [(c, None) for t, c in edges if t == table]},
                    "__t": frame[schema.time_col].to_numpy(dtype=TIME_DTYPE).view(np.int64),
                }
            )
            engine.register(f"__tve_{table}", view)
        first = engine.execute([first_time_sql(edges, engine_dialect(engine))])
    finally:
        if own:
            engine.close()
    # Align the ids with the entity table's key order so the output is sorted by key.
    keys = database.key_index(entity_table)
    t0 = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
    pos = keys.get_indexer(first["entity"].to_numpy())
    ok = pos >= 0
    t0[pos[ok]] = first["t0"].to_numpy(dtype=np.int64)[ok]
    order = np.argsort(keys.to_numpy(), kind="stable")
    sorted_keys = keys.to_numpy()[order]
    sorted_t0 = t0[order]
    unique_cutoffs = np.unique(cutoffs).view(np.int64)
    bounds = unique_cutoffs + int(max_window.value)
    # One boolean mask per cutoff over the (small) entity table: loops over cutoffs only.
    ent_parts, cut_parts = [], []
    for cutoff, bound in zip(unique_cutoffs, bounds):
        selected = sorted_keys[sorted_t0 <= bound]
        ent_parts.append(selected)
        cut_parts.append(np.full(len(selected), cutoff, dtype=np.int64))
    entities = np.concatenate(ent_parts) if ent_parts else sorted_keys[:0]
    cut = np.concatenate(cut_parts) if cut_parts else np.zeros(0, dtype=np.int64)
    return entities, cut


def task_vectors(
    database: Database,
    entity_table: str,
    cutoffs: Any,
    window: Any,
    *,
    max_hops: int = 2,
    entities: str | pd.DataFrame = "active",
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    lookback: Any = None,
    max_columns: int | None = DEFAULT_MAX_COLUMNS,
    engine: Any = None,
    backend: str = "auto",
    chunk_size: int | None = DEFAULT_CHUNK_PAIRS,
) -> pd.DataFrame:
    """Aggregate what happens to each entity in the window after each cutoff.

    For entity e and cutoff t, every path from the entity table (see
    :func:`enumerate_paths`) is followed to the rows whose first timestamped table has
    time in ``(t, t + window]``; later timestamped tables on a path never contribute rows
    after ``t + window``. Every usable column at the end of the path is aggregated: numeric
    -> mean, min, max, sum, std (population), count; boolean -> mean; categorical -> count,
    distinct count, mode; each path -> row count.

    Parameters
    ----------
    database : Database or SparkDatabase
        A :class:`~sktve.targets.SparkDatabase` is computed in Spark from its sources (it
        needs a Spark ``engine``; ``backend`` and ``chunk_size`` are then unused): see
        :ref:`spark_database`.
    entity_table : str
    cutoffs : array-like of timestamps
        Prediction times (ignored, and may be None, when ``entities`` is a DataFrame).
    window : str, Timedelta or list of those
        E.g. ``"30D"`` or ``["7D", "30D"]``: one block of columns per window.
    max_hops : {1, 2}, default=2
    entities : "active" or DataFrame, default="active"
        ``"active"``: per cutoff, every entity with at least one first-hop row at or before
        ``t + window`` (the largest window), sorted by cutoff then key. A DataFrame with
        columns ``[<entity key column>, "cutoff"]``: exactly those pairs, in that order
        (duplicates kept).
    include, exclude : str or list of str, optional
        Name patterns selecting paths and columns (see :func:`enumerate_paths`).
    lookback : str or Timedelta, optional
        Sibling rows lie in ``(first-hop row time - lookback, first-hop row time]``;
        None uses each block's window length.
    max_columns : int or None, default=500
        Cap on aggregate columns per window block. 1-hop aggregates come first, then 2-hop
        row counts, then 2-hop columns round-robin over paths. What the cap drops is
        listed in a warning and in ``frame.attrs["dropped_columns"]``.
    engine : object, "duckdb" or "spark", optional
        Where the generated SQL runs: an object with ``register`` and ``execute`` and a
        ``dialect`` (:class:`~sktve.targets.DuckDBEngine`,
        :class:`~sktve.targets.SparkEngine`), or its name (``"spark"``: a SparkEngine on
        the active Spark session). None and ``"duckdb"``: a fresh DuckDBEngine. It runs
        the paths computed as SQL (child paths, dimension tables with a time column) and
        the active-entity query; direct, static-dimension and sibling paths are computed
        in numpy, except with a Spark engine, which runs every path (``backend="sql"``).
    backend : {"auto", "sql"}, default="auto"
        ``"auto"`` computes direct, static-dimension and sibling paths with a vectorised
        numpy range engine (sorted arrays, prefix sums) and the other paths with generated
        SQL on ``engine``; ``"sql"`` runs every path as generated SQL (the portable form,
        slower on large tables; the two agree to floating-point rounding). A Spark engine
        always runs every path as SQL.
    chunk_size : int or None, default=500_000
        (Entity, cutoff) pairs computed at once, in cutoff order: each chunk reads only the
        rows its cutoffs can reach, which bounds the working memory and keeps long
        histories linear; chunks run in threads, as many as the thread budget (the
        enclosing estimator's ``n_jobs``, else every core) when no ``engine`` is given.
        None computes every pair at once. Chunks change only floating-point rounding:
        sums and means agree to about 1e-12 relative, the std over sibling rows (from
        sums of squares) to about 1e-6. For results larger than memory,
        :func:`write_task_vectors` writes chunk by chunk.

    Returns
    -------
    DataFrame
        Columns ``[<key>, "cutoff", "<w>|<path>|<column>|<agg>", ..., "no_activity"]``
        where ``<column>`` is ``*`` for the row count, e.g. ``"30D|orders|amount|mean"``,
        ``"30D|orders->products|price|max"``, ``"30D|orders|*|count"``. With several
        windows each block ends with ``"<w>|no_activity"``; the last column
        ``"no_activity"`` (int8) is 1 when the entity has no first-hop row in the largest
        window. Values are raw: counts and sums are 0 over no rows, other aggregates NaN;
        modes are strings (object, None when undefined; ties go to the smallest value).
        ``frame.attrs`` holds ``"paths"`` and ``"dropped_columns"``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import load_database
    >>> from sktve.targets import task_vectors
    >>> db = load_database(
    ...     {"users": pd.DataFrame({"user_id": [0, 1]}),
    ...      "orders": pd.DataFrame({"order_id": [0, 1, 2], "user_id": [0, 0, 1],
    ...                              "ts": pd.to_datetime(["2024-01-02", "2024-01-03",
    ...                                                    "2024-03-01"]),
    ...                              "amount": [3.0, 5.0, 7.0]})},
    ...     schema={"users": {"pkey": "user_id"},
    ...             "orders": {"pkey": "order_id", "time_col": "ts",
    ...                        "fkeys": {"user_id": "users"}}})
    >>> tv = task_vectors(db, "users", ["2024-01-01"], "30D")
    >>> tv[["user_id", "30D|orders|amount|sum", "no_activity"]]
       user_id  30D|orders|amount|sum  no_activity
    0        0                    8.0            0
    """
    from sktve.targets.spark_source import SparkDatabase, spark_task_vectors

    # What the job (or the Spark path) settles before computing: the same for both.
    job_args = dict(
        entity_table=entity_table,
        cutoffs=cutoffs,
        window=window,
        max_hops=max_hops,
        entities=entities,
        include=include,
        exclude=exclude,
        lookback=lookback,
        backend=backend,
    )
    if isinstance(database, SparkDatabase):
        return spark_task_vectors(database, engine, max_columns, **job_args)
    job = _TaskVectorJob.prepare(database, **job_args)
    # One engine for both queries; one made here from a name is closed here.
    with engine_for_call(engine) as resolved:
        ent, cut = job.pairs(resolved)
        inverse = None
        if job.mode == "pairs":
            ent, cut, inverse = _unique_pairs(ent, cut)
        blocks = job.blocks(ent, cut, resolved, max_columns, chunk_size)
    _warn_dropped(blocks.dropped, max_columns)
    return _assemble(job.pkey, ent, cut, blocks, job.windows, inverse)


def write_task_vectors(
    path: Any,
    database: Database,
    entity_table: str,
    cutoffs: Any,
    window: Any,
    *,
    max_hops: int = 2,
    entities: str | pd.DataFrame = "active",
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    lookback: Any = None,
    max_columns: int | None = DEFAULT_MAX_COLUMNS,
    engine: Any = None,
    backend: str = "auto",
    chunk_size: int = DEFAULT_WRITE_CHUNK_ROWS,
) -> dict[str, Any]:
    """Compute :func:`task_vectors` chunk by chunk into one parquet file.

    For results larger than memory (entities x cutoffs x columns): each chunk of at most
    ``chunk_size`` output rows is computed, written as one row group, and freed, so the
    memory held is the database plus a few chunks. Chunks are computed in threads, as
    many as the thread budget (the enclosing estimator's ``n_jobs``, else every core),
    while the previous one is written; with an ``engine`` given, one at a time. Reading
    the file back (``pd.read_parquet(path)``) gives :func:`task_vectors`' frame with the same
    arguments: the same rows in the same order, the same columns, values equal to
    floating-point rounding (modes as strings).

    Parameters
    ----------
    path : str or path-like
        The parquet file to write (its folder must exist; an existing file is replaced).
        For a :class:`~sktve.targets.SparkDatabase` (with a Spark ``engine``), Spark writes
        a folder of part files there instead (replaced if it exists; at most
        ``chunk_size`` rows per file, in output order; the cutoff as a naive microsecond
        timestamp), and ``chunks`` in the result counts those files.
    database, entity_table, cutoffs, window, max_hops, entities, include, exclude, \
lookback, max_columns, engine, backend
        As for :func:`task_vectors`. With ``entities`` a DataFrame, its rows are written
        in its order; pairs sorted by cutoff make the chunks cheapest.
    chunk_size : int, default=1_000_000
        Output rows per chunk (and per row group). The memory held beyond the database
        is about ``4 * chunk_size * columns * 8`` bytes (a chunk's values and its Arrow
        table, for each of the chunks computed at once); larger chunks read less history
        twice (the windows and lookbacks at chunk edges).

    Returns
    -------
    dict
        ``path``, ``rows``, ``columns`` (names), ``chunks``, ``paths`` and
        ``dropped_columns``, as ``frame.attrs`` holds them for :func:`task_vectors`.
        With a :class:`~sktve.targets.SparkDatabase` also ``step_seconds``: each
        materialised step of the Spark plan and its wall time, ``[step, seconds]``, in
        order (each is logged at INFO on the ``sktve.targets.spark`` logger as it ends).

    Examples
    --------
    >>> from sktve.targets import write_task_vectors
    >>> info = write_task_vectors("tv.parquet", db, "users", cutoffs, "30D")  # doctest: +SKIP
    >>> info["rows"], info["chunks"]  # doctest: +SKIP
    (25010344, 51)
    """
    import pyarrow.parquet as pq

    from sktve.targets.spark_source import SparkDatabase, spark_write_task_vectors

    if chunk_size is None:
        raise ValueError("chunk_size must be a positive int: write_task_vectors writes chunks.")
    # What the job (or the Spark path) settles before computing: the same for both.
    job_args = dict(
        entity_table=entity_table,
        cutoffs=cutoffs,
        window=window,
        max_hops=max_hops,
        entities=entities,
        include=include,
        exclude=exclude,
        lookback=lookback,
        backend=backend,
    )
    if isinstance(database, SparkDatabase):
        return spark_write_task_vectors(path, database, engine, max_columns, chunk_size, **job_args)
    job = _TaskVectorJob.prepare(database, **job_args)
    writer = None
    rows = 0
    spans: list[tuple[int, int]] = []
    blocks = None
    buffers = _BufferPool()
    with engine_for_call(engine) as resolved, _reuse_freed_memory():
        try:
            all_ent, all_cut = job.pairs(resolved)
            spans = _chunk_spans(len(all_ent), chunk_size)
            workers = _chunk_workers(resolved, len(spans))

            def chunk_table(span: tuple[int, int]):
                start, stop = span
                ent, cut, inverse = all_ent[start:stop], all_cut[start:stop], None
                if job.mode == "pairs":
                    ent, cut, inverse = _unique_pairs(ent, cut)
                part = job.blocks(ent, cut, resolved, max_columns, None, buffers)
                return part, _arrow_table(job.pkey, ent, cut, part, job.windows, inverse)

            for blocks, table in _in_order(chunk_table, spans, workers):
                if writer is None:
                    # Statistics and dictionaries where readers use them (filters on the key
                    # and cutoff; repeated mode strings); on the float columns they cost
                    # about a fifth of the writing and save little.
                    keyed = [job.pkey, "cutoff"]
                    writer = pq.ParquetWriter(
                        str(path),
                        table.schema,
                        write_statistics=keyed,
                        use_dictionary=[*keyed, *blocks.modes],
                    )
                writer.write_table(table.cast(writer.schema))
                rows += table.num_rows
                columns = table.column_names
                # The Arrow table shares the matrix (no copy); once written, the matrix
                # serves a later chunk.
                del table
                buffers.give(blocks.matrix)
                del blocks.matrix
        finally:
            if writer is not None:
                writer.close()
    _warn_dropped(blocks.dropped, max_columns)
    return {
        "path": str(path),
        "rows": rows,
        "columns": columns,
        "chunks": len(spans),
        "paths": [p.name for p in blocks.paths],
        "dropped_columns": list(blocks.dropped),
    }


def _unique_pairs(ent: np.ndarray, cut: np.ndarray):
    """Distinct (entity, cutoff) pairs in first-seen order and each row's pair."""
    pairs = pd.DataFrame({"e": ent, "c": cut})
    inverse = pairs.groupby(["e", "c"], sort=False, dropna=False).ngroup().to_numpy()
    unique = pairs.drop_duplicates()
    return unique["e"].to_numpy(), unique["c"].to_numpy(dtype=np.int64), inverse


def _warn_dropped(dropped: Sequence[str], max_columns: int | None) -> None:
    if dropped:
        shown = ", ".join(dropped[:5])
        warnings.warn(
            f"max_columns={max_columns} dropped {len(dropped)} aggregate columns "
            f"(e.g. {shown}); see frame.attrs['dropped_columns'], or narrow the paths with "
            "include/exclude.",
            UserWarning,
            stacklevel=3,
        )


@dataclass
class _TaskVectorJob:
    """What :func:`task_vectors` and :func:`write_task_vectors` settle before computing."""

    database: Database
    entity_table: str
    pkey: str
    windows: list[pd.Timedelta]
    mode: str
    cutoff_values: np.ndarray
    entity_keys: np.ndarray | None
    horizon_ns: int
    paths: list[PathSpec]
    backend: str

    @classmethod
    def prepare(
        cls,
        database,
        entity_table,
        cutoffs,
        window,
        max_hops,
        entities,
        include,
        exclude,
        lookback,
        backend,
    ) -> _TaskVectorJob:
        check_entity_table(database, entity_table)
        windows = parse_windows(window)
        pkey = database.pkey(entity_table)
        keys = None
        if isinstance(entities, str):
            if entities != "active":
                raise ValueError(
                    f"entities must be 'active' or a DataFrame of (entity, cutoff) pairs, "
                    f"got {entities!r}."
                )
            cutoff_values = _parse_cutoffs(cutoffs)
            mode = "active"
        elif isinstance(entities, pd.DataFrame):
            missing = [c for c in (pkey, "cutoff") if c not in entities.columns]
            if missing:
                raise ValueError(
                    f"entities must have columns [{pkey!r}, 'cutoff']; missing {missing} "
                    f"(got {list(entities.columns)})."
                )
            cutoff_values = _parse_cutoffs(entities["cutoff"])
            keys = entities[pkey].to_numpy()
            database.check_keys(entity_table, keys)  # raises on unknown ids
            mode = "pairs"
        else:
            raise TypeError(
                f"entities must be 'active' or a DataFrame, got {type(entities).__name__}."
            )
        horizon = cutoff_values.max() + max(windows).to_timedelta64()
        paths = enumerate_paths(
            database,
            entity_table,
            max_hops=max_hops,
            include=include,
            exclude=exclude,
            lookback=lookback,
            as_of=pd.Timestamp(horizon),
        )
        _warn_outside(database, cutoff_values, stacklevel=4)
        if backend not in ("auto", "sql"):
            raise ValueError(f"backend must be 'auto' or 'sql', got {backend!r}.")
        return cls(
            database,
            entity_table,
            pkey,
            windows,
            mode,
            cutoff_values,
            keys,
            int(horizon.view(np.int64)),
            paths,
            backend,
        )

    def pairs(self, engine: Any) -> tuple[np.ndarray, np.ndarray]:
        """Every output row's (entity, cutoff ns): the active pairs, or the given rows."""
        if self.mode == "active":
            return _active_pairs(
                self.database, self.entity_table, self.cutoff_values, max(self.windows), engine
            )
        return self.entity_keys, self.cutoff_values.view(np.int64)

    def blocks(self, ent, cut, engine, max_columns, chunk_size, buffers=None) -> Blocks:
        return compute_blocks(
            self.database,
            self.entity_table,
            ent,
            cut,
            self.windows,
            paths=self.paths,
            max_columns=max_columns,
            direction="future",
            engine=engine,
            horizon_ns=self.horizon_ns,
            backend=self.backend,
            chunk_size=chunk_size,
            buffers=buffers,
        )


def _layout(
    pkey: str,
    ent: np.ndarray,
    cut: np.ndarray,
    blocks: Blocks,
    windows: Sequence[pd.Timedelta],
    take: Any,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """The output's column names in order, and the values of the non-numeric ones."""
    order, inactive = output_columns(pkey, blocks.names, windows)
    extra: dict[str, np.ndarray] = {pkey: take(ent), "cutoff": take(cut).view(TIME_DTYPE)}
    for name, label in inactive.items():
        extra[name] = take(blocks.block_inactive[label])
    extra.update({name: take(values) for name, values in blocks.modes.items()})
    return order, extra


def output_columns(
    pkey: str, names: Sequence[str], windows: Sequence[pd.Timedelta]
) -> tuple[list[str], dict[str, str]]:
    """The output's column names in order, and the window label of each activity flag.

    ``[pkey, "cutoff", <block of window 1>, "<w1>|no_activity", ..., "no_activity"]``:
    the per-window flags only with several windows; ``"no_activity"`` is the largest
    window's.
    """
    labels = [window_label(w) for w in windows]
    order: list[str] = [pkey, "cutoff"]
    inactive: dict[str, str] = {}
    for label in labels:
        order.extend(name for name in names if name.startswith(f"{label}|"))
        if len(labels) > 1:
            order.append(f"{label}|no_activity")
            inactive[f"{label}|no_activity"] = label
    order.append("no_activity")
    inactive["no_activity"] = labels[int(np.argmax([w.value for w in windows]))]
    return order, inactive


def _taker(inverse: np.ndarray | None) -> Any:
    def take(values: np.ndarray) -> np.ndarray:
        return values if inverse is None else values[..., inverse]

    return take


def _assemble(
    pkey: str,
    ent: np.ndarray,
    cut: np.ndarray,
    blocks: Blocks,
    windows: Sequence[pd.Timedelta],
    inverse: np.ndarray | None,
) -> pd.DataFrame:
    take = _taker(inverse)
    order, extra = _layout(pkey, ent, cut, blocks, windows, take)
    # The numeric matrix (n_numeric, n) becomes the frame's float block without a copy;
    # the few other columns are inserted at their final positions, in increasing order.
    frame = pd.DataFrame(take(blocks.matrix).T, columns=blocks.numeric_names, copy=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for position, name in enumerate(order):
            if name in extra:
                frame.insert(position, name, extra[name])
    frame.attrs["paths"] = [p.name for p in blocks.paths]
    frame.attrs["dropped_columns"] = list(blocks.dropped)
    return frame


def _arrow_table(
    pkey: str,
    ent: np.ndarray,
    cut: np.ndarray,
    blocks: Blocks,
    windows: Sequence[pd.Timedelta],
    inverse: np.ndarray | None,
):
    """The frame :func:`_assemble` would build, as an Arrow table (no pandas in between).

    Undefined aggregates (NaN) are written as nulls, as SQL engines hold them; modes are
    strings in every chunk (an all-None chunk would otherwise infer the null type).
    """
    import pyarrow as pa

    take = _taker(inverse)
    order, extra = _layout(pkey, ent, cut, blocks, windows, take)
    matrix = take(blocks.matrix)
    row_of = {name: i for i, name in enumerate(blocks.numeric_names)}
    arrays = []
    for name in order:
        if name in blocks.modes:
            arrays.append(pa.array(extra[name], type=pa.string(), from_pandas=True))
        elif name in extra:
            arrays.append(pa.array(extra[name]))
        else:
            arrays.append(_float_array(matrix[row_of[name]]))
    return pa.Table.from_arrays(arrays, names=order)


def _float_array(values: np.ndarray):
    """A float64 Arrow array over ``values`` (no copy), NaN marked null.

    The same as ``pa.array(values, from_pandas=True)``, whose per-value NaN test was 14x
    slower than numpy's ``isnan`` and ``packbits`` building the validity bitmap.
    """
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    nulls = len(values) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(
        pa.float64(), len(values), [bitmap, pa.py_buffer(values)], null_count=nulls
    )


def _in_order(fn: Any, items: Sequence[Any], workers: int):
    """Yield ``fn(item)`` in order, computing at most ``workers`` items at once.

    numpy releases the GIL in the range engine's sorts, searches and reductions, so
    chunks computed in threads use the cores without copying the database.
    """
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    share = max(1, current_thread_budget() // workers)

    def run(item: Any) -> Any:
        # Threads start without the caller's context: each gets its share of the budget.
        with thread_budget(share):
            return fn(item)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(run, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
