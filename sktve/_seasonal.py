"""Seasonal counts: how busy a row's coming window was in the same weeks of past seasons.

Windowed aggregates (:mod:`sktve.aggregates`) describe the history *before* a prediction
time t, so two rows of one entity at different calendar dates get the same features once
their histories agree, and under a declared cut (``as_of``) every row after the cut gets
the features of the cut, whatever its own date. Yet many targets follow a calendar: a
month with three races holds more chances to retire from one than a month with one, a
December window more orders. The row's own date is known when it is scored; what the
database knows about that date is how the same stretch of the calendar went before.

For a row (entity e, time t), a window length w shorter than the season S (a year by
default) and each timestamped table T, the *seasonal count* is the mean number of T's
rows in ``(t - k*S, t - k*S + w]`` over the latest :data:`N_SEASONS` whole seasons k >= 1
whose window ends by ``min(t, as_of)`` and starts at or after T's first row: the same
stretch of calendar as the coming window ``(t, t + w]``, one, two, three... seasons
back. Two versions per table: all of T's rows (the calendar of the whole database:
``"<w>|<T>|seasonal_count_all"``), and for tables that reference the entity table, the
entity's own rows (``"<w>|<T>|seasonal_count"``). NaN where no such season exists.

Every count reads only rows with time <= ``min(t, as_of)``; the row's own date only
places the windows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from sktve._entity_profile import direct_table_label
from sktve.database import Database
from sktve.targets.paths import direct_edges
from sktve.targets.vectors import _Ranges

__all__ = ["N_SEASONS", "parse_season", "seasonal_counts", "seasonal_tables"]

#: Past seasons averaged per window: enough to smooth one odd year, recent enough to
#: follow a calendar that drifts.
N_SEASONS = 3
_NAT = np.iinfo(np.int64).min


def parse_season(seasonal: Any) -> pd.Timedelta | None:
    """``AggregateFeatures(seasonal=...)`` as a season length (None: off).

    ``True`` means a year (365 days); a time span (``"7D"``, a Timedelta) a season of
    that length; ``False`` or None, no seasonal counts.
    """
    if seasonal is None or seasonal is False:
        return None
    if seasonal is True:
        return pd.Timedelta(days=365)
    season = None
    # A bare number would be read as nanoseconds: ask for a span with its unit instead.
    if isinstance(seasonal, (str, pd.Timedelta, timedelta, np.timedelta64)):
        try:
            season = pd.Timedelta(seasonal)
        except (TypeError, ValueError):
            season = None
    if season is None or pd.isna(season) or season <= pd.Timedelta(0):
        raise ValueError(
            f"seasonal must be True, False, None or a positive time span such as '365D' "
            f"or '7D', got {seasonal!r}."
        )
    return season


def seasonal_tables(database: Database, entity_table: str) -> list[tuple[str, str | None]]:
    """(table, fkey) pairs counted: every timestamped table with fkey None (all rows),
    then each table referencing the entity table with its foreign key (the entity's rows).
    """
    every = [(t, None) for t in database.table_names if database.is_temporal(t)]
    return every + list(direct_edges(database, entity_table))


def _feature_name(database: Database, entity_table: str, table: str, fkey: str | None) -> str:
    if fkey is None:
        return f"{table}|seasonal_count_all"
    return f"{direct_table_label(database, entity_table, table, fkey)}|seasonal_count"


def seasonal_counts(
    database: Database,
    entity_table: str,
    tables: list[tuple[str, str | None]],
    positions: np.ndarray,
    times_ns: np.ndarray,
    limits_ns: np.ndarray,
    windows: list[pd.Timedelta],
    season: pd.Timedelta,
    labels: list[str],
) -> dict[str, np.ndarray]:
    """Seasonal counts of each (table, fkey) for rows at ``times_ns``, read up to ``limits_ns``.

    Parameters
    ----------
    database : Database
    entity_table : str
    tables : list of (str, str or None)
        From :func:`seasonal_tables`, frozen at fit.
    positions : ndarray of int64
        The rows' entity positions in the entity table.
    times_ns : ndarray of int64
        The rows' own times (they place the windows).
    limits_ns : ndarray of int64
        The latest time each row may read: its time, or the declared cut when earlier.
    windows : list of Timedelta
        Window lengths; those shorter than ``season`` get counts.
    season : Timedelta
    labels : list of str
        The windows' labels, as in the aggregates' names.

    Returns
    -------
    dict of str to ndarray of float64
        ``"<label>|<table>|seasonal_count_all"`` and ``"<label>|<table>|seasonal_count"``.
    """
    out: dict[str, np.ndarray] = {}
    used = [(w.value, label) for w, label in zip(windows, labels) if w < season]
    if not used or not len(times_ns):
        return out
    s = season.value
    zeros = np.zeros(len(times_ns), dtype=np.int64)
    for table, fkey in tables:
        stamps = database.time_values(table)
        present = stamps != _NAT
        if not present.any():
            continue
        first = int(stamps[present].min())
        if fkey is None:
            codes, query = np.where(present, 0, -1), zeros
        else:
            codes, query = np.where(present, database.fkey_positions(table, fkey), -1), positions
        ranges = _Ranges(codes, stamps)
        name = _feature_name(database, entity_table, table, fkey)
        for w, label in used:
            total = np.zeros(len(times_ns), dtype=np.float64)
            found = np.zeros(len(times_ns), dtype=np.int64)
            # The latest season whose window ends by the limit, then one season further
            # back at a time, until every row has its seasons or reaches the first row.
            k = np.maximum(-((limits_ns - times_ns - w) // s), 1)
            while True:
                start = times_ns - k * s
                active = (found < N_SEASONS) & (start >= first)
                if not active.any():
                    break
                a, b = ranges.window(query[active], start[active], start[active] + w)
                total[active] += b - a
                found[active] += 1
                k += 1
            values = np.full(len(times_ns), np.nan)
            np.divide(total, found, out=values, where=found > 0)
            out[f"{label}|{name}"] = values
    return out
