"""Databases that Spark reads where they lie: task vectors whose tables never pass through pandas.

:class:`SparkDatabase` names the tables of a relational database (the parquet files of a
RelBench 3 folder, or tables and DataFrames of the user's Spark session) with the schema
:class:`sktve.Database` takes, and reads nothing when it is made.
:func:`~sktve.targets.task_vectors` and :func:`~sktve.targets.write_task_vectors` given
one run on a :class:`~sktve.targets.SparkEngine`'s session and build everything in Spark
SQL, as temporary views dropped at the end of the call:

- ``__tve_cut_<table>``: the source rows up to the cut (``upto_test_timestamp``), with
  the time as BIGINT nanoseconds in ``__t``;
- ``__tve_<table>``: the views the generator in :mod:`sktve.targets.sql` reads (primary
  key as ``__pkey``, foreign keys with values that reference no row set to NULL as
  :class:`sktve.Database` does, aggregated columns as DOUBLE or STRING, rows in the
  reach of the cutoffs only);
- ``__cutoffs`` (the distinct cutoffs, from the driver) and ``__pairs``: the active
  (entity, cutoff) pairs computed in SQL from each entity's first first-hop row, or the
  pairs given; persisted for the call;
- per path and window the generated query (Spark dialect), and the activity flags;
  these are joined by ``pair_id`` into one wide DataFrame.

What comes to the driver: the manifest, per aggregated table the rows that decide its
column kinds (at most ``sktve.targets.paths.PROFILE_ROWS``, the same rows
:func:`~sktve.targets.paths.profile_table` takes from a pandas database), the database's
time range, the cutoffs (and the given pairs), and the result when
:func:`~sktve.targets.task_vectors` returns it as pandas;
:func:`~sktve.targets.write_task_vectors` writes it with Spark.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sktve.database import SchemaAccess, TableSchema, parse_schema, unknown_keys_error
from sktve.targets.engine import _to_arrow
from sktve.targets.paths import (
    PROFILE_ROWS,
    AggregateSpec,
    Hop,
    PathSpec,
    direct_edges,
    profile_positions,
)
from sktve.targets.sql import first_time_sql, path_query_sql, quote

# Each materialised step of a Spark call is logged here at INFO as it finishes: on a large
# database the steps take minutes each, and the log is where a long or stopped run shows
# which one (``logging.getLogger("sktve.targets.spark").setLevel(logging.INFO)``).
logger = logging.getLogger("sktve.targets.spark")

__all__ = ["SparkDatabase"]

#: Rows per bucket when the profile sample ranks rows by their position.
_POSITION_BUCKET = 1 << 20


def _q(name: str) -> str:
    return quote(name, "spark")


def _cut_view(table: str) -> str:
    return _q(f"__tve_cut_{table}")


def _time_ns_sql(column: str, data_type: Any, where: str) -> str:
    """SQL for a time column as BIGINT nanoseconds since the epoch, read as UTC."""
    from pyspark.sql import types as T

    c = _q(column)
    if isinstance(data_type, T.TimestampNTZType):
        # The wall-clock fields read in UTC: exact whatever the session's time zone.
        return (
            f"unix_micros(make_timestamp(year({c}), month({c}), day({c}), hour({c}), "
            f"minute({c}), extract(SECOND FROM {c}), 'UTC')) * 1000"
        )
    if isinstance(data_type, T.TimestampType):
        return f"unix_micros({c}) * 1000"  # an instant: its UTC time, as pandas converts
    if isinstance(data_type, T.DateType):
        return f"CAST(unix_date({c}) AS BIGINT) * 86400000000000"
    raise ValueError(
        f"time column {where} has Spark type {data_type.simpleString()}; a SparkDatabase "
        "reads timestamps and dates only. Convert it first (e.g. to_timestamp(col) in the "
        "DataFrame you pass)."
    )


def _key_kind(data_type: Any) -> str | None:
    from pyspark.sql import types as T

    if isinstance(data_type, T.StringType):
        return "string"
    if isinstance(data_type, T.NumericType):
        return "number"
    return None


def _array_sql(columns: Sequence[str], kind: str) -> str:
    """An ARRAY<kind> of the columns (an empty one of that type when there are none)."""
    if not columns:
        return f"CAST(array() AS ARRAY<{kind}>)"
    return "array(" + ", ".join(f"CAST({c} AS {kind})" for c in columns) + ")"


class SparkDatabase(SchemaAccess):
    """A relational database read by Spark where it lies, for task vectors at scale.

    The Spark counterpart of :class:`sktve.Database` for
    :func:`~sktve.targets.task_vectors` and :func:`~sktve.targets.write_task_vectors`:
    the same schema (primary keys, time columns, foreign keys), but the tables stay in
    Spark. Making one reads no data (a folder's ``manifest.yaml`` only); the tables are
    read when a call needs them, in the session of that call's
    :class:`~sktve.targets.SparkEngine`.

    Parameters
    ----------
    source : str, Path or dict
        - a local RelBench 3 folder (``manifest.yaml`` and ``db/<table>.parquet``): each
          table is its parquet file;
        - a dict ``{table: DataFrame or table name}`` of Spark DataFrames, or names of
          tables and views of the session, with ``schema``.
    schema : dict, optional
        Required with a dict: ``{table: {"pkey": col or None, "time_col": col or None,
        "fkeys": {fkey_col: referenced_table}}}``, as for :func:`sktve.load_database`.
    upto_test_timestamp : bool, default=True
        For a folder, keep only rows up to the manifest's test timestamp (as
        :func:`sktve.load_database` does): the cut is a filter in every query.

    Attributes
    ----------
    table_names : list of str
    schema : dict of str to TableSchema
        Also read through the lookups of :class:`sktve.database.SchemaAccess` (``pkey``,
        ``fkeys``, ``time_col``, the ``foreign_keys`` edges).
    val_timestamp, test_timestamp : Timestamp or None
        From the manifest (None for a dict).
    min_timestamp, max_timestamp : Timestamp
        Computed in Spark on first use, then kept.

    Notes
    -----
    What matches :class:`sktve.Database`: times become naive UTC nanoseconds (Spark
    ``TIMESTAMP`` as its UTC instant, ``TIMESTAMP_NTZ`` as its wall clock, ``DATE`` at
    midnight); foreign key values that reference no row count as NULL; NaN in numeric
    columns counts as missing; column kinds are decided on the same rows (those up to the
    horizon, at most ``sktve.targets.paths.PROFILE_ROWS`` equally spaced by
    position). Positions are the row order of a parquet file (``_metadata.row_index``),
    and for DataFrames and session tables their partition order
    (``monotonically_increasing_id``), which is the pandas order when the DataFrame was
    made from that frame or read from one file. What does not: keys are not checked
    (nulls, duplicates), rows with a NULL time are left out instead of refused, time
    columns of other types (strings, numbers) and foreign keys whose type differs from
    the key they reference (strings against numbers) raise instead of being converted.

    Parquet timestamps in nanoseconds (pandas writes them) are read as their BIGINT
    nanoseconds, which Spark 4 needs ``spark.sql.legacy.parquet.nanosAsLong=true`` for:
    reading such a file sets it on the session.

    A SparkDatabase pickles without its session and keeps folder paths and table names;
    DataFrames are not pickled (an unpickled one made from DataFrames must be made
    again). Each call resolves its session: the engine's, else the DataFrames', else the
    active one.

    Examples
    --------
    >>> from pyspark.sql import SparkSession  # doctest: +SKIP
    >>> from sktve.targets import SparkDatabase, SparkEngine, task_vectors
    >>> spark = SparkSession.builder.master("local[2]").getOrCreate()  # doctest: +SKIP
    >>> db = SparkDatabase("../shared/data/rel-f1")  # doctest: +SKIP
    >>> db.pkey("drivers")  # doctest: +SKIP
    'driverId'
    >>> tv = task_vectors(db, "drivers", ["2005-01-01"], "90D",
    ...                   engine=SparkEngine(spark))  # doctest: +SKIP
    """

    def __init__(
        self,
        source: Any,
        schema: Mapping[str, Any] | None = None,
        *,
        upto_test_timestamp: bool = True,
    ) -> None:
        self.val_timestamp: pd.Timestamp | None = None
        self.test_timestamp: pd.Timestamp | None = None
        self.upto_test_timestamp = bool(upto_test_timestamp)
        if isinstance(source, Mapping):
            if schema is None:
                raise ValueError(
                    "a dict of Spark tables needs a schema: schema={table: {'pkey': ..., "
                    "'time_col': ..., 'fkeys': {col: referenced_table}}}."
                )
            for name, table in source.items():
                if not isinstance(table, str) and not hasattr(table, "createOrReplaceTempView"):
                    raise TypeError(
                        f"table {name!r} is a {type(table).__name__}; give a Spark DataFrame "
                        "or the name of a table or view of the session (for pandas frames "
                        "use sktve.load_database)."
                    )
            self._kind, self._folder = "tables", None
            self._sources: dict[str, Any] = dict(source)
            self._schema = parse_schema(list(source), schema)
        elif isinstance(source, (str, Path)):
            if schema is not None:
                raise ValueError("schema is only used with a dict of tables.")
            self._kind, self._folder = "folder", Path(source).expanduser().resolve()
            self._sources, self._schema = self._read_manifest(self._folder)
        else:
            raise TypeError(
                f"cannot make a SparkDatabase from a {type(source).__name__}: give a RelBench "
                "3 folder or a dict of Spark DataFrames or table names with a schema."
            )
        cut = self.test_timestamp if self._kind == "folder" and upto_test_timestamp else None
        self._cut_ns = None if cut is None else int(cut.value)
        self._detached: list[str] = []
        self._session: Any = None
        self._frames: dict[str, Any] = {}
        self._ranges: dict[str, tuple[int, int] | None] | None = None
        self._nanos: dict[str, list[str]] = {}  # nanosecond timestamps read as BIGINT

    def _read_manifest(self, folder: Path) -> tuple[dict[str, str], dict[str, TableSchema]]:
        import yaml

        if not folder.exists():
            raise FileNotFoundError(
                f"no dataset folder at {str(folder)!r}; give an existing RelBench 3 folder "
                "(with manifest.yaml and db/<table>.parquet)."
            )
        manifest = folder / "manifest.yaml"
        if not manifest.exists():
            raise ValueError(
                f"{str(folder)!r} is not a RelBench 3 dataset folder: it has no manifest.yaml. "
                "Pass a folder with manifest.yaml and db/*.parquet, or a dict of Spark "
                "DataFrames with a schema."
            )
        with open(manifest) as handle:
            content = yaml.safe_load(handle) or {}
        tables = content.get("tables") or {}
        if not tables:
            raise ValueError(f"{manifest} lists no tables.")
        for key in ("val_timestamp", "test_timestamp"):
            if content.get(key) is not None:
                setattr(self, key, pd.Timestamp(content[key]))
        files = {name: folder / "db" / f"{name}.parquet" for name in tables}
        missing = sorted(name for name, path in files.items() if not path.exists())
        if missing:
            raise FileNotFoundError(
                f"{manifest} lists tables {missing} whose parquet files are not in "
                f"{folder / 'db'} (expected db/<table>.parquet)."
            )
        schema = {name: spec or {} for name, spec in tables.items()}
        return {name: str(path) for name, path in files.items()}, parse_schema(list(tables), schema)

    # ------------------------------------------------------------------ schema
    @property
    def table_names(self) -> list[str]:
        return list(self._schema)

    @property
    def schema(self) -> dict[str, TableSchema]:
        return dict(self._schema)

    def __contains__(self, table: str) -> bool:
        return table in self._schema

    def _require_table(self, table: str) -> None:
        if table not in self._schema:
            raise KeyError(
                f"unknown table {table!r}; the database has tables {sorted(self._schema)}."
            )

    # ------------------------------------------------------------------ session
    @contextlib.contextmanager
    def bound(self, session: Any) -> Iterator[SparkDatabase]:
        """Read the tables in ``session`` inside the block (the call's session)."""
        previous, frames = self._session, self._frames
        self._session, self._frames = session, {}
        try:
            yield self
        finally:
            self._session, self._frames = previous, frames

    @property
    def session(self) -> Any:
        """The session tables are read in: the call's, the DataFrames', or the active one."""
        if self._session is not None:
            return self._session
        for table in self._sources.values():
            if table is not None and not isinstance(table, str):
                return table.sparkSession
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "SparkDatabase needs pyspark: pip install 'sktve[spark]' (pyspark>=4.0, and "
                "a Java runtime)."
            ) from exc
        active = SparkSession.getActiveSession()
        if active is None:
            raise RuntimeError(
                "no Spark session to read the SparkDatabase in: pass "
                "engine=SparkEngine(spark) to the call, or start a session first."
            )
        return active

    def frame(self, table: str) -> Any:
        """The table's source rows as a Spark DataFrame (no cut, no conversion)."""
        self._require_table(table)
        if table in self._frames:
            return self._frames[table]
        session, source = self.session, self._sources[table]
        if table in self._detached:
            raise RuntimeError(
                f"table {table!r} of this SparkDatabase was a Spark DataFrame, which is not "
                "pickled with it: make the SparkDatabase again from the DataFrames (or name "
                "tables of the session, which are kept)."
            )
        if self._kind == "folder":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._nanos[table] = [
                field.name
                for field in pq.read_schema(source)
                if pa.types.is_timestamp(field.type) and field.type.unit == "ns"
            ]
            if self._nanos[table]:
                # Spark reads nanosecond timestamps only as BIGINT (their exact ns).
                session.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
            frame = session.read.parquet(source)
        elif isinstance(source, str):
            try:
                frame = session.table(source)
            except Exception as err:  # AnalysisException: no such table or view
                raise ValueError(
                    f"table {table!r} of the SparkDatabase names {source!r}, which the Spark "
                    f"session has no table or view of ({type(err).__name__})."
                ) from None
        else:
            frame = source
            if not frame.sparkSession._jsparkSession.equals(session._jsparkSession):
                raise ValueError(
                    f"table {table!r} is a DataFrame of another Spark session than the "
                    "engine's: give SparkEngine the session the DataFrames belong to."
                )
        schema = self._schema[table]
        declared = [schema.pkey, schema.time_col, *schema.fkeys]
        absent = [col for col in declared if col is not None and col not in frame.columns]
        if absent:
            raise ValueError(
                f"table {table!r} has no columns {absent} (declared in its schema); its "
                f"columns are {list(frame.columns)}."
            )
        self._frames[table] = frame
        return frame

    def _time_sql(self, table: str) -> str | None:
        col = self.time_col(table)
        if col is None:
            return None
        if col in self._nanos.get(table, ()):
            return _q(col)  # nanoseconds already
        return _time_ns_sql(col, self.frame(table).schema[col].dataType, f"{table}.{col}")

    def cut_frame(self, table: str) -> Any:
        """The table's rows up to the cut, with ``__t`` (BIGINT ns) for a timestamped table."""
        frame = self.frame(table)
        time = self._time_sql(table)
        if time is None:
            return frame
        frame = frame.selectExpr("*", f"{time} AS __t")
        return frame if self._cut_ns is None else frame.where(f"__t <= {self._cut_ns}")

    # ------------------------------------------------------------------ time range
    def _time_ranges(self) -> dict[str, tuple[int, int] | None]:
        if self._ranges is None:
            from functools import reduce

            from pyspark.sql import functions as F

            temporal = [t for t in self.table_names if self.is_temporal(t)]
            if not temporal:
                raise ValueError(
                    "the database has no time columns, so no timestamps: declare the "
                    "'time_col' of the tables whose rows happen over time."
                )
            parts = [
                self.cut_frame(t).agg(
                    F.lit(t).alias("t"), F.min("__t").alias("lo"), F.max("__t").alias("hi")
                )
                for t in temporal
            ]
            rows = reduce(lambda a, b: a.unionByName(b), parts).collect()
            self._ranges = {
                r["t"]: None if r["lo"] is None else (int(r["lo"]), int(r["hi"])) for r in rows
            }
        return self._ranges

    def time_range(self, table: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """(min, max) of a table's times up to the cut (NaT for an empty table), None if static."""
        if not self.is_temporal(table):
            return None
        found = self._time_ranges().get(table)
        if found is None:
            return pd.NaT, pd.NaT
        return pd.Timestamp(found[0]), pd.Timestamp(found[1])

    def _bounds(self) -> list[tuple[int, int]]:
        bounds = [r for r in self._time_ranges().values() if r is not None]
        if not bounds:
            raise ValueError(
                "every timestamped table of the database is empty, so there are no timestamps yet."
            )
        return bounds

    @property
    def min_timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(min(lo for lo, _ in self._bounds()))

    @property
    def max_timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(max(hi for _, hi in self._bounds()))

    # ------------------------------------------------------------------ driver samples
    def profile_sample(self, table: str, as_of: Any) -> pd.DataFrame:
        """The rows that decide the table's column kinds, as pandas (see profile_table).

        Rows up to the cut and ``as_of``, then at most PROFILE_ROWS of them equally spaced
        by position: positions are ranked in buckets in Spark, and only the sampled rows
        come to the driver.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        frame = self.frame(table)
        columns = list(frame.columns)
        position = (
            F.col("_metadata.row_index")
            if self._kind == "folder"
            else F.monotonically_increasing_id()
        )
        names = [F.col(_q(c)) for c in columns]
        rows = frame.select(*names, position.alias("__pos"))
        time = self._time_sql(table)
        bounds = [self._cut_ns, None if as_of is None else int(pd.Timestamp(as_of).value)]
        bounds = [b for b in bounds if b is not None]
        if time is not None and bounds:
            rows = rows.where(f"{time} <= {min(bounds)}")
        sample = rows.orderBy("__pos").limit(PROFILE_ROWS + 1).select(*names).toArrow()
        if sample.num_rows > PROFILE_ROWS:
            # More rows than the sample: rank positions within buckets (in parallel) and
            # fetch the rows at the sampled ranks only.
            rows = rows.withColumn("__b", F.expr(f"__pos DIV {_POSITION_BUCKET}"))
            counts = rows.groupBy("__b").count().orderBy("__b").toPandas()
            positions = profile_positions(int(counts["count"].sum()))
            ends = np.cumsum(counts["count"].to_numpy(dtype=np.int64))
            bucket = np.searchsorted(ends, positions, side="right")
            wanted = pd.DataFrame(
                {
                    "__b": counts["__b"].to_numpy(dtype=np.int64)[bucket],
                    "__o": positions - (ends - counts["count"].to_numpy(dtype=np.int64))[bucket],
                }
            )
            rank = F.row_number().over(Window.partitionBy("__b").orderBy("__pos")) - 1
            rows = rows.withColumn("__o", rank).join(
                F.broadcast(self.session.createDataFrame(_to_arrow(wanted))), ["__b", "__o"]
            )
            sample = rows.orderBy("__pos").select(*names).toArrow()
        out = sample.to_pandas()
        for col in self._nanos.get(table, ()):
            out[col] = pd.to_datetime(out[col], unit="ns")  # a time, as pandas reads it
        for col in out.columns:
            if isinstance(out[col].dtype, pd.StringDtype):
                out[col] = out[col].astype(object)  # as Database normalises strings
        return out

    def check_keys(self, table: str, keys: Any) -> None:
        """Raise listing ids that are not keys of ``table`` (checked in Spark)."""
        from pyspark.sql import functions as F

        given = self.session.createDataFrame(_to_arrow(pd.DataFrame({"__k": pd.unique(keys)})))
        known = self.cut_frame(table).select(F.col(_q(self.pkey(table))).alias("__k"))
        unknown = given.join(known, "__k", "left_anti")
        n_unknown = unknown.count()
        if n_unknown:
            examples = [row["__k"] for row in unknown.limit(5).collect()]
            raise unknown_keys_error(table, n_unknown, examples)

    # ------------------------------------------------------------------ views
    def view_sql(
        self,
        table: str,
        kinds: Mapping[str, str],
        horizon_ns: int | None = None,
        floor_ns: int | None = None,
        fkeys: Sequence[str] | None = None,
    ) -> str:
        """SQL of the view ``__tve_<table>`` over ``__tve_cut_<table>`` (see module doc).

        ``kinds`` maps the aggregated columns to their kind (numeric and boolean as
        DOUBLE with NaN as NULL, categorical as STRING); ``fkeys`` (default: all) the
        foreign keys kept, each set to NULL where it references no row (the referenced
        table's ``__tve_cut_`` view must exist); rows with ``floor < __t <= horizon``.
        """
        schema = self._schema[table]
        frame = self.frame(table)
        select, joins = [], []
        if schema.pkey is not None:
            select.append(f"s.{_q(schema.pkey)} AS __pkey")
        for i, col in enumerate(schema.fkeys if fkeys is None else fkeys):
            target = schema.fkeys[col]
            pkey = self.pkey(target)
            kinds_here = (
                _key_kind(frame.schema[col].dataType),
                _key_kind(self.frame(target).schema[pkey].dataType),
            )
            if None not in kinds_here and kinds_here[0] != kinds_here[1]:
                raise ValueError(
                    f"foreign key {table}.{col} holds {kinds_here[0]}s and primary key "
                    f"{target}.{pkey} holds {kinds_here[1]}s, so no id would match; a "
                    "SparkDatabase does not convert ids: cast one column in the data you "
                    "pass (e.g. CAST(col AS BIGINT) or CAST(col AS STRING))."
                )
            joins.append(
                f"LEFT JOIN (SELECT DISTINCT {_q(pkey)} AS __k FROM {_cut_view(target)}) k{i} "
                f"ON s.{_q(col)} = k{i}.__k"
            )
            select.append(f"CASE WHEN k{i}.__k IS NULL THEN NULL ELSE s.{_q(col)} END AS {_q(col)}")
        for col, kind in kinds.items():
            if kind in ("numeric", "boolean"):
                value = f"nanvl(CAST(s.{_q(col)} AS DOUBLE), CAST(NULL AS DOUBLE))"
            else:
                value = f"CAST(s.{_q(col)} AS STRING)"
            select.append(f"{value} AS {_q(col)}")
        where = []
        if schema.time_col is not None:
            select.append("s.__t")
            if horizon_ns is not None:
                where.append(f"s.__t <= {int(horizon_ns)}")
            if floor_ns is not None:
                where.append(f"s.__t > {int(floor_ns)}")
        sql = f"SELECT {', '.join(select)} FROM {_cut_view(table)} s {' '.join(joins)}"
        return sql + (f" WHERE {' AND '.join(where)}" if where else "")

    # ------------------------------------------------------------------ identity
    def __getstate__(self) -> dict[str, Any]:
        # Sessions and DataFrames hold a JVM gateway: neither is pickled.
        state = self.__dict__.copy()
        frames = [name for name, t in self._sources.items() if not isinstance(t, str)]
        state["_sources"] = {
            name: (None if name in frames else t) for name, t in self._sources.items()
        }
        state["_detached"] = sorted(set(self._detached) | set(frames))
        state["_session"], state["_frames"] = None, {}
        return state

    def __deepcopy__(self, memo: dict) -> SparkDatabase:
        return self  # shared, never copied (as sktve.Database)

    def __copy__(self) -> SparkDatabase:
        return self

    def __repr__(self) -> str:
        where = f"folder={str(self._folder)!r}" if self._folder is not None else "tables"
        return f"SparkDatabase({where}, tables={self.table_names})"


# ---------------------------------------------------------------------- the call
class _Views:
    """Temporary views of one call, and what they materialise, dropped when it ends.

    Views read by several queries are computed once and stored without lineage. Not
    ``persist``: every cached plan is compared with every later query's plan, and with one
    entry per path that comparison came to dominate (each query slower than the last,
    then out of memory). Where there is a folder every executor sees (the context's
    checkpoint directory, ``SparkContext.setCheckpointDir``, or on a local master a
    temporary folder) they are written there as parquet and read back: columnar and
    compressed, read vectorised, and on disk. Otherwise ``localCheckpoint`` keeps them on
    the executors' disks, row by row through the serializer: in the block store in memory
    they held the heap, and each is read back a few times at most.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.names: list[str] = []
        self.folder: str | None = None
        self._count = 0
        # (step, seconds) of each materialised view, in order; the final write is added by
        # the caller.
        self.step_seconds: list[tuple[str, float]] = []
        context = session.sparkContext
        checkpoints = context.getCheckpointDir()
        if checkpoints:
            import uuid

            self.folder = f"{checkpoints.rstrip('/')}/sktve-{uuid.uuid4().hex}"
        elif context.master.startswith("local"):
            import tempfile

            local = session.conf.get("spark.local.dir", None)
            folder = tempfile.mkdtemp(prefix="sktve-", dir=local.split(",")[0] if local else None)
            self.folder = Path(folder).as_uri()  # local even where the default FS is not

    def materialise(self, frame: Any, step: str) -> Any:
        """``frame`` computed now and read back from where it was stored; ``step`` is timed."""
        with self.timed(step):
            if self.folder is None:
                from pyspark import StorageLevel

                return frame.localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
            path = f"{self.folder}/part{self._count}"
            self._count += 1
            frame.write.parquet(path)
            return self.session.read.parquet(path)

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Record and log how long ``step`` takes."""
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.step_seconds.append((step, round(seconds, 2)))
        logger.info("step %d (%s) done in %.1f s", len(self.step_seconds), step, seconds)

    def add(self, name: str, frame: Any) -> Any:
        frame.createOrReplaceTempView(name)
        self.names.append(name)
        return frame

    def sql(self, name: str, sql: str, materialise: str | None = None) -> Any:
        """A view of ``sql``; materialised (and timed as that step) when ``materialise``."""
        frame = self.session.sql(sql)
        return self.add(name, self.materialise(frame, materialise) if materialise else frame)

    def pandas(self, name: str, frame: pd.DataFrame) -> Any:
        return self.add(name, self.session.createDataFrame(_to_arrow(frame)))

    def close(self) -> None:
        for name in dict.fromkeys(self.names):
            try:
                self.session.catalog.dropTempView(name)
            except Exception:  # noqa: BLE001 - best effort on a stopping session
                pass
        if self.folder is not None:
            try:  # through Hadoop's file system: a local folder or the checkpoint store
                jvm = self.session._jvm
                path = jvm.org.apache.hadoop.fs.Path(self.folder)
                path.getFileSystem(self.session._jsc.hadoopConfiguration()).delete(path, True)
            except Exception:  # noqa: BLE001 - best effort on a stopping session
                pass


@contextlib.contextmanager
def _constraints_off(session: Any) -> Iterator[None]:
    """Spark's constraint propagation off for the call, as it was set afterwards.

    A union of checkpointed frames keeps constraints on attributes they no longer have,
    and Spark 4 fails on them ("key not found" in ``Union.rewriteConstraints``); the
    constraints only add inferred filters, so results do not change.
    """
    key = "spark.sql.constraintPropagation.enabled"
    before = session.conf.get(key, None)
    session.conf.set(key, "false")
    try:
        yield
    finally:
        if before is None:
            session.conf.unset(key)
        else:
            session.conf.set(key, before)


def _session_of(engine: Any) -> Any:
    """The session of a Spark engine; a clear error for any other engine."""
    if engine is None or getattr(engine, "dialect", "duckdb") != "spark":
        raise ValueError(
            "a SparkDatabase is computed in Spark: pass engine=SparkEngine(spark) (or "
            "engine='spark' for the active session); for the default engines load the "
            "data with sktve.load_database."
        )
    return engine.session


class _SparkResult:
    """The wide Spark DataFrame of one call and how its columns map to the output."""

    def __init__(self, job: Any, views: _Views, max_columns: int | None) -> None:
        from pyspark.sql import functions as F

        from sktve.targets.paths import plan_aggregates
        from sktve.targets.vectors import (
            ZERO_WHEN_EMPTY,
            _join_strategy,
            _row_floors,
            _unique_pairs,
            block_names,
            path_statements,
            window_label,
        )

        db, session = job.database, views.session
        self.job = job
        self.views = views
        plan, dropped = plan_aggregates(job.paths, max_columns)
        self.names, self.numeric_names = block_names(plan, job.windows)
        self.labels = [window_label(w) for w in job.windows]
        self.dropped = [f"{label}|{name}" for label in self.labels for name in dropped]
        edges = direct_edges(db, job.entity_table)
        tables = {h.table for p in job.paths for h in p.hops} | {t for t, _ in edges}
        referenced = {dst for t in tables for dst in db.fkeys(t).values()}
        for table in sorted(tables | referenced | {job.entity_table}):
            views.add(f"__tve_cut_{table}", db.cut_frame(table))

        cutoffs = np.unique(job.cutoff_values.view(np.int64))
        views.pandas(
            "__cutoffs",
            pd.DataFrame({"cutoff_id": np.arange(len(cutoffs), dtype=np.int64), "cutoff": cutoffs}),
        )
        self.inverse = None
        if job.mode == "active":
            # Every entity whose first first-hop row is at or before cutoff + the largest
            # window, per cutoff (as _active_pairs), over views without the row bounds.
            for table in sorted({t for t, _ in edges}):
                kept = [col for t, col in edges if t == table]
                views.sql(f"__tve_{table}", db.view_sql(table, {}, fkeys=kept))
            reach = max(int(w.value) for w in job.windows)
            pairs = (
                session.sql(
                    f"SELECT c.cutoff_id, c.cutoff, e.{_q(db.pkey(job.entity_table))} AS entity "
                    f"FROM {_cut_view(job.entity_table)} e JOIN (\n{first_time_sql(edges, 'spark')}"
                    f"\n) f ON f.entity = e.{_q(db.pkey(job.entity_table))} "
                    f"JOIN __cutoffs c ON f.t0 <= c.cutoff + {reach}"
                )
                .orderBy("cutoff_id", "entity")
                .withColumn("pair_id", F.monotonically_increasing_id())
            )
            self.ent = self.cut = None
        else:
            ent, cut, self.inverse = _unique_pairs(
                job.entity_keys, job.cutoff_values.view(np.int64)
            )
            self.ent, self.cut = ent, cut
            pairs = session.createDataFrame(
                _to_arrow(
                    pd.DataFrame(
                        {
                            "pair_id": np.arange(len(ent), dtype=np.int64),
                            "entity": ent,
                            "cutoff": cut,
                            "cutoff_id": np.searchsorted(cutoffs, cut).astype(np.int64),
                        }
                    )
                )
            )
        pairs = views.materialise(pairs, "(entity, cutoff) pairs")
        views.add("__pairs", pairs)
        counted = pairs.agg(F.count("*"), F.countDistinct("entity")).first()
        self.n_pairs = int(counted[0])
        # The windowed join's order, chosen as for a pandas database; the cutoff-id ranges
        # come from time buckets in SQL ("bucket") instead of a view made on the driver.
        self.strategy = {
            w: "bucket"
            if _join_strategy(cutoffs, self.n_pairs, int(counted[1]), int(w.value)) == "cutoff"
            else "entity"
            for w in job.windows
        }

        # The views the path queries read: rows in (floor, last cutoff + largest window].
        floors = _row_floors(db, job.paths, edges, int(cutoffs.min()), job.windows, "future")
        horizon = min(int(job.horizon_ns), int(cutoffs.max()) + max(w.value for w in job.windows))
        for table in sorted(tables):
            kinds: dict[str, str] = {}
            for path in job.paths:
                if path.last_table == table:
                    kinds.update({c.name: c.kind for c in path.columns})
            floor = floors.get(table) if db.is_temporal(table) else None
            views.sql(
                f"__tve_{table}",
                db.view_sql(table, kinds, horizon, floor),
                materialise=f"rows of {table}",
            )

        by_path: dict[str, list[AggregateSpec]] = {}
        for spec in plan:
            by_path.setdefault(spec.path.name, []).append(spec)
        numeric_of = {name: i for i, name in enumerate(self.numeric_names)}
        mode_names = [name for name in self.names if name not in numeric_of]
        mode_of = {name: i for i, name in enumerate(mode_names)}
        self.mode_names = mode_names
        # Each path and window gives one narrow part ((cutoff_id, entity), part number, its
        # numeric and mode values as two arrays), computed and persisted one at a time;
        # their union is grouped once and joined to the pairs. Keyed by (cutoff_id, entity)
        # rather than pair_id, the bucket join needs no join with the pairs per part. (A
        # join per part made a plan as wide as the result at every step, and one job over
        # every part held all their hash tables in one task: Spark spent minutes planning
        # the one and ran out of memory in the other.)
        parts: list[str] = []
        values: dict[str, Any] = {}  # internal column -> expression over the grouped parts
        partials: dict[tuple, str] = {}

        def part(sql: str, numbers: list[str], strings: list[str], step: str) -> int:
            k = len(parts)
            parts.append(f"__tve_part{k}")
            views.sql(
                parts[-1],
                f"SELECT cutoff_id, entity, {k} AS __k, {_array_sql(numbers, 'DOUBLE')} AS __n, "
                f"{_array_sql(strings, 'STRING')} AS __m FROM (\n{sql}\n) r{k}",
                materialise=f"{step}, {len(numbers) + len(strings)} aggregates",
            )
            return k

        def element(arrays: str, k: int, i: int) -> str:
            return f"try_element_at(try_element_at({arrays}, {k}), {i + 1})"

        for window, label in zip(job.windows, self.labels):
            lo, hi = 0, int(window.value)
            counts = []
            for i, (table, col) in enumerate(edges):
                edge = PathSpec(f"__edge{i}", "direct", (Hop(table, col, "in"),), ())
                sql, _ = path_query_sql(
                    edge,
                    [AggregateSpec(edge, None, "count")],
                    lo=lo,
                    hi=hi,
                    strategy=self.strategy[window],
                    dialect="spark",
                    keys="cutoff_entity",
                )
                counts.append(sql)
            k = part(
                "SELECT cutoff_id, entity, sum(a0) AS n FROM (\n"
                + "\nUNION ALL\n".join(counts)
                + "\n) u GROUP BY cutoff_id, entity",
                ["n"],
                [],
                f"{label} activity over {len(edges)} tables",
            )
            active = f"coalesce({element('__n', k, 0)}, 0) > 0"
            values[f"i{self.labels.index(label)}"] = F.expr(
                f"CAST(CASE WHEN {active} THEN 0 ELSE 1 END AS TINYINT)"
            )
            for path in job.paths:
                specs = by_path.get(path.name)
                if not specs:
                    continue
                statements, aliases = path_statements(
                    db,
                    path,
                    specs,
                    window,
                    lo,
                    hi,
                    self.strategy[window],
                    "spark",
                    partials,
                    keys="cutoff_entity",
                )
                for statement in statements[:-1]:
                    session.sql(statement)  # the sibling partials view
                numbers: list[str] = []
                strings: list[str] = []
                where: list[tuple[str, str, int]] = []
                for spec, alias in zip(specs, aliases):
                    name = f"{label}|{spec.name}"
                    if spec.agg == "mode":
                        where.append((f"m{mode_of[name]}", "__m", len(strings)))
                        strings.append(alias)
                    else:
                        where.append((f"n{numeric_of[name]}", "__n", len(numbers)))
                        numbers.append(alias)
                k = part(statements[-1], numbers, strings, f"{label} path {path.name}")
                for spec, (internal, arrays, i) in zip(specs, where):
                    value = element(arrays, k, i)
                    if spec.agg in ZERO_WHEN_EMPTY:
                        value = f"coalesce({value}, 0.0)"
                    values[internal] = F.expr(value)
        views.names.extend(partials.values())
        grouped = session.sql(
            "SELECT cutoff_id, entity, map_from_entries(collect_list(struct(__k, __n))) AS __n, "
            "map_from_entries(collect_list(struct(__k, __m))) AS __m FROM (\n"
            + "\nUNION ALL\n".join(f"SELECT * FROM {name}" for name in parts)
            + "\n) u GROUP BY cutoff_id, entity"
        )
        self.internal = {
            **{name: f"n{i}" for i, name in enumerate(self.numeric_names)},
            **{name: f"m{i}" for i, name in enumerate(mode_names)},
        }
        self.wide = (
            pairs.select("pair_id", "entity", "cutoff", "cutoff_id")
            .join(grouped, ["cutoff_id", "entity"], "left")
            .select("pair_id", "entity", "cutoff", *[e.alias(c) for c, e in values.items()])
        )

    def blocks(self, table: Any) -> Any:
        """The :class:`~sktve.targets.vectors.Blocks` of a fetched Arrow table."""
        from sktve.targets.vectors import Blocks

        n = table.num_rows
        matrix = np.empty((len(self.numeric_names), n), dtype=np.float64)
        for i in range(len(self.numeric_names)):
            matrix[i] = table.column(f"n{i}").to_numpy(zero_copy_only=False)
        modes = {
            name: np.array(table.column(f"m{i}").to_pylist(), dtype=object)
            for i, name in enumerate(self.mode_names)
        }
        inactive = {
            label: table.column(f"i{i}").to_numpy(zero_copy_only=False).astype(np.int8)
            for i, label in enumerate(self.labels)
        }
        return Blocks(
            self.names,
            self.numeric_names,
            matrix,
            modes,
            inactive,
            self.dropped,
            list(self.job.paths),
        )


@contextlib.contextmanager
def _spark_call(database: SparkDatabase, engine: Any, prepare: dict, max_columns) -> Iterator:
    from sktve.targets.engine import engine_for_call
    from sktve.targets.vectors import _TaskVectorJob

    with engine_for_call(engine) as resolved:
        session = _session_of(resolved)
        with database.bound(session), _constraints_off(session):
            views = _Views(session)
            try:
                job = _TaskVectorJob.prepare(database, **prepare)
                yield _SparkResult(job, views, max_columns)
            finally:
                views.close()


def spark_task_vectors(
    database: SparkDatabase, engine: Any, max_columns, **prepare
) -> pd.DataFrame:
    """:func:`~sktve.targets.task_vectors` of a SparkDatabase (returned as pandas)."""
    from sktve.targets.vectors import _assemble, _warn_dropped

    with _spark_call(database, engine, prepare, max_columns) as result:
        with result.views.timed("group the parts and fetch the result"):
            table = result.wide.orderBy("pair_id").toArrow()
        if result.ent is None:
            ent = table.column("entity").to_numpy(zero_copy_only=False)
            cut = table.column("cutoff").to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            ent, cut = result.ent, result.cut
        blocks = result.blocks(table)
        del table
    _warn_dropped(blocks.dropped, max_columns)
    return _assemble(result.job.pkey, ent, cut, blocks, result.job.windows, result.inverse)


def spark_write_task_vectors(
    path: Any, database: SparkDatabase, engine: Any, max_columns, chunk_size, **prepare
) -> dict[str, Any]:
    """:func:`~sktve.targets.write_task_vectors` of a SparkDatabase (a parquet folder)."""
    from sktve.targets.vectors import _warn_dropped, output_columns

    with _spark_call(database, engine, prepare, max_columns) as result:
        # Imported once the engine is known to be a SparkEngine: without one the user
        # gets that error, not pyspark's absence.
        from pyspark.sql import functions as F

        job, wide = result.job, result.wide
        order_by = "pair_id"
        if result.inverse is not None:
            # Given pairs: every given row (duplicates too), in the given order.
            rows = pd.DataFrame(
                {"__row": np.arange(len(result.inverse), dtype=np.int64), "pair_id": result.inverse}
            )
            wide = wide.sparkSession.createDataFrame(_to_arrow(rows)).join(wide, "pair_id")
            order_by = "__row"
        order, inactive = output_columns(job.pkey, result.names, job.windows)
        flags = {label: f"i{i}" for i, label in enumerate(result.labels)}
        selected = []
        for name in order:
            if name == job.pkey:
                column = F.col("entity")
            elif name == "cutoff":
                # A naive timestamp (microseconds), from the nanoseconds: no time zone.
                column = F.expr(
                    "timestampadd(MICROSECOND, cutoff DIV 1000, TIMESTAMP_NTZ'1970-01-01 00:00:00')"
                )
            elif name in inactive:
                column = F.col(flags[inactive[name]])
            else:
                column = F.col(result.internal[name])
            selected.append(column.alias(name))
        writer = wide.orderBy(order_by).select(*selected).write.mode("overwrite")
        if chunk_size is not None:
            writer = writer.option("maxRecordsPerFile", int(chunk_size))
        with result.views.timed("group the parts and write the result"):
            writer.parquet(str(path))
        written = wide.sparkSession.read.parquet(str(path))
        rows, files = written.count(), written.inputFiles()
    _warn_dropped(result.dropped, max_columns)
    return {
        "path": str(path),
        "rows": int(rows),
        "columns": order,
        "chunks": len(files),
        "paths": [p.name for p in job.paths],
        "dropped_columns": list(result.dropped),
        "step_seconds": [list(step) for step in result.views.step_seconds],
    }
