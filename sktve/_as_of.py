"""The declared data cut ``as_of`` shared by TVEPretrainer and AggregateFeatures.

A row of ``X`` whose time lies after the cut is featurised as of the cut: its effective
time is ``min(t, as_of)``. The cut is a parameter, never derived from the rows of ``X`` or
of the database, so adding later rows cannot move it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from sktve.database import TIME_DTYPE

__all__ = ["clamp_times", "parse_as_of"]


def parse_as_of(as_of: Any, name: str = "as_of") -> pd.Timestamp | None:
    """``as_of`` as a timezone-naive Timestamp (UTC for aware input), or None.

    Parameters
    ----------
    as_of : None, str, Timestamp, datetime, date or datetime64
        E.g. ``"2010-01-01"`` or ``pd.Timestamp("2010-01-01", tz="Europe/Paris")``.
    name : str, default="as_of"
        The parameter's name in error messages (``pretrain_until`` parses the same way).

    Returns
    -------
    Timestamp or None
    """
    if as_of is None:
        return None
    if not isinstance(as_of, (str, pd.Timestamp, datetime, date, np.datetime64)):
        # A number would silently be read as nanoseconds since 1970, a list as several cuts.
        raise TypeError(
            f"{name} must be one timestamp (a string such as '2010-01-01', a pandas "
            f"Timestamp, datetime or numpy datetime64) or None, got "
            f"{type(as_of).__name__} {as_of!r}."
        )
    try:
        value = pd.Timestamp(as_of)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"cannot parse {name}={as_of!r} as a timestamp ({err}); give e.g. '2010-01-01' "
            "or pd.Timestamp('2010-01-01')."
        ) from err
    if pd.isna(value):
        raise ValueError(
            f"{name}={as_of!r} is not a time (NaT); give a timestamp, or None for the default."
        )
    if value.tzinfo is not None:
        # The database stores aware time columns as naive UTC (load_database); the cut
        # must be on the same clock.
        value = value.tz_convert("UTC").tz_localize(None)
    return pd.Timestamp(np.datetime64(value.to_datetime64(), "ns"))


def clamp_times(times: np.ndarray, as_of: pd.Timestamp | None) -> np.ndarray:
    """``min(times, as_of)`` element-wise, as datetime64[ns] (``times`` itself for no cut)."""
    times = np.asarray(times).astype(TIME_DTYPE, copy=False)
    if as_of is None:
        return times
    return np.minimum(times, np.datetime64(as_of.to_datetime64(), "ns"))
