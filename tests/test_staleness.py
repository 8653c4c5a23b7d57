"""stale_rows / parse_lags: rows repeated with their times moved back, labels unchanged."""

import numpy as np
import pandas as pd
import pytest

from sktve.staleness import parse_lags, shift_times, stale_rows


@pytest.fixture
def X():
    return pd.DataFrame(
        {"id": [3, 1, 2], "t": pd.to_datetime(["2020-06-01", "2020-07-01", "2020-08-01"])},
        index=[10, 11, 12],
    )


def test_rows_repeat_lag_major_with_times_moved_back(X):
    before = X.copy()
    X_stale, y_stale = stale_rows(X, np.array([0, 1, 1]), ["0D", "30D", "365D"])
    pd.testing.assert_frame_equal(X, before)  # the caller's frame is untouched
    assert list(X_stale.index) == list(range(9))
    assert X_stale["id"].tolist() == [3, 1, 2] * 3
    for block, days in enumerate([0, 30, 365]):
        part = X_stale["t"].iloc[3 * block : 3 * block + 3].reset_index(drop=True)
        expected = X["t"].reset_index(drop=True) - pd.Timedelta(days=days)
        pd.testing.assert_series_equal(part, expected, check_names=False)
    assert y_stale.tolist() == [0, 1, 1] * 3


def test_series_labels_and_arrays_keep_their_kind(X):
    y = pd.Series([5.0, 6.0, 7.0], index=[10, 11, 12], name="target")
    _, y_stale = stale_rows(X, y, ["0D", "1D"])
    assert isinstance(y_stale, pd.Series) and y_stale.name == "target"
    assert y_stale.tolist() == [5.0, 6.0, 7.0] * 2
    array = np.array([[1, "2020-01-10"], [2, "2020-02-10"]], dtype=object)
    X_stale, none = stale_rows(array, None, ["7D"])
    assert none is None and X_stale.shape == (2, 2)
    assert X_stale[0, 1] == pd.Timestamp("2020-01-03") and X_stale[1, 0] == 2


def test_tz_aware_times_and_explicit_time_col(X):
    aware = X.assign(t=X["t"].dt.tz_localize("Europe/Paris"), other=X["t"])
    shifted = shift_times(aware, np.timedelta64(1, "D"), time_col="t")
    assert shifted["t"].dt.tz is not None
    assert (aware["t"] - shifted["t"]).eq(pd.Timedelta("1D")).all()
    assert shifted["other"].equals(aware["other"])  # only the named column moves
    with pytest.raises(ValueError, match="cannot tell which column"):
        shift_times(aware, np.timedelta64(1, "D"))
    with pytest.raises(ValueError, match="no column 'when'"):
        shift_times(X, np.timedelta64(1, "D"), time_col="when")


@pytest.mark.parametrize(
    "lags, error, match",
    [
        ("365D", TypeError, "list of time spans"),
        ([], ValueError, "empty"),
        ([0, 365], TypeError, "number 0"),
        (["-1D"], ValueError, "zero or positive"),
        (["0D", "24h", "1D"], ValueError, "same lag twice"),
        (["soon"], ValueError, "cannot read 'soon'"),
    ],
)
def test_bad_lags_say_what_to_give(lags, error, match):
    with pytest.raises(error, match=match):
        parse_lags(lags)


def test_lags_parse_to_nanoseconds():
    values = parse_lags(("0D", pd.Timedelta(hours=12), np.timedelta64(2, "D")))
    assert values.dtype == np.dtype("timedelta64[ns]")
    assert values.astype("int64").tolist() == [0, 12 * 3600 * 10**9, 2 * 86400 * 10**9]


def test_bad_inputs(X):
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        stale_rows(X, [1, 2], ["0D"])
    with pytest.raises(ValueError, match="X is empty"):
        stale_rows(X.iloc[:0], [], ["0D"])
    with pytest.raises(ValueError, match="shape"):
        stale_rows(np.zeros((2, 3)), None, ["0D"])
