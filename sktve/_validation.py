"""Shared input checks: windows, timestamps and task tables of (entity id, time) rows.

Every estimator of sktve takes ``X`` as a *task table*: one row per (entity id,
prediction time). This module turns such input into arrays, with errors that say what
is wrong and what to do.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from sktve.database import TIME_DTYPE, Database, match_key_type, naive_times

__all__ = ["TaskRows", "parse_windows", "resolve_task_table", "to_naive_times"]


def parse_windows(window: Any, name: str = "window") -> list[pd.Timedelta]:
    """Parse one window or several into a list of positive Timedeltas.

    Parameters
    ----------
    window : str, Timedelta, datetime.timedelta or sequence of those
        E.g. ``"30D"``, ``"30 days"``, ``pd.Timedelta(days=7)`` or ``["7D", "90D"]``.

    Returns
    -------
    list of Timedelta, in the order given (duplicates removed).
    """
    items = list(window) if isinstance(window, (list, tuple)) else [window]
    if not items:
        raise ValueError(f"{name} is empty; give at least one window such as '30D'.")
    out: list[pd.Timedelta] = []
    for item in items:
        if not isinstance(item, (str, pd.Timedelta, timedelta, np.timedelta64)):
            raise TypeError(
                f"{name} entries must be strings like '30D' or Timedeltas, got "
                f"{type(item).__name__} {item!r}."
            )
        if isinstance(item, str) and item.strip().lstrip("+-").replace(".", "", 1).isdigit():
            # pd.Timedelta("30") is 30 *nanoseconds*: a unitless number is never meant.
            raise ValueError(
                f"{name} {item!r} has no unit; write e.g. '{item.strip()}D' for days or "
                f"'{item.strip()}h' for hours."
            )
        try:
            value = pd.Timedelta(item)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"cannot parse {name} {item!r} as a duration ({err}); use e.g. '30D', "
                "'12h' or pd.Timedelta(days=30)."
            ) from err
        if pd.isna(value) or value <= pd.Timedelta(0):
            raise ValueError(f"{name} must be a positive duration, got {item!r}.")
        if value not in out:
            out.append(value)
    return out


def to_naive_times(values: Any, what: str = "times", *, stacklevel: int = 2) -> pd.Series:
    """Convert timestamps to timezone-naive datetime64[ns], by the rule of time columns.

    ``datetime64`` values, Timestamps and ISO strings are accepted; timezone-aware times
    are converted to UTC with the warning :func:`~sktve.load_database` gives; numbers
    are refused (convert them with e.g. ``pd.to_datetime(x, unit="s")``). See
    ``sktve.database.naive_times``.
    """
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    return naive_times(series, what, stacklevel=stacklevel + 1)


@dataclass(frozen=True)
class TaskRows:
    """A validated task table.

    Attributes
    ----------
    keys : ndarray
        Entity primary-key values, one per row.
    positions : ndarray of int64
        Row positions of the entities in the entity table; -1 for unknown ids.
    times : ndarray of datetime64[ns]
        Prediction times, one per row.
    entity_col, time_col : str
        The column names used (as found in X).
    """

    keys: np.ndarray
    positions: np.ndarray
    times: np.ndarray
    entity_col: str
    time_col: str

    @property
    def times_ns(self) -> np.ndarray:
        return self.times.view(np.int64)

    @property
    def unknown(self) -> np.ndarray:
        return self.positions < 0


def _infer_columns(
    X: pd.DataFrame, pkey: str, entity_col: str | None, time_col: str | None
) -> tuple[str, str]:
    columns = list(X.columns)
    if time_col is None:
        datetime_cols = [
            c
            for c in columns
            if X[c].dtype.kind == "M" or isinstance(X[c].dtype, pd.DatetimeTZDtype)
        ]
        if len(datetime_cols) == 1:
            time_col = datetime_cols[0]
        elif not datetime_cols:
            raise ValueError(
                f"X has no datetime column to hold the prediction time (columns {columns}, "
                f"dtypes {[str(X[c].dtype) for c in columns]}). Convert the times to "
                "datetime64, e.g. pd.to_datetime(X[col]) for strings or pd.to_datetime("
                "X[col], unit='s') for seconds since the epoch, or pass time_col=... ."
            )
        else:
            raise ValueError(
                f"cannot tell which column of X holds the prediction time (datetime "
                f"columns: {datetime_cols}); pass time_col=... ."
            )
    if entity_col is None:
        if pkey in columns:
            entity_col = pkey
        else:
            others = [c for c in columns if c != time_col]
            if len(others) == 1:
                entity_col = others[0]
            else:
                raise ValueError(
                    f"cannot tell which column of X holds the entity id (no column named "
                    f"{pkey!r}; candidates {others}); pass entity_col=... ."
                )
    for role, col in (("entity_col", entity_col), ("time_col", time_col)):
        if col not in columns:
            raise ValueError(f"X has no column {col!r} ({role}); its columns are {columns}.")
    if entity_col == time_col:
        raise ValueError(
            f"entity_col and time_col must be different columns, got {entity_col!r} for both; "
            "name the entity id column and the time column of X."
        )
    extra = [c for c in columns if c not in (entity_col, time_col)]
    if extra:
        raise ValueError(
            f"X has columns {extra} besides the entity column {entity_col!r} and the time "
            f"column {time_col!r}; select only those two (e.g. X[[{entity_col!r}, "
            f"{time_col!r}]]) so that labels cannot leak in."
        )
    return entity_col, time_col


def resolve_task_table(
    X: Any,
    database: Database,
    entity_table: str,
    entity_col: str | None = None,
    time_col: str | None = None,
    *,
    warn_before_start: bool = True,
) -> TaskRows:
    """Validate a task table ``X`` against the database.

    Parameters
    ----------
    X : DataFrame or array of shape (n_rows, 2)
        Entity ids and prediction times. An array's first column holds ids, its second
        holds times (an object array of Timestamps, datetime64 values or ISO strings).
        Times are never numbers, in a DataFrame or an array: convert epoch numbers with
        e.g. ``pd.to_datetime(x, unit="s")``. Ids of another type than the entity
        table's key (strings of digits for integer keys, or the reverse) are converted
        when every id converts exactly, with a warning, else refused.
    database : Database
    entity_table : str
    entity_col, time_col : str, optional
        Column names in X; inferred when unambiguous.

    Returns
    -------
    TaskRows
    """
    pkey = database.pkey(entity_table)
    if pkey is None:
        raise ValueError(
            f"entity table {entity_table!r} has no primary key, so its rows cannot be "
            "named by id; choose a table with a primary key."
        )
    if isinstance(X, pd.DataFrame):
        entity_col, time_col = _infer_columns(X, pkey, entity_col, time_col)
        ids = X[entity_col]
        raw_times = X[time_col]
    else:
        array = np.asarray(X) if not isinstance(X, Sequence) or len(X) else np.empty((0, 2))
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(
                f"X must be a DataFrame with an entity and a time column, or an array of "
                f"shape (n_rows, 2); got shape {array.shape}."
            )
        entity_col = entity_col or pkey
        time_col = time_col or "time"
        ids = pd.Series(array[:, 0])
        raw_times = pd.Series(array[:, 1])
    if len(ids) == 0:
        raise ValueError("X is empty: give at least one (entity id, time) row.")
    if ids.isna().any():
        raise ValueError(
            f"X[{entity_col!r}] has {int(ids.isna().sum())} missing entity ids; drop or fill "
            "those rows."
        )
    times = to_naive_times(raw_times.reset_index(drop=True), f"X[{time_col!r}]", stacklevel=3)
    n_nat = int(times.isna().sum())
    if n_nat:
        raise ValueError(
            f"X[{time_col!r}] has {n_nat} missing times (NaT); every row needs a prediction "
            "time (drop or fill those rows)."
        )
    ids = match_key_type(
        ids,
        database.table(entity_table)[pkey],
        where=f"X[{entity_col!r}]",
        key_where=f"{entity_table}.{pkey}",
        stacklevel=3,
    )
    key_values = ids.to_numpy()
    index = database.key_index(entity_table)
    if key_values.dtype.kind == "f" and index.dtype.kind in "iu":
        if not np.all(np.mod(key_values, 1) == 0):
            raise ValueError(
                f"X[{entity_col!r}] holds non-integer ids, but {entity_table}.{pkey} is "
                "integer; give the ids as they appear in that column."
            )
        key_values = key_values.astype(index.dtype)
    positions = index.get_indexer(key_values).astype(np.int64)
    times_array = times.to_numpy(dtype=TIME_DTYPE)
    n_early = count_before_start(times_array, database) if warn_before_start else 0
    if n_early:
        warnings.warn(
            f"{n_early} rows of X have times before the database starts "
            f"({database.min_timestamp}); their embeddings/features see no history.",
            UserWarning,
            stacklevel=3,
        )
    return TaskRows(
        keys=key_values,
        positions=positions,
        times=times_array,
        entity_col=entity_col,
        time_col=time_col,
    )


def count_before_start(times: np.ndarray, database: Database) -> int:
    """How many of ``times`` (datetime64[ns]) lie before the database's first timestamp.

    0 for a database without time columns, where no row can precede the data.
    """
    if not any(database.is_temporal(t) for t in database.table_names):
        return 0
    return int((times < np.datetime64(database.min_timestamp)).sum())


def raise_unknown_entities(rows: TaskRows, entity_table: str) -> None:
    """Raise a clear error if any row names an entity that is not in the entity table."""
    if rows.unknown.any():
        examples = pd.unique(rows.keys[rows.unknown])[:5].tolist()
        raise ValueError(
            f"{int(rows.unknown.sum())} rows of X name entities that are not in table "
            f"{entity_table!r} (e.g. {examples}). Remove them, or set "
            "handle_unknown='zeros' to give them all-zero outputs."
        )
