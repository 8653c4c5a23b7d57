"""AggregateFeatures: history aggregates over the window *before* each prediction time.

The same schema paths and SQL engine as the task vectors (:mod:`sktve.targets`), pointed
at the past: for a row (entity e, time t) and window w, the first timestamped table of
every path contributes its rows with time in ``(t - w, t]``, and no path ever reads a row
after t. A strong, cheap baseline and a complement to TVE embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sktve._as_of import clamp_times, parse_as_of
from sktve._entity_profile import entity_column_spec, entity_column_values, recency_values
from sktve._seasonal import parse_season, seasonal_counts, seasonal_tables
from sktve._threads import limit_threads, resolve_n_threads
from sktve._validation import parse_windows, raise_unknown_entities, resolve_task_table
from sktve.database import Database, check_same_schema, load_database, schema_of
from sktve.targets.engine import resolve_engine
from sktve.targets.paths import check_entity_table, enumerate_paths
from sktve.targets.vectors import DEFAULT_MAX_COLUMNS, compute_blocks, window_label

__all__ = ["AggregateFeatures"]


class AggregateFeatures(TransformerMixin, BaseEstimator):
    """Aggregates of each entity's history before each prediction time, as features.

    Parameters
    ----------
    database : Database, str, Path or relbench Dataset / Database
        The relational database: a :class:`~sktve.Database`, or anything
        :func:`sktve.load_database` accepts (a RelBench folder or name, a ``relbench``
        object), loaded at fit. ``transform`` reuses the fitted database while this
        parameter is unchanged; set it to another database with the same schema (e.g.
        with later rows, or empty tables) to transform against that one.
    entity_table : str
        Table whose primary key the task table's entity column holds.
    window : str, Timedelta or list of those, default="365D"
        History windows; one block of features per window (e.g. ``["30D", "365D"]``).
    entity_col, time_col : str, optional
        Columns of X; inferred when unambiguous.
    max_hops : {1, 2}, default=2
    include, exclude : str or list of str, optional
        Path / column name patterns (see :func:`sktve.targets.enumerate_paths`).
    lookback : str or Timedelta, optional
        Sibling-path look-back (None: each window's length).
    top_k : int, default=5
        Categories one-hot encoded per mode column (most frequent at fit).
    handle_unknown : {"error", "zeros"}, default="error"
        Rows naming entities absent from the entity table: raise, or output zeros.
    max_columns : int or None, default=500
        Cap on aggregate columns per window (see :func:`sktve.targets.task_vectors`).
    entity_columns : bool, default=True
        Add the entity table's own columns: numeric and boolean values, categorical ones
        one-hot (``top_k``), and for each datetime column its age in days at the row's
        time (``"<table>|<column>|age_days"``, e.g. a birth date becomes the age). A
        timestamped entity table's row counts only from its time on.
    recency : bool, default=True
        Add, for each timestamped table whose rows reference the entity directly, the
        days since the entity's latest and earliest such row at or before the row's time
        (``"<table>|days_since_last"``, ``"<table>|days_since_first"``; NaN before the
        first). Window-free, so they also reach further back than the longest window.
    seasonal : bool or str or Timedelta, default=False
        Add seasonal counts: for each window shorter than the season (``True``: a year;
        or a time span such as ``"7D"``) and each timestamped table, the mean number of
        rows in the stretch of calendar of the row's *coming* window, ``(t, t + w]``,
        one, two and three seasons earlier (the latest three whose windows end by
        ``min(t, as_of)``): all of the table's rows (``"<w>|<table>|seasonal_count_all"``,
        how busy the calendar usually is then) and, for tables referencing the entity,
        the entity's own (``"<w>|<table>|seasonal_count"``). NaN before a whole season of
        history. The row's own date places the windows, also for rows after ``as_of``,
        whose other features are those of the cut; only rows at or before
        ``min(t, as_of)`` are read.
    n_jobs : int, optional
        CPU threads (scikit-learn's convention: None means 1, -1 all available cores);
        see :class:`~sktve.TVEPretrainer`.
    as_of : str, Timestamp, datetime or datetime64, optional
        A declared data cut, e.g. the time the database was snapshotted, or RelBench's
        test timestamp when the database is cut there (rel-f1: 2010-01-01, while the
        test rows run to 2013). A row of X later than ``as_of`` is featurised as of
        ``as_of``: its windows end at ``min(t, as_of)``, so a test row after the cut
        gets the features of the cut rather than windows over a past the database does
        not hold. It applies to fit too (paths and kept columns are frozen as of
        ``min(max(X.time), as_of)``). Timezone-aware values are converted to naive UTC,
        as the database's times are. None (the default): every row at its own time.
        See :ref:`time_correctness`.
    engine : None, "duckdb", "spark" or engine object, default=None
        Where the aggregates' SQL runs. None (or ``"duckdb"``): a numpy range engine for
        most paths and in-process DuckDB for the rest; ``"spark"`` (a
        :class:`~sktve.targets.SparkEngine` on the active Spark session) or an engine
        object: every path as SQL on that engine (see :ref:`scaling_out`). Results agree
        to floating-point rounding. Stored as given; resolved at each fit and transform.

    Attributes
    ----------
    database_ : Database
        The database fitted on.
    as_of_ : Timestamp or None
        The parsed cut at fit.
    paths_ : list of PathSpec
        Paths and columns, frozen at fit (decided from rows up to the last fit time,
        or ``as_of`` when earlier).
    feature_names_out_ : ndarray of str
        Kept features: columns that are all-NaN or constant on the fit rows are dropped
        (HistGradientBoosting fails on all-NaN columns), modes become one-hot columns
        ``"<name>=<category>"`` of categories seen at fit.
    dropped_constant_ : list of str
        Candidate features dropped at fit for being all-NaN or constant.
    dropped_by_cap_ : list of str
        Aggregates left out by ``max_columns``.
    n_features_in_ : int

    Notes
    -----
    ``transform`` returns float32 with NaN where an aggregate is undefined (e.g. the mean
    over no rows); counts and sums over no rows are 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import load_database
    >>> from sktve.aggregates import AggregateFeatures
    >>> db = load_database(
    ...     {"users": pd.DataFrame({"user_id": [0, 1]}),
    ...      "orders": pd.DataFrame({"order_id": [0, 1, 2], "user_id": [0, 0, 1],
    ...                              "ts": pd.to_datetime(["2024-01-02", "2024-01-05",
    ...                                                    "2024-01-03"]),
    ...                              "amount": [3.0, 5.0, 7.0]})},
    ...     schema={"users": {"pkey": "user_id"},
    ...             "orders": {"pkey": "order_id", "time_col": "ts",
    ...                        "fkeys": {"user_id": "users"}}})
    >>> X = pd.DataFrame({"user_id": [0, 1], "ts": pd.to_datetime(["2024-01-06"] * 2)})
    >>> agg = AggregateFeatures(database=db, entity_table="users", window="30D",
    ...                         include="orders|amount")
    >>> agg.fit_transform(X)[:, :2]
    array([[4., 3.],
           [7., 7.]], dtype=float32)
    >>> agg.get_feature_names_out()[:2].tolist()
    ['30D|orders|amount|mean', '30D|orders|amount|min']
    """

    def __init__(
        self,
        *,
        database: Database | None = None,
        entity_table: str | None = None,
        window: Any = "365D",
        entity_col: str | None = None,
        time_col: str | None = None,
        max_hops: int = 2,
        include: Any = None,
        exclude: Any = None,
        lookback: Any = None,
        top_k: int = 5,
        handle_unknown: str = "error",
        max_columns: int | None = DEFAULT_MAX_COLUMNS,
        entity_columns: bool = True,
        recency: bool = True,
        seasonal: Any = False,
        n_jobs: int | None = None,
        as_of: Any = None,
        engine: Any = None,
    ) -> None:
        self.database = database
        self.entity_table = entity_table
        self.window = window
        self.entity_col = entity_col
        self.time_col = time_col
        self.max_hops = max_hops
        self.include = include
        self.exclude = exclude
        self.lookback = lookback
        self.top_k = top_k
        self.handle_unknown = handle_unknown
        self.max_columns = max_columns
        self.entity_columns = entity_columns
        self.recency = recency
        self.seasonal = seasonal
        self.n_jobs = n_jobs
        self.as_of = as_of
        self.engine = engine

    # ------------------------------------------------------------------ helpers
    def _validate(self) -> None:
        if self.database is None:
            raise ValueError(
                "AggregateFeatures needs a database: AggregateFeatures(database="
                "load_database(...), entity_table=...), or a RelBench folder or name."
            )
        if self.handle_unknown not in ("error", "zeros"):
            raise ValueError(
                f"handle_unknown must be 'error' or 'zeros', got {self.handle_unknown!r}."
            )
        if not isinstance(self.top_k, (int, np.integer)) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {self.top_k!r}.")
        resolve_engine(self.engine, "engine")  # raises on unknown names and objects
        parse_season(self.seasonal)  # raises on anything but a switch or a time span

    def _current_database(self) -> Database:
        # As TVEPretrainer: the fitted database while the parameter is the one given at
        # fit (a path is not reloaded), else the new one, which must have the same schema.
        unchanged = (self.database_, getattr(self, "_fitted_database_param", None))
        if any(self.database is d for d in unchanged):
            database = self.database_
        else:
            database = load_database(self.database)
        check_same_schema(self._fitted_schema, database, "AggregateFeatures")
        used = {(path.last_table, c.name) for path in self.paths_ for c in path.columns}
        used |= {(self.entity_table, col) for col, _ in self._entity_spec}
        missing = sorted(f"{t}.{c}" for t, c in used if c not in database.table(t).columns)
        if missing:
            raise ValueError(
                f"the database lacks columns AggregateFeatures was fitted on: {missing}. "
                "Refit on this database, or give one with the same columns."
            )
        return database

    def _rows(self, X: Any, database: Database):
        rows = resolve_task_table(X, database, self.entity_table, self.entity_col, self.time_col)
        if self.handle_unknown == "error":
            raise_unknown_entities(rows, self.entity_table)
        return rows

    def _raw(self, rows, database: Database) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Raw candidate columns (numeric float64 and mode objects) for the rows."""
        known = ~rows.unknown
        keys = rows.keys[known]
        # Rows after the declared cut are featurised as of the cut (windows end there).
        times = clamp_times(rows.times, self.as_of_).view(np.int64)[known]
        pairs = pd.DataFrame({"e": keys, "c": times, "p": rows.positions[known]})
        inverse = pairs.groupby(["e", "c"], sort=False).ngroup().to_numpy()
        unique = pairs.drop_duplicates(["e", "c"])
        columns: dict[str, np.ndarray] = {}
        if len(unique):
            blocks = compute_blocks(
                database,
                self.entity_table,
                unique["e"].to_numpy(),
                unique["c"].to_numpy(dtype=np.int64),
                self._windows,
                paths=self.paths_,
                max_columns=self.max_columns,
                direction="past",
                engine=self.engine,  # a name makes an engine there, closed after
                horizon_ns=int(times.max()),
            )
            self._dropped_by_cap = blocks.dropped
            matrix = blocks.matrix[:, inverse]
            for i, name in enumerate(blocks.numeric_names):
                columns[name] = matrix[i]
            for name, values in blocks.modes.items():
                columns[name] = values[inverse]
            labels = [window_label(w) for w in self._windows]
            if len(labels) > 1:
                for label in labels:
                    columns[f"{label}|no_activity"] = blocks.block_inactive[label][inverse].astype(
                        np.float64
                    )
            largest = labels[int(np.argmax([w.value for w in self._windows]))]
            columns["no_activity"] = blocks.block_inactive[largest][inverse].astype(np.float64)
            positions = unique["p"].to_numpy(dtype=np.int64)
            unique_times = unique["c"].to_numpy(dtype=np.int64)
            extra = {}
            if self._entity_spec:
                extra |= entity_column_values(
                    database, self.entity_table, self._entity_spec, positions, unique_times
                )
            if self.recency:
                extra |= recency_values(database, self.entity_table, positions, unique_times)
            for name, values in extra.items():
                columns[name] = values[inverse]
            if getattr(self, "_season", None) is not None:  # (fitted before the option)
                # Per row, not per (entity, clamped time): a row's own date places its
                # windows even after the cut; what they read stops at the clamped time.
                columns |= seasonal_counts(
                    database,
                    self.entity_table,
                    self._seasonal_tables,
                    rows.positions[known].astype(np.int64),
                    rows.times.view(np.int64)[known],
                    times,
                    self._windows,
                    self._season,
                    labels,
                )
        return columns, known

    def _encode(self, columns: dict[str, np.ndarray], known: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros((n, len(self.feature_names_out_)), dtype=np.float32)
        for j, (source, category) in enumerate(self._spec):
            if source not in columns:
                continue
            values = columns[source]
            if category is None:
                out[known, j] = values
            else:
                out[known, j] = (values == category).astype(np.float32)
        return out

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any = None) -> AggregateFeatures:
        """Freeze paths, mode categories and the kept columns from the rows of X."""
        self._fit(X)
        return self

    def _fit(self, X: Any) -> np.ndarray:
        with limit_threads(resolve_n_threads(self.n_jobs)):
            return self._fit_in_budget(X)

    def _fit_in_budget(self, X: Any) -> np.ndarray:
        self._validate()
        database = load_database(self.database)
        check_entity_table(database, self.entity_table)
        self._windows = parse_windows(self.window)
        self.as_of_ = parse_as_of(self.as_of)
        rows = self._rows(X, database)
        as_of = pd.Timestamp(clamp_times(rows.times, self.as_of_).max())
        self.paths_ = enumerate_paths(
            database,
            self.entity_table,
            max_hops=self.max_hops,
            include=self.include,
            exclude=self.exclude,
            lookback=self.lookback,
            as_of=as_of,
        )
        self._entity_spec = (
            entity_column_spec(database, self.entity_table, as_of) if self.entity_columns else []
        )
        self._season = parse_season(self.seasonal)
        self._seasonal_tables = seasonal_tables(database, self.entity_table)
        self._dropped_by_cap = []
        columns, known = self._raw(rows, database)
        spec: list[tuple[str, Any]] = []
        names: list[str] = []
        dropped: list[str] = []
        for name, values in columns.items():
            if values.dtype == object:
                seen = pd.Series(values).dropna().astype(str).value_counts()
                ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top_k]
                for category, _ in ranked:
                    spec.append((name, category))
                    names.append(f"{name}={category}")
                continue
            series = pd.Series(values)
            if series.isna().all() or series.nunique(dropna=False) <= 1:
                dropped.append(name)
                continue
            spec.append((name, None))
            names.append(name)
        self._spec = spec
        self.database_ = database
        # The parameter as given (a path, say): transform reuses database_ while it is unchanged.
        self._fitted_database_param = self.database
        self._fitted_schema = schema_of(database)
        self.feature_names_out_ = np.asarray(names, dtype=object)
        self.dropped_constant_ = dropped
        self.dropped_by_cap_ = list(self._dropped_by_cap)
        self.n_features_in_ = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else 2
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self._encode(columns, known, len(rows.keys))

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the features of X (computed once)."""
        return self._fit(X)

    def transform(self, X: Any) -> np.ndarray:
        """Features of each (entity, time) row of X: float32 (n_rows, n_features)."""
        check_is_fitted(self, "feature_names_out_")
        self._validate()
        with limit_threads(resolve_n_threads(self.n_jobs)):
            database = self._current_database()
            rows = self._rows(X, database)
            columns, known = self._raw(rows, database)
            return self._encode(columns, known, len(rows.keys))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features (``"<window>|<path>|<column>|<aggregate>"``)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
