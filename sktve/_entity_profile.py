"""Window-free features of an entity at a time: its own columns, ages and recency.

Two cheap feature groups that complement windowed aggregates (:mod:`sktve.aggregates`):

- the entity table's own columns (numeric and boolean as numbers, categorical as raw
  values for one-hot encoding downstream) and, for each of its datetime columns, the
  age in days at the prediction time (a birth date becomes the age at t);
- for each timestamped table whose rows reference the entity directly, the days since the
  entity's latest and earliest row at or before the prediction time (NaN before its first).

Both read only rows with time <= t: a timestamped entity table's own row is hidden (all
NaN) until its time, and recency searches only rows up to t. Column kinds are frozen by
:func:`entity_column_spec` from rows up to the fit horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sktve.database import TIME_DTYPE, Database
from sktve.targets.paths import direct_edges, profile_table
from sktve.targets.vectors import _Ranges

__all__ = [
    "direct_table_label",
    "entity_column_spec",
    "entity_column_values",
    "recency_values",
]

NS_PER_DAY = 86_400 * 10**9


def entity_column_spec(
    database: Database, entity_table: str, as_of: pd.Timestamp | None
) -> list[tuple[str, str]]:
    """(column, kind) of the entity table's own feature columns, kinds as of ``as_of``.

    Kinds are those of :func:`sktve.targets.paths.column_kind` plus ``"datetime"`` for
    datetime columns (the time column included: its age is the entity's age).
    """
    frame = database.table(entity_table)
    schema = database.schema[entity_table]
    keys = {schema.pkey, *schema.fkeys}
    spec = [
        (str(col), "datetime")
        for col in frame.columns
        if col not in keys
        and (frame[col].dtype.kind == "M" or isinstance(frame[col].dtype, pd.DatetimeTZDtype))
    ]
    spec += [(c.name, c.kind) for c in profile_table(database, entity_table, as_of)]
    order = {str(col): i for i, col in enumerate(frame.columns)}
    return sorted(spec, key=lambda item: order[item[0]])


def entity_column_values(
    database: Database,
    entity_table: str,
    spec: list[tuple[str, str]],
    positions: np.ndarray,
    times_ns: np.ndarray,
) -> dict[str, np.ndarray]:
    """The entity table's own columns for each (entity position, time) pair.

    Parameters
    ----------
    database : Database
    entity_table : str
    spec : list of (str, str)
        Columns and kinds from :func:`entity_column_spec`.
    positions : ndarray of int64
        Row positions in the entity table (all valid).
    times_ns : ndarray of int64
        Prediction times in nanoseconds, one per position.

    Returns
    -------
    dict of str to ndarray
        ``"<table>|<column>"`` to float64 values (numeric, boolean) or object values
        (categorical); ``"<table>|<column>|age_days"`` for datetime columns.
    """
    frame = database.table(entity_table)
    hidden = np.zeros(len(positions), dtype=bool)
    if database.time_col(entity_table) is not None:
        # An entity row with a time is not known before that time.
        hidden = database.time_values(entity_table)[positions] > times_ns
    out: dict[str, np.ndarray] = {}
    for col, kind in spec:
        series = frame[col]
        name = f"{entity_table}|{col}"
        if kind == "datetime":
            stamps = series.to_numpy(dtype=TIME_DTYPE)[positions]
            valid = ~np.isnat(stamps) & ~hidden
            age = np.full(len(positions), np.nan)
            age[valid] = (times_ns[valid] - stamps[valid].view(np.int64)) / NS_PER_DAY
            out[f"{name}|age_days"] = age
        elif kind == "categorical":
            values = series.astype(object).to_numpy()[positions]
            values[hidden] = None
            out[name] = values
        else:
            values = pd.to_numeric(series.astype(object), errors="coerce")
            values = values.to_numpy(dtype=np.float64, na_value=np.nan)[positions]
            values[hidden] = np.nan
            out[name] = values
    return out


def direct_table_label(database: Database, entity_table: str, table: str, fkey: str) -> str:
    """How features name a table that references the entity: the table, or ``<table>.<fkey>``
    when it references the entity table through several keys."""
    several = list(database.fkeys(table).values()).count(entity_table) > 1
    return f"{table}.{fkey}" if several else table


def recency_values(
    database: Database, entity_table: str, positions: np.ndarray, times_ns: np.ndarray
) -> dict[str, np.ndarray]:
    """Days since the entity's latest and earliest row at or before t, per direct table.

    Parameters
    ----------
    database : Database
    entity_table : str
    positions : ndarray of int64
        Row positions in the entity table (all valid).
    times_ns : ndarray of int64
        Prediction times in nanoseconds, one per position.

    Returns
    -------
    dict of str to ndarray of float64
        ``"<table>|days_since_last"`` and ``"<table>|days_since_first"`` (``<table>.<fkey>``
        when the table references the entity table through several keys); NaN where the
        entity has no row at or before t.
    """
    out: dict[str, np.ndarray] = {}
    for table, fkey in direct_edges(database, entity_table):
        stamps = database.time_values(table)
        # The task vectors' rows-by-key-and-time index: window (-inf, t] of each entity.
        ranges = _Ranges(database.fkey_positions(table, fkey), stamps)
        before_all = np.full(len(positions), ranges.t0 - 1, dtype=np.int64)
        start, stop = ranges.window(positions, before_all, times_ns)
        found = stop > start
        name = direct_table_label(database, entity_table, table, fkey)
        for label, index in (("last", stop - 1), ("first", start)):
            days = np.full(len(positions), np.nan)
            row_times = stamps[ranges.rows[index[found]]]
            days[found] = (times_ns[found] - row_times) / NS_PER_DAY
            out[f"{name}|days_since_{label}"] = days
    return out
