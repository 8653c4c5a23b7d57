"""Scaling raw task vectors into the dense targets the pre-training head predicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["TaskVectorScaler"]


def _is_mode(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        dtype.kind == "O"
        or isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype))
        or pd.api.types.is_string_dtype(dtype)
    )


class TaskVectorScaler:
    """Min-max scale task vectors, one-hot their modes and zero inactive rows.

    Fitted statistics are frozen: ``transform`` never refits, so targets of later cutoffs
    are scaled with the training cutoffs' statistics.

    Parameters
    ----------
    top_k : int, default=10
        Categories kept per mode column (most frequent on active rows; ties by value);
        other values share an ``"=other"`` column, missing modes are all zero.

    Attributes
    ----------
    columns_ : list of str
        Input columns used (aggregates, per-window flags), in order.
    kinds_ : list of str
        ``"numeric"``, ``"mode"`` or ``"flag"`` per column.
    min_, scale_ : ndarray
        Per numeric column, the minimum and ``max - min`` over active rows.
    categories_ : dict of str to list of str
        Kept categories per mode column.
    n_features_out_ : int
    feature_names_out_ : ndarray of str

    Notes
    -----
    Numeric values become ``(x - min) / (max - min)`` (0 when ``max == min`` or when no
    active row has a value), missing values become 0 after scaling, and every output of an
    inactive row (``no_activity == 1``) is 0 except the last column, the activity flag
    (1.0 for no activity).

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve.targets import TaskVectorScaler
    >>> frame = pd.DataFrame({"id": [0, 1, 2], "cutoff": pd.to_datetime(["2024-01-01"] * 3),
    ...                       "30D|orders|amount|sum": [2.0, 4.0, 0.0],
    ...                       "30D|orders|channel|mode": ["web", "app", None],
    ...                       "no_activity": [0, 0, 1]})
    >>> scaler = TaskVectorScaler(top_k=1).fit(frame)
    >>> for name in scaler.get_feature_names_out():
    ...     print(name)
    30D|orders|amount|sum
    30D|orders|channel|mode=app
    30D|orders|channel|mode=other
    no_activity
    >>> scaler.transform(frame)
    array([[0., 0., 1., 0.],
           [1., 1., 0., 0.],
           [0., 0., 0., 1.]], dtype=float32)
    """

    def __init__(self, top_k: int = 10) -> None:
        self.top_k = top_k

    def fit(self, frame: pd.DataFrame, y=None) -> TaskVectorScaler:
        """Learn min-max ranges and top categories on the active rows of ``frame``."""
        if not isinstance(self.top_k, (int, np.integer)) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {self.top_k!r}.")
        self._check_frame(frame)
        active = frame["no_activity"].to_numpy() == 0
        columns, kinds = [], []
        for col in frame.columns:
            if not isinstance(col, str) or "|" not in col:
                continue
            columns.append(col)
            if col.endswith("|no_activity"):
                kinds.append("flag")
            elif _is_mode(frame[col]):
                kinds.append("mode")
            else:
                kinds.append("numeric")
        numeric = [c for c, k in zip(columns, kinds) if k == "numeric"]
        values = frame.loc[active, numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            lo = np.nanmin(values, axis=0) if len(values) else np.full(len(numeric), np.nan)
            hi = np.nanmax(values, axis=0) if len(values) else np.full(len(numeric), np.nan)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        scale = np.where(np.isfinite(hi), hi, 0.0) - lo
        self.min_ = lo
        self.scale_ = np.where(scale > 0, scale, 0.0)
        self.categories_ = {}
        for col, kind in zip(columns, kinds):
            if kind != "mode":
                continue
            seen = frame.loc[active, col].dropna().astype(str)
            counts = seen.value_counts()
            order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            self.categories_[col] = [k for k, _ in order[: self.top_k]]
        self.columns_ = columns
        self.kinds_ = kinds
        names = []
        for col, kind in zip(columns, kinds):
            if kind == "mode":
                names.extend(f"{col}={c}" for c in self.categories_[col])
                names.append(f"{col}=other")
            else:
                names.append(col)
        names.append("no_activity")
        self.feature_names_out_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Scale ``frame`` with the fitted statistics; returns float32 (n_rows, n_features)."""
        if not hasattr(self, "columns_"):
            raise RuntimeError("this TaskVectorScaler is not fitted yet; call fit first.")
        self._check_frame(frame)
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ValueError(
                f"frame lacks {len(missing)} columns the scaler was fitted on (e.g. "
                f"{missing[:3]}); build it with the same task_vectors arguments."
            )
        n = len(frame)
        out = np.zeros((n, self.n_features_out_), dtype=np.float32)
        numeric = [c for c, k in zip(self.columns_, self.kinds_) if k == "numeric"]
        values = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(all="ignore"):
            scaled = np.where(self.scale_ > 0, (values - self.min_) / self.scale_, 0.0)
        scaled = np.where(np.isnan(values), 0.0, scaled)
        position = 0
        i_num = 0
        for col, kind in zip(self.columns_, self.kinds_):
            if kind == "numeric":
                out[:, position] = scaled[:, i_num]
                i_num += 1
                position += 1
            elif kind == "flag":
                out[:, position] = frame[col].to_numpy(dtype=np.float64, na_value=0.0)
                position += 1
            else:
                cats = self.categories_[col]
                raw = frame[col]
                present = raw.notna().to_numpy()
                # Missing modes are masked out (code -1); str() matches how fit saw them.
                codes = (
                    pd.Index(cats, dtype=object)
                    .get_indexer(raw.astype(str).where(present).to_numpy(dtype=object))
                    .astype(np.int64)
                )
                rows = np.flatnonzero(codes >= 0)
                out[rows, position + codes[rows]] = 1.0
                other = present & (codes < 0)
                out[other, position + len(cats)] = 1.0
                position += len(cats) + 1
        inactive = frame["no_activity"].to_numpy(dtype=np.float64) != 0
        out[inactive] = 0.0
        out[:, -1] = inactive.astype(np.float32)
        return out

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        """Map scaled task vectors (or predictions of them) back to the aggregates' units.

        Numeric columns become ``z * (max - min) + (1 - f) * min``, where ``f`` is the
        activity flag (the last column, clipped to [0, 1]): an active row (``f = 0``) gets
        back its value exactly, an inactive row (``f = 1``) gets 0, the count or sum over
        no rows. For a prediction, whose ``z`` and ``f`` are expectations, this is the
        expected value. Mode one-hot columns and activity flags are scores and stay as
        they are. What ``transform`` lost cannot come back: a missing value returns as
        ``min``, a column constant at fit as that constant.

        Parameters
        ----------
        scaled : array-like of shape (n_rows, n_outputs)

        Returns
        -------
        ndarray of float64, shape (n_rows, n_outputs), columns named by
        ``get_feature_names_out()``.
        """
        if not hasattr(self, "columns_"):
            raise RuntimeError("this TaskVectorScaler is not fitted yet; call fit first.")
        scaled = np.asarray(scaled, dtype=np.float64)
        if scaled.ndim != 2 or scaled.shape[1] != self.n_features_out_:
            raise ValueError(
                f"expected an array of shape (n_rows, {self.n_features_out_}) as transform "
                f"returns, got shape {scaled.shape}."
            )
        out = scaled.copy()
        numeric = self._numeric_positions()
        active = 1.0 - np.clip(scaled[:, -1:], 0.0, 1.0)
        out[:, numeric] = scaled[:, numeric] * self.scale_ + active * self.min_
        return out

    def _numeric_positions(self) -> np.ndarray:
        """Output positions of the numeric columns, in the order of ``min_`` and ``scale_``."""
        widths = [
            len(self.categories_[col]) + 1 if kind == "mode" else 1
            for col, kind in zip(self.columns_, self.kinds_)
        ]
        starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        return starts[np.asarray([k == "numeric" for k in self.kinds_], dtype=bool)]

    def fit_transform(self, frame: pd.DataFrame, y=None) -> np.ndarray:
        return self.fit(frame).transform(frame)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output names: aggregates, ``"<mode column>=<category>"``, and ``"no_activity"``."""
        if not hasattr(self, "feature_names_out_"):
            raise RuntimeError("this TaskVectorScaler is not fitted yet; call fit first.")
        return self.feature_names_out_.copy()

    @staticmethod
    def _check_frame(frame: pd.DataFrame) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected the DataFrame of task_vectors, got {type(frame).__name__}.")
        if "no_activity" not in frame.columns:
            raise ValueError("frame has no 'no_activity' column; pass the output of task_vectors.")


class _quiet_nan_warnings:
    """Silence numpy's all-NaN slice warnings (such columns are handled explicitly)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
