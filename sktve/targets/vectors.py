"""Task vectors: aggregates of what happens to each entity in the window after a cutoff.

:func:`task_vectors` ties the stages together: paths from the schema graph
(:mod:`~sktve.targets.paths`), SQL per path and window (:mod:`~sktve.targets.sql`), an
engine that runs it (:mod:`~sktve.targets.engine`), and the assembly of one wide frame.
:func:`compute_blocks` is shared with :class:`sktve.AggregateFeatures`, which runs the same
queries on the window *before* the cutoff.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sktve._validation import parse_windows, to_naive_times
from sktve.database import TIME_DTYPE, Database
from sktve.targets.engine import DuckDBEngine
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

__all__ = ["DEFAULT_MAX_COLUMNS", "task_vectors", "window_label"]

#: Default cap on aggregate columns per window block.
DEFAULT_MAX_COLUMNS = 500


def window_label(window: pd.Timedelta) -> str:
    """A short stable label for a window: ``"30D"``, ``"12h"``, ``"90min"``, ``"45s"``."""
    ns = int(window.value)
    for unit, size in (("D", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if ns % (size * 1_000_000_000) == 0:
            return f"{ns // (size * 1_000_000_000)}{unit}"
    return f"{ns}ns"


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
    database: Database, table: str, paths: Sequence[PathSpec], horizon_ns: int | None
) -> pd.DataFrame:
    """The columns of ``table`` the queries need, in engine-friendly types."""
    frame = database.table(table)
    schema = database.schema[table]
    if horizon_ns is not None and schema.time_col is not None:
        times = frame[schema.time_col].to_numpy(dtype=TIME_DTYPE).view(np.int64)
        keep = times <= horizon_ns
        # Rows after the horizon are physically absent from the engine: they cannot
        # influence any result, not even floating-point summation order.
        if not keep.all():
            frame = frame[keep]
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


# ---------------------------------------------------------------------- core
def _join_strategy(pair_cutoffs: np.ndarray, pair_entities_unique: int, span: int) -> str:
    """Pick the join order that produces fewer intermediate rows (see sql._window_join)."""
    cutoffs = np.unique(pair_cutoffs)
    per_span = np.searchsorted(cutoffs, cutoffs + span, side="right") - np.arange(len(cutoffs))
    cutoffs_per_row = float(per_span.mean())
    pairs_per_entity = len(pair_cutoffs) / max(pair_entities_unique, 1)
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

    Returns
    -------
    Blocks
        Columns named ``"<window>|<path>|<column>|<aggregate>"``, per-window inactivity.
    """
    own_engine = engine is None
    if own_engine:
        engine = DuckDBEngine()
    n = len(entities)
    edges = direct_edges(database, entity_table)
    tables = {t for t, _ in edges}
    for path in paths:
        tables.update(h.table for h in path.hops)
    try:
        views = {}
        for table in sorted(tables):
            views[table] = _view_frame(database, table, paths, horizon_ns)
            engine.register(f"__tve_{table}", views[table])
        first_tables = sorted({t for t, _ in edges})
        unique_cutoffs, cutoff_ids = np.unique(cutoffs_ns, return_inverse=True)
        engine.register(
            "__pairs",
            pd.DataFrame(
                {
                    "pair_id": np.arange(n, dtype=np.int64),
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
        n_entities = len(pd.unique(entities))
        plan, dropped = plan_aggregates(paths, max_columns)
        labels = [window_label(w) for w in windows]
        names = [f"{label}|{spec.name}" for label in labels for spec in plan]
        numeric_names = [
            f"{label}|{spec.name}" for label in labels for spec in plan if spec.agg != "mode"
        ]
        row_of = {name: i for i, name in enumerate(numeric_names)}
        matrix = np.empty((len(numeric_names), n), dtype=np.float64)
        for label in labels:
            for spec in plan:
                if spec.agg != "mode":
                    # Counts and sums over no rows are 0; other aggregates are undefined.
                    zero = spec.agg in ("count", "nunique", "sum")
                    matrix[row_of[f"{label}|{spec.name}"]] = 0.0 if zero else np.nan
        modes: dict[str, np.ndarray] = {}
        block_inactive: dict[str, np.ndarray] = {}
        all_dropped: list[str] = []
        partials_done: dict[tuple, str] = {}
        for window in windows:
            w = int(window.value)
            lo, hi = (0, w) if direction == "future" else (-w, 0)
            label = window_label(window)
            strategy = _join_strategy(cutoffs_ns, n_entities, w)
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
            all_dropped.extend(f"{label}|{name}" for name in dropped)
            activity = np.zeros(n, dtype=np.int64)
            by_path: dict[str, list[AggregateSpec]] = {}
            for spec in plan:
                by_path.setdefault(spec.path.name, []).append(spec)
            counted_edges: set[tuple[str, str]] = set()
            for path in paths:
                specs = by_path.get(path.name, [])
                is_direct = path.kind == "direct"
                if not specs and not is_direct:
                    continue
                statements = []
                partials = None
                if path.kind == "sibling":
                    lookback = int((path.lookback or window).value)
                    key = (path.hops, lookback, tuple(path.columns))
                    if key not in partials_done:
                        partials = f"__tve_sib{len(partials_done)}"
                        statements.append(sibling_partials_sql(path, lookback, partials))
                        partials_done[key] = partials
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
                )
                if is_direct:
                    # The row count drives the activity flags even when it is not an output.
                    sql = sql.replace("SELECT p.pair_id", "SELECT p.pair_id, count(*) AS __n", 1)
                    counted_edges.add((path.first_table, path.hops[0].fkey))
                statements.append(sql)
                result = engine.execute(statements)
                ids = result["pair_id"].to_numpy(dtype=np.int64)
                if is_direct:
                    activity[ids] += result["__n"].to_numpy(dtype=np.int64)
                for spec, alias in zip(specs, aliases):
                    name = f"{label}|{spec.name}"
                    values = result[alias]
                    if spec.agg == "mode":
                        out = np.full(n, None, dtype=object)
                        present = values.notna().to_numpy()
                        out[ids[present]] = values[present].to_numpy(dtype=object)
                        modes[name] = out
                    else:
                        fill = 0.0 if spec.agg in ("count", "nunique", "sum") else np.nan
                        matrix[row_of[name], ids] = values.to_numpy(dtype=np.float64, na_value=fill)
            for table, col in edges:
                if (table, col) in counted_edges:
                    continue
                # A direct path left out by include/exclude still defines activity.
                count_path = PathSpec(table, "direct", (Hop(table, col, "in"),), ())
                sql, _ = path_query_sql(count_path, [], lo=lo, hi=hi, strategy=strategy)
                sql = sql.replace("SELECT p.pair_id", "SELECT p.pair_id, count(*) AS __n", 1)
                result = engine.execute([sql])
                activity[result["pair_id"].to_numpy(dtype=np.int64)] += result["__n"].to_numpy(
                    dtype=np.int64
                )
            block_inactive[label] = (activity == 0).astype(np.int8)
        return Blocks(names, numeric_names, matrix, modes, block_inactive, all_dropped, list(paths))
    finally:
        if own_engine:
            engine.close()


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
            "be a timestamp."
        )
    return to_naive_times(values.reset_index(drop=True), "cutoffs").to_numpy(dtype=TIME_DTYPE)


def _warn_outside(database: Database, cutoffs: np.ndarray, what: str = "cutoffs") -> None:
    start, end = np.datetime64(database.min_timestamp), np.datetime64(database.max_timestamp)
    early = int((cutoffs < start).sum())
    late = int((cutoffs >= end).sum())
    if early or late:
        warnings.warn(
            f"{early + late} {what} lie outside the database's time range ({start} .. {end}): "
            f"{early} before its start, {late} at or after its end (those windows hold no "
            "rows, so every entity is inactive there).",
            UserWarning,
            stacklevel=3,
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
    own = engine is None
    engine = engine or DuckDBEngine()
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
        first = engine.execute([first_time_sql(edges)])
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
    database : Database
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
    engine : object, optional
        An engine with ``register`` and ``execute`` (default: a fresh
        :class:`~sktve.targets.DuckDBEngine` with 2 threads).

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
    check_entity_table(database, entity_table)
    windows = parse_windows(window)
    max_window = max(windows)
    pkey = database.pkey(entity_table)
    if isinstance(entities, str):
        if entities != "active":
            raise ValueError(
                f"entities must be 'active' or a DataFrame of (entity, cutoff) pairs, got "
                f"{entities!r}."
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
        mode = "pairs"
    else:
        raise TypeError(f"entities must be 'active' or a DataFrame, got {type(entities).__name__}.")
    horizon = cutoff_values.max() + max_window.to_timedelta64()
    paths = enumerate_paths(
        database,
        entity_table,
        max_hops=max_hops,
        include=include,
        exclude=exclude,
        lookback=lookback,
        as_of=pd.Timestamp(horizon),
    )
    _warn_outside(database, cutoff_values)
    if mode == "active":
        ent, cut = _active_pairs(database, entity_table, cutoff_values, max_window, engine)
        inverse = None
    else:
        keys = entities[pkey].to_numpy()
        database.entity_positions(entity_table, keys)  # raises on unknown ids
        pairs = pd.DataFrame({"e": keys, "c": cutoff_values.view(np.int64)})
        inverse = pairs.groupby(["e", "c"], sort=False, dropna=False).ngroup().to_numpy()
        unique = pairs.drop_duplicates()
        ent, cut = unique["e"].to_numpy(), unique["c"].to_numpy(dtype=np.int64)
    blocks = compute_blocks(
        database,
        entity_table,
        ent,
        cut,
        windows,
        paths=paths,
        max_columns=max_columns,
        direction="future",
        engine=engine,
        horizon_ns=int(horizon.view(np.int64)),
    )
    if blocks.dropped:
        shown = ", ".join(blocks.dropped[:5])
        warnings.warn(
            f"max_columns={max_columns} dropped {len(blocks.dropped)} aggregate columns "
            f"(e.g. {shown}); see frame.attrs['dropped_columns'], or narrow the paths with "
            "include/exclude.",
            UserWarning,
            stacklevel=2,
        )
    return _assemble(pkey, ent, cut, blocks, windows, inverse)


def _assemble(
    pkey: str,
    ent: np.ndarray,
    cut: np.ndarray,
    blocks: Blocks,
    windows: Sequence[pd.Timedelta],
    inverse: np.ndarray | None,
) -> pd.DataFrame:
    def take(values: np.ndarray) -> np.ndarray:
        return values if inverse is None else values[..., inverse]

    labels = [window_label(w) for w in windows]
    order: list[str] = [pkey, "cutoff"]
    extra: dict[str, np.ndarray] = {pkey: take(ent), "cutoff": take(cut).view(TIME_DTYPE)}
    for label in labels:
        order.extend(name for name in blocks.names if name.startswith(f"{label}|"))
        if len(labels) > 1:
            order.append(f"{label}|no_activity")
            extra[f"{label}|no_activity"] = take(blocks.block_inactive[label])
    largest = labels[int(np.argmax([w.value for w in windows]))]
    order.append("no_activity")
    extra["no_activity"] = take(blocks.block_inactive[largest])
    extra.update({name: take(values) for name, values in blocks.modes.items()})
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
