"""Training on stale features: training rows repeated with their times moved back.

Where the data behind a prediction lags behind the row's time, a model trained only on
fresh features meets inputs unlike any it saw in training. RelBench's cut protocol is
the extreme case: the database ends at the test timestamp while test rows run up to three
years past it, so with ``as_of`` every test row is featurised as of the cut, 0 to 3 years
stale. A nightly warehouse load or a monthly export is the everyday case. Repeating each
training row with its time moved back by a lag (the label unchanged) trains on features
that are stale in the same way: the row's features are computed as of ``t - lag``, which
reads less data than the row itself would, never more.

:func:`stale_rows` does this for any estimator that takes (entity id, time) rows, such as
``make_pipeline(AggregateFeatures(...), HistGradientBoostingRegressor())``;
``TVEClassifier`` / ``TVERegressor`` do it inside ``fit`` with ``stale_lags``, where the
early-stopping split must keep every copy of a row on the same side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["parse_lags", "shift_times", "stale_rows"]


def parse_lags(lags: Any, name: str = "lags") -> np.ndarray:
    """``lags`` as an array of distinct, non-negative timedelta64[ns], in the given order.

    Parameters
    ----------
    lags : sequence of str, Timedelta, timedelta or timedelta64
        E.g. ``["0D", "182D", "365D"]``. A lag of zero keeps the rows as given.
    name : str
        The parameter's name, for error messages.

    Returns
    -------
    ndarray of timedelta64[ns]
    """
    if isinstance(lags, str | pd.Timedelta) or not isinstance(lags, Sequence | np.ndarray):
        raise TypeError(
            f"{name} must be a list of time spans such as ['0D', '182D', '365D'], got "
            f"{type(lags).__name__} {lags!r}."
        )
    if len(lags) == 0:
        raise ValueError(f"{name} is empty: give at least one lag, e.g. ['0D', '365D'].")
    parsed = []
    for lag in lags:
        if isinstance(lag, bool | int | float | np.number) and not isinstance(lag, np.timedelta64):
            # A bare number would be read as nanoseconds.
            raise TypeError(
                f"{name} holds the number {lag!r}; give a time span with its unit, "
                "e.g. '365D' or pd.Timedelta(days=365)."
            )
        try:
            value = pd.Timedelta(lag)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"cannot read {lag!r} in {name} as a time span ({err}); give e.g. '182D'."
            ) from err
        if pd.isna(value) or value < pd.Timedelta(0):
            raise ValueError(
                f"{name} holds {lag!r}; lags must be zero or positive (a row is featurised "
                "as of its time minus the lag, never later)."
            )
        parsed.append(value.to_timedelta64().astype("timedelta64[ns]"))
    values = np.asarray(parsed, dtype="timedelta64[ns]")
    if len(np.unique(values)) != len(values):
        raise ValueError(f"{name} holds the same lag twice: {list(lags)!r}.")
    return values


def _time_column(X: pd.DataFrame, time_col: str | None) -> str:
    if time_col is not None:
        if time_col not in X.columns:
            raise ValueError(f"X has no column {time_col!r}; its columns are {list(X.columns)}.")
        return time_col
    datetime_cols = [
        c for c in X.columns if X[c].dtype.kind == "M" or isinstance(X[c].dtype, pd.DatetimeTZDtype)
    ]
    if len(datetime_cols) != 1:
        raise ValueError(
            f"cannot tell which column of X holds the time (datetime columns: "
            f"{datetime_cols}); pass time_col=... ."
        )
    return datetime_cols[0]


def shift_times(X: Any, lag: np.timedelta64, time_col: str | None = None) -> Any:
    """A copy of the (entity id, time) rows ``X`` with every time moved back by ``lag``.

    A DataFrame stays a DataFrame (its index kept; ``time_col`` inferred when it is the
    only datetime column); an array of shape (n_rows, 2) stays an object array, its
    second column the times.
    """
    if isinstance(X, pd.DataFrame):
        col = _time_column(X, time_col)
        times = pd.to_datetime(X[col])
        # Keep the column's own resolution (pandas 3 reads many as microseconds).
        return X.assign(**{col: (times - pd.Timedelta(lag)).astype(times.dtype)})
    array = np.asarray(X)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"X must be a DataFrame or an array of shape (n_rows, 2), got shape {array.shape}."
        )
    shifted = array.astype(object, copy=True)
    times = pd.to_datetime(pd.Series(array[:, 1]))
    shifted[:, 1] = (times - pd.Timedelta(lag)).to_numpy(dtype=object)
    return shifted


def stale_rows(X: Any, y: Any, lags: Any, *, time_col: str | None = None) -> tuple[Any, Any]:
    """Each row of ``(X, y)`` once per lag, its time moved back by the lag, label unchanged.

    Fit any estimator of (entity id, time) rows on the result to train it on features that
    are as stale as those it will meet at prediction time, e.g. under RelBench's cut
    protocol with ``as_of`` at the test timestamp.

    Parameters
    ----------
    X : DataFrame or array of shape (n_rows, 2)
        Entity ids and times. A DataFrame's time column is ``time_col``, or its only
        datetime column.
    y : array-like of shape (n_rows,), or None
    lags : sequence of time spans
        E.g. ``["0D", "182D", "365D", "730D", "1095D"]``. Include ``"0D"`` to keep the rows
        as given.
    time_col : str, optional

    Returns
    -------
    X_stale : DataFrame (index reset) or object array
        ``len(lags) * n_rows`` rows: all of X moved back by the first lag, then by the
        second, and so on.
    y_stale : ndarray, Series (index reset, for a Series y) or None

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve.staleness import stale_rows
    >>> X = pd.DataFrame({"id": [1, 2], "t": pd.to_datetime(["2020-06-01", "2020-07-01"])})
    >>> X_stale, y_stale = stale_rows(X, [0, 1], ["0D", "365D"])
    >>> X_stale["t"].dt.year.tolist(), y_stale.tolist()
    ([2020, 2020, 2019, 2019], [0, 1, 0, 1])
    """
    values = parse_lags(lags)
    n_rows = len(X)
    if n_rows == 0:
        raise ValueError("X is empty: give at least one (entity id, time) row.")
    if y is not None and len(y) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(y)}; give one label per row.")
    copies = [shift_times(X, lag, time_col) for lag in values]
    if isinstance(X, pd.DataFrame):
        X_stale = pd.concat(copies, ignore_index=True)
    else:
        X_stale = np.concatenate(copies, axis=0)
    if y is None:
        return X_stale, None
    if isinstance(y, pd.Series):
        return X_stale, pd.concat([y] * len(values), ignore_index=True)
    return X_stale, np.concatenate([np.asarray(y)] * len(values))
