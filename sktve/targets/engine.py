"""Executors for the generated SQL.

An engine has three methods: ``register(name, frame)`` exposes a pandas frame as a view,
``execute(statements)`` runs SQL statements in order and returns the result of the last
one as a pandas DataFrame, and ``close()``; its ``dialect`` attribute (``"duckdb"`` when
absent) tells the generator in :mod:`sktve.targets.sql` which SQL to write. The generator
never touches an engine. :class:`DuckDBEngine` runs in process; :class:`SparkEngine` runs
the same statements on Spark SQL through pyspark (an optional dependency, imported only
when a SparkEngine first needs its session).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ENGINES",
    "DuckDBEngine",
    "SparkEngine",
    "engine_dialect",
    "engine_for_call",
    "resolve_engine",
]

#: Engine names accepted wherever an ``engine`` parameter is.
ENGINES = ("duckdb", "spark")


class DuckDBEngine:
    """Run SQL statements with DuckDB, in process.

    Parameters
    ----------
    threads : int, optional
        DuckDB worker threads. Default: the thread budget of the enclosing estimator call
        (its ``n_jobs``), else every core.
    memory_limit : str, default="4GB"
        DuckDB's memory limit; larger intermediate results spill to disk.
    temp_directory : str, optional
        Where spilled data goes. Default: a folder under the system temp directory, so
        nothing is written into the caller's working directory.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve.targets import DuckDBEngine
    >>> engine = DuckDBEngine()
    >>> engine.register("t", pd.DataFrame({"x": [1, 2, 3]}))
    >>> int(engine.execute(["SELECT sum(x) AS s FROM t"])["s"].iloc[0])
    6
    >>> engine.close()
    """

    #: SQL dialect the generator writes for this engine.
    dialect = "duckdb"

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str = "4GB",
        temp_directory: str | None = None,
    ) -> None:
        import os
        import tempfile

        import duckdb

        from sktve._threads import current_thread_budget

        # None: the budget of the enclosing estimator call (its n_jobs), else every core.
        threads = current_thread_budget() if threads is None else int(threads)
        self.threads = threads
        self.memory_limit = memory_limit
        self._con = duckdb.connect(":memory:")
        self._con.execute(f"SET threads={int(threads)}")
        self._con.execute(f"SET memory_limit='{memory_limit}'")
        spill = temp_directory or os.path.join(tempfile.gettempdir(), "sktve-duckdb")
        self._con.execute(f"SET temp_directory='{spill}'")
        # Results are joined back by pair id, so row order inside a query does not matter.
        self._con.execute("SET preserve_insertion_order=false")
        self._registered: list[str] = []

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Expose ``frame`` as a view called ``name`` (no copy for numpy-backed columns)."""
        self._con.register(name, frame)
        self._registered.append(name)

    def execute(self, statements: Sequence[str] | str) -> pd.DataFrame | None:
        """Run statements in order; return the last one's result as a DataFrame."""
        if isinstance(statements, str):
            statements = [statements]
        result = None
        for sql in statements:
            result = self._con.execute(sql)
        if result is None or result.description is None:
            return None
        return result.df()

    def close(self) -> None:
        """Drop the registered views and close the connection."""
        for name in self._registered:
            try:
                self._con.unregister(name)
            except Exception:  # noqa: BLE001 - best effort on a closing connection
                pass
        self._registered = []
        self._con.close()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SparkEngine:
    """Run the generated SQL on Spark SQL (pyspark 4), as temporary views of a session.

    Parameters
    ----------
    spark : SparkSession, optional
        The session to run on. None (the default): the active session when the engine
        first needs one (``SparkSession.getActiveSession()``), else a local session built
        with ``master`` and ``config``. A session is never pickled or copied with the
        engine (nor with an estimator holding it): an unpickled engine resolves the active
        session again.
    master : str, default="local[*]"
        Master of the session built when there is no active one.
    config : dict, optional
        Extra Spark settings for that session (``{"spark.driver.memory": "8g"}``). The
        built session has the UI and console progress bars off,
        ``spark.sql.shuffle.partitions=8``, ``spark.sql.session.timeZone=UTC`` and Kryo
        serialization (``spark.serializer``) unless ``config`` says otherwise.

    Notes
    -----
    ``register`` copies a pandas frame into Spark (through Arrow; NaN and None become
    NULL, nullable integers stay integers, datetimes become ``TimestampType``) and
    ``execute`` brings the last result back as pandas (float64 for DOUBLE, int64 for
    BIGINT without NULLs, nullable ``Int64`` with them, strings as pandas gives Arrow
    strings, naive datetime64 in the session's time zone), as :class:`DuckDBEngine`
    returns them. The views live in the
    session (temporary views are per session): ``close`` drops the ones this engine
    registered and leaves the session running, since starting one takes seconds.

    Examples
    --------
    >>> from sktve.targets import SparkEngine, task_vectors
    >>> tv = task_vectors(db, "users", "2024-01-01", "30D", engine=SparkEngine())  # doctest: +SKIP
    """

    #: SQL dialect the generator writes for this engine.
    dialect = "spark"

    def __init__(
        self,
        spark: Any = None,
        *,
        master: str = "local[*]",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.spark = spark
        self.master = master
        self.config = config
        self._registered: list[str] = []

    # ------------------------------------------------------------------ session
    @property
    def session(self) -> Any:
        """The SparkSession: the one given, else the active one, else a new local one."""
        if self.spark is not None:
            return self.spark
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "SparkEngine needs pyspark: pip install 'sktve[spark]' (pyspark>=4.0, and "
                "a Java runtime)."
            ) from exc
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        settings = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "8",
            "spark.sql.session.timeZone": "UTC",
            # Rows checkpointed to disk are serialized: Java serialization of each row
            # (Spark's default) dominated reading them back.
            "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
            **{str(k): str(v) for k, v in (self.config or {}).items()},
        }
        builder = SparkSession.builder.master(self.master).appName("sktve")
        for key, value in settings.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

    def __getstate__(self) -> dict[str, Any]:
        # A session holds a JVM gateway: it is never pickled (nor deep-copied by clone).
        state = self.__dict__.copy()
        state["spark"] = None
        state["_registered"] = []
        return state

    def __deepcopy__(self, memo: dict) -> SparkEngine:
        # sklearn's clone deep-copies parameters: the copy shares the session given.
        copy = SparkEngine(self.spark, master=self.master, config=dict(self.config or {}))
        memo[id(self)] = copy
        return copy

    def __repr__(self) -> str:
        spark = "<session>" if self.spark is not None else None
        return f"SparkEngine(spark={spark}, master={self.master!r}, config={self.config!r})"

    # ------------------------------------------------------------------ interface
    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Expose ``frame`` as a temporary view ``name`` (replacing one of that name)."""
        session = self.session
        with warnings.catch_warnings():
            # pyspark 4.x warns that it does not fully support pandas 3; the conversion
            # here goes through Arrow and sktve's own dtype handling.
            warnings.simplefilter("ignore", FutureWarning)
            session.createDataFrame(_to_arrow(frame)).createOrReplaceTempView(name)
        if name not in self._registered:
            self._registered.append(name)

    def execute(self, statements: Sequence[str] | str) -> pd.DataFrame | None:
        """Run statements in order; return the last one's result as a DataFrame."""
        if isinstance(statements, str):
            statements = [statements]
        session = self.session
        result = None
        for sql in statements:
            result = session.sql(sql)
        if result is None or not result.columns:
            return None  # DDL (CREATE VIEW ...) has no result columns
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            table = result.toArrow()
        return _from_arrow(table, session.conf.get("spark.sql.session.timeZone"))

    def close(self) -> None:
        """Drop the temporary views this engine registered (the session keeps running)."""
        if self._registered:
            session = self.session
            for name in self._registered:
                try:
                    session.catalog.dropTempView(name)
                except Exception:  # noqa: BLE001 - best effort on a stopping session
                    pass
        self._registered = []

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _to_arrow(frame: pd.DataFrame):
    """A pandas frame as an Arrow table with types Spark maps as DuckDB reads them."""
    import pyarrow as pa

    arrays, names = [], []
    for name in frame.columns:
        values = frame[name]
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            values = values.astype(object)
            dtype = values.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            dtype = values.dtype
        if pd.api.types.is_datetime64_dtype(dtype):
            # Spark's timestamps hold microseconds (finer digits are dropped).
            array = pa.array(
                values.to_numpy().astype("datetime64[us]"), mask=values.isna().to_numpy()
            )
        elif pd.api.types.is_object_dtype(dtype):
            try:
                array = pa.array(values, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # Mixed Python objects: their text, as sktve's own views hold categories.
                present = values.notna().to_numpy()
                text = np.full(len(values), None, dtype=object)
                text[present] = values[present].astype(str).to_numpy(dtype=object)
                array = pa.array(text, type=pa.string())
            if pa.types.is_null(array.type):
                array = array.cast(pa.string())  # all-None column: a string column
        else:
            # NaN in float columns becomes NULL, as DuckDB reads pandas NaN.
            array = pa.array(values, from_pandas=True)
        if pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
        names.append(str(name))
    return pa.Table.from_arrays(arrays, names=names)


def _from_arrow(table, time_zone: str | None) -> pd.DataFrame:
    """Spark's Arrow result as pandas with the dtypes DuckDB's ``df()`` gives."""
    import pyarrow as pa

    columns = {}
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if pa.types.is_integer(kind) and column.null_count:
            values = pd.Series(column.to_pandas(types_mapper=pd.ArrowDtype)).astype("Int64")
        elif pa.types.is_boolean(kind) and column.null_count:
            values = pd.Series(column.to_pandas(types_mapper=pd.ArrowDtype)).astype("boolean")
        elif pa.types.is_timestamp(kind):
            values = pd.Series(column.to_pandas())
            if kind.tz is not None:
                # Spark's TimestampType is an instant shown in the session's time zone.
                values = values.dt.tz_convert(time_zone or "UTC").dt.tz_localize(None)
        else:
            values = pd.Series(column.to_pandas())
        columns[name] = values.reset_index(drop=True)
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def engine_dialect(engine: Any) -> str:
    """The SQL dialect of ``engine`` (``"duckdb"`` for None and engines that name none)."""
    return getattr(engine, "dialect", "duckdb") if engine is not None else "duckdb"


def resolve_engine(engine: Any, what: str = "engine") -> Any:
    """An engine object for an ``engine`` parameter (None stays None: the default DuckDB).

    ``"duckdb"`` is the default (None); ``"spark"`` is a new :class:`SparkEngine` on the
    active session; an object with ``register`` and ``execute`` is used as it is.
    """
    if engine is None or isinstance(engine, str) and engine == "duckdb":
        return None
    if isinstance(engine, str):
        if engine == "spark":
            return SparkEngine()
        raise ValueError(
            f"{what} must be one of {list(ENGINES)} or an engine object, got {engine!r}."
        )
    if not (hasattr(engine, "register") and hasattr(engine, "execute")):
        raise TypeError(
            f"{what} must be 'duckdb', 'spark' or an object with register() and execute() "
            f"(e.g. sktve.targets.SparkEngine()), got {type(engine).__name__}."
        )
    return engine


@contextlib.contextmanager
def engine_for_call(engine: Any, what: str = "engine") -> Iterator[Any]:
    """The engine object for one call's ``engine`` parameter (see :func:`resolve_engine`).

    One made here from a name is closed when the block ends; an object the caller gave is
    left open for the caller.
    """
    resolved = resolve_engine(engine, what)
    try:
        yield resolved
    finally:
        if resolved is not None and resolved is not engine:
            resolved.close()
