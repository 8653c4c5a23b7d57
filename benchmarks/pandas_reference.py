"""A slow, independent pandas implementation of task-vector aggregates (the test oracle).

It materialises every path's row tuples with plain ``merge`` calls and aggregates them
with ``groupby``; it shares no SQL with :mod:`sktve.targets`. Only the path list
(:func:`sktve.targets.enumerate_paths`) is shared, so tests of enumeration are separate.
The tests import it, and ``bench_task_vectors.py`` quotes the speed ratio against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["reference_aggregates"]

NUMERIC = ("mean", "min", "max", "sum", "std", "count")


def _label(window: pd.Timedelta) -> str:
    ns = int(window.value)
    for unit, size in (("D", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if ns % (size * 10**9) == 0:
            return f"{ns // (size * 10**9)}{unit}"
    return f"{ns}ns"


def _tuples(db, path, pairs: pd.DataFrame, lo: pd.Timedelta, hi: pd.Timedelta, window):
    """Rows of (pair id, last-table columns) for one path; one row per path tuple."""
    first = path.hops[0]
    f = db.table(first.table)
    ftime = db.time_col(first.table)
    f = f.rename(columns={c: f"f::{c}" for c in f.columns})
    m = pairs.merge(f, left_on="entity", right_on=f"f::{first.fkey}", how="inner")
    t = m[f"f::{ftime}"]
    m = m[(t > m["cutoff"] + lo) & (t <= m["cutoff"] + hi)]
    if path.kind == "direct":
        return m.rename(columns=lambda c: c[3:] if c.startswith("f::") else c)
    hop = path.hops[1]
    if path.kind == "dimension":
        d = db.table(hop.table)
        d = d.rename(columns={c: f"x::{c}" for c in d.columns})
        m = m.merge(d, left_on=f"f::{hop.fkey}", right_on=f"x::{db.pkey(hop.table)}")
        if db.time_col(hop.table) is not None:
            m = m[m[f"x::{db.time_col(hop.table)}"] <= m["cutoff"] + hi]
    elif path.kind == "child":
        g = db.table(hop.table)
        g = g.rename(columns={c: f"x::{c}" for c in g.columns})
        m = m.merge(g, left_on=f"f::{db.pkey(first.table)}", right_on=f"x::{hop.fkey}")
        if db.time_col(hop.table) is not None:
            m = m[m[f"x::{db.time_col(hop.table)}"] <= m["cutoff"] + hi]
    else:  # sibling
        sib = path.hops[2]
        lookback = path.lookback if path.lookback is not None else window
        g = db.table(sib.table)
        g = g.rename(columns={c: f"x::{c}" for c in g.columns})
        m = m.merge(g, left_on=f"f::{hop.fkey}", right_on=f"x::{sib.fkey}")
        gt = m[f"x::{db.time_col(sib.table)}"]
        m = m[(gt > m[f"f::{ftime}"] - lookback) & (gt <= m[f"f::{ftime}"])]
    return m.rename(columns=lambda c: c[3:] if c.startswith("x::") else c)


def _mode(values: pd.Series) -> object:
    counts = values.value_counts()
    if counts.empty:
        return None
    best = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))  # ties: smallest text
    return best[0][0]


def reference_aggregates(
    db,
    entity_table: str,
    entities: np.ndarray,
    cutoffs: np.ndarray,
    windows: Sequence[pd.Timedelta],
    paths,
    *,
    direction: str = "future",
) -> pd.DataFrame:
    """Aggregates for the given (entity, cutoff) pairs, named like ``task_vectors``.

    Returns a frame with one row per pair (same order), columns
    ``"<w>|<path>|<column>|<agg>"`` for every aggregate of every path, ``"<w>|no_activity"``
    per window and ``"no_activity"`` for the largest window.
    """
    n = len(entities)
    pairs = pd.DataFrame(
        {"pid": np.arange(n), "entity": entities, "cutoff": pd.to_datetime(cutoffs)}
    )
    out: dict[str, np.ndarray] = {}
    edges = [
        fk
        for fk in db.foreign_keys
        if fk.dst_table == entity_table and db.time_col(fk.src_table) is not None
    ]
    for window in windows:
        label = _label(window)
        lo, hi = (pd.Timedelta(0), window) if direction == "future" else (-window, pd.Timedelta(0))
        activity = np.zeros(n, dtype=np.int64)
        for fk in edges:
            f = db.table(fk.src_table)
            m = pairs.merge(f, left_on="entity", right_on=fk.fkey_col)
            t = m[db.time_col(fk.src_table)]
            m = m[(t > m["cutoff"] + lo) & (t <= m["cutoff"] + hi)]
            counts = m.groupby("pid").size()
            activity[counts.index.to_numpy()] += counts.to_numpy()
        out[f"{label}|no_activity"] = (activity == 0).astype(np.int8)
        for path in paths:
            rows = _tuples(db, path, pairs, lo, hi, window)
            grouped = rows.groupby("pid")
            if path.row_count:
                counts = grouped.size().reindex(range(n), fill_value=0)
                out[f"{label}|{path.name}|*|count"] = counts.to_numpy(dtype=np.float64)
            sibling = path.kind == "sibling"
            for col in path.columns:
                name = f"{label}|{path.name}|{col.name}"
                values = rows[col.name]
                if col.kind == "categorical":
                    text = values.astype(object).where(values.notna(), None)
                    text = text.map(lambda v: None if v is None else str(v))
                    frame = pd.DataFrame({"pid": rows["pid"], "v": text})
                    g = frame.groupby("pid")["v"]
                    out[f"{name}|count"] = (
                        g.count().reindex(range(n), fill_value=0).to_numpy(dtype=np.float64)
                    )
                    if not sibling:
                        out[f"{name}|nunique"] = (
                            g.nunique().reindex(range(n), fill_value=0).to_numpy(dtype=np.float64)
                        )
                        modes = g.agg(lambda s: _mode(s.dropna())).reindex(range(n))
                        out[f"{name}|mode"] = modes.astype(object).where(modes.notna(), None)
                    continue
                numbers = pd.to_numeric(values.astype("Float64"), errors="coerce").astype(float)
                frame = pd.DataFrame({"pid": rows["pid"], "v": numbers})
                g = frame.groupby("pid")["v"]
                if col.kind == "boolean":
                    out[f"{name}|mean"] = g.mean().reindex(range(n)).to_numpy()
                    continue
                out[f"{name}|mean"] = g.mean().reindex(range(n)).to_numpy()
                out[f"{name}|min"] = g.min().reindex(range(n)).to_numpy()
                out[f"{name}|max"] = g.max().reindex(range(n)).to_numpy()
                out[f"{name}|sum"] = g.sum().reindex(range(n), fill_value=0.0).to_numpy()
                out[f"{name}|std"] = g.std(ddof=0).reindex(range(n)).to_numpy()
                out[f"{name}|count"] = (
                    g.count().reindex(range(n), fill_value=0).to_numpy(dtype=np.float64)
                )
    largest = _label(max(windows))
    out["no_activity"] = out[f"{largest}|no_activity"]
    return pd.DataFrame(out)
