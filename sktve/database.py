"""The database handle: tables, keys, time columns, schema graph and fingerprint.

Every later stage of sktve (task vectors, the temporal graph, the pretrainer) reads a
relational database through :class:`Database`. The handle validates once, keeps its own
normalised copies of the tables (the caller's frames are never modified), and is *light*:
``copy.deepcopy`` and scikit-learn's ``clone`` share it, and pickling keeps only how to
find the data again (its :attr:`Database.spec`) and a fingerprint of the content.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Database",
    "DatabaseNotAttachedError",
    "ForeignKey",
    "TableSchema",
    "load_database",
]

TIME_DTYPE = "datetime64[ns]"

# Live handles by fingerprint. A handle restored from a pickle in a process that still holds
# the same data (e.g. a fitted step returned by Pipeline(memory=...) or joblib.Memory)
# attaches to it on first use instead of failing. Weak references: never keeps data alive.
_LIVE_HANDLES: weakref.WeakValueDictionary[str, Database] = weakref.WeakValueDictionary()


class DatabaseNotAttachedError(RuntimeError):
    """Raised when a handle restored from a pickle is used before its data is attached."""


@dataclass(frozen=True)
class TableSchema:
    """Relational semantics of one table.

    Parameters
    ----------
    pkey : str or None
        Primary key column, or None for tables without one.
    time_col : str or None
        Time column, or None for static tables.
    fkeys : dict of str to str
        Foreign key column -> name of the table whose primary key it references.
    """

    pkey: str | None = None
    time_col: str | None = None
    fkeys: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"pkey": self.pkey, "time_col": self.time_col, "fkeys": dict(self.fkeys)}

    @classmethod
    def from_any(cls, table: str, spec: Any) -> TableSchema:
        """Build from a mapping (``{"pkey", "time_col", "fkeys"}``) or a schema-like object."""
        if isinstance(spec, TableSchema):
            return spec
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"pkey", "time_col", "fkeys"}
            if unknown:
                raise ValueError(
                    f"schema for table {table!r} has unknown entries {sorted(unknown)}; "
                    "use only 'pkey', 'time_col' and 'fkeys' ({fkey_col: referenced_table})."
                )
            get = spec.get
        else:  # relbench TableSpec / Table-like objects

            def get(name, default=None):
                aliases = {"fkeys": "fkey_col_to_pkey_table", "pkey": "pkey_col"}
                if hasattr(spec, name):
                    return getattr(spec, name)
                return getattr(spec, aliases.get(name, name), default)

        fkeys = get("fkeys", None) or {}
        if not isinstance(fkeys, Mapping):
            raise TypeError(
                f"schema for table {table!r}: 'fkeys' must map foreign key column to "
                f"referenced table, got {type(fkeys).__name__}."
            )
        return cls(pkey=get("pkey", None), time_col=get("time_col", None), fkeys=dict(fkeys))


@dataclass(frozen=True)
class ForeignKey:
    """One edge of the schema graph: ``src_table.fkey_col`` references ``dst_table``'s key."""

    src_table: str
    fkey_col: str
    dst_table: str

    @property
    def name(self) -> str:
        return f"{self.src_table}.{self.fkey_col}->{self.dst_table}"


def _content_hash(frame: pd.DataFrame) -> str:
    # Row hashes summed positionally would ignore order; hashing the array of row hashes
    # keeps order and is still vectorised.
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(row_hashes.tobytes())
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(json.dumps([str(t) for t in frame.dtypes]).encode())
    return digest.hexdigest()


class Database:
    """A validated, read-only relational database with a schema graph.

    Build one with :func:`load_database`. The handle is light: ``copy.deepcopy`` and
    ``sklearn.base.clone`` return the same object, and pickling stores only
    :attr:`spec` (how to find the data again) and :attr:`fingerprint`. A handle
    restored from a pickle attaches on first use to a live handle with the same
    fingerprint in the same process (so cached pipeline steps keep working), else
    re-loads lazily from a path or RelBench name and checks the fingerprint; otherwise a
    handle built from in-memory frames must be re-attached with :meth:`attach` (or by
    passing a fresh database to the estimator with ``set_params(database=...)``).

    Parameters
    ----------
    tables : dict of str to DataFrame
        The tables. They are copied where normalisation changes them, never modified.
    schema : dict of str to TableSchema or mapping
        Primary key, time column and foreign keys for each table.
    spec : dict, optional
        How this database was obtained (kept by pickling).
    dangling : {"null", "raise"}, default="null"
        What to do with foreign key values that reference no row: set them to null
        (the RelBench convention; a warning gives the counts), or raise.
    val_timestamp, test_timestamp : Timestamp, optional
        Split timestamps of a RelBench dataset, when known.

    Attributes
    ----------
    table_names : list of str
    schema : dict of str to TableSchema
    foreign_keys : list of ForeignKey
    min_timestamp, max_timestamp : Timestamp
    fingerprint : str
    """

    def __init__(
        self,
        tables: Mapping[str, pd.DataFrame],
        schema: Mapping[str, Any],
        *,
        spec: dict[str, Any] | None = None,
        dangling: str = "null",
        val_timestamp: Any = None,
        test_timestamp: Any = None,
    ) -> None:
        if dangling not in ("null", "raise"):
            raise ValueError(f"dangling must be 'null' or 'raise', got {dangling!r}.")
        self._spec = dict(spec) if spec is not None else {"kind": "in-memory"}
        self._fingerprint: str | None = None
        self._expected_fingerprint: str | None = None
        self.val_timestamp = pd.Timestamp(val_timestamp) if val_timestamp is not None else None
        self.test_timestamp = pd.Timestamp(test_timestamp) if test_timestamp is not None else None
        self._set_data(tables, schema, dangling)

    # ------------------------------------------------------------------ validation
    def _set_data(
        self, tables: Mapping[str, pd.DataFrame], schema: Mapping[str, Any], dangling: str
    ) -> None:
        if not isinstance(tables, Mapping) or len(tables) == 0:
            raise ValueError(
                "a database needs at least one table: pass a dict {table_name: DataFrame}."
            )
        for name, frame in tables.items():
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(
                    f"table {name!r} is a {type(frame).__name__}, not a pandas DataFrame."
                )
        missing_schema = sorted(set(tables) - set(schema))
        if missing_schema:
            raise ValueError(
                f"no schema for tables {missing_schema}: give each table an entry "
                "{'pkey': ..., 'time_col': ..., 'fkeys': {...}} (use None where absent)."
            )
        extra_schema = sorted(set(schema) - set(tables))
        if extra_schema:
            raise ValueError(
                f"schema names tables {extra_schema} that are not in the data; "
                f"known tables: {sorted(tables)}."
            )
        parsed = {name: TableSchema.from_any(name, schema[name]) for name in tables}
        normalised: dict[str, pd.DataFrame] = {}
        for name, frame in tables.items():
            normalised[name] = self._normalise_table(name, frame, parsed[name])
        for name, table_schema in parsed.items():
            for col, target in table_schema.fkeys.items():
                if target not in parsed:
                    raise ValueError(
                        f"foreign key {name}.{col} references unknown table {target!r}; "
                        f"known tables: {sorted(parsed)}. Fix the schema's 'fkeys'."
                    )
                if parsed[target].pkey is None:
                    raise ValueError(
                        f"foreign key {name}.{col} references table {target!r}, which has "
                        "no primary key; declare its 'pkey'."
                    )
        self._tables = normalised
        self._schema = parsed
        self._null_dangling_keys(dangling)
        self._key_index_cache: dict[str, pd.Index] = {}

    @staticmethod
    def _normalise_table(name: str, frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
        if len(frame) == 0:
            raise ValueError(f"table {name!r} is empty; drop it from the database or give it rows.")
        if frame.columns.duplicated().any():
            dup = sorted(set(frame.columns[frame.columns.duplicated()]))
            raise ValueError(f"table {name!r} has duplicate column names {dup}.")
        needed = {"pkey": schema.pkey, "time_col": schema.time_col}
        for role, col in needed.items():
            if col is not None and col not in frame.columns:
                raise ValueError(
                    f"table {name!r} has no column {col!r} (declared as its {role}); "
                    f"its columns are {list(frame.columns)}."
                )
        for col in schema.fkeys:
            if col not in frame.columns:
                raise ValueError(
                    f"table {name!r} has no column {col!r} (declared as a foreign key); "
                    f"its columns are {list(frame.columns)}."
                )
        if schema.pkey is not None:
            pkey = frame[schema.pkey]
            n_null = int(pkey.isna().sum())
            if n_null:
                raise ValueError(
                    f"primary key {name}.{schema.pkey} has {n_null} null values; every "
                    "row needs a key (drop those rows or assign keys)."
                )
            n_dup = int(pkey.duplicated().sum())
            if n_dup:
                raise ValueError(
                    f"primary key {name}.{schema.pkey} has {n_dup} duplicated values "
                    f"(e.g. {pkey[pkey.duplicated()].tolist()[0]!r}); keys must be unique."
                )
        # A shallow copy under pandas copy-on-write: later edits to the caller's frame
        # cannot reach ours, and nothing is copied until one side writes.
        out = frame.copy(deep=False)
        changed: dict[str, pd.Series] = {}
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.StringDtype):
                # pandas 3 string columns do not go into DuckDB reliably.
                changed[col] = frame[col].astype(object)
        if schema.time_col is not None:
            changed[schema.time_col] = _as_naive_datetime(
                frame[schema.time_col], f"{name}.{schema.time_col}"
            )
        for col, values in changed.items():
            out[col] = values
        return out

    def _null_dangling_keys(self, dangling: str) -> None:
        counts: dict[str, int] = {}
        for fk in self.foreign_keys:
            frame = self._tables[fk.src_table]
            values = frame[fk.fkey_col]
            target_keys = self._tables[fk.dst_table][self._schema[fk.dst_table].pkey]
            present = values.notna()
            if not present.any():
                continue
            ok = values[present].isin(target_keys)
            n_bad = int((~ok).sum())
            if n_bad:
                counts[fk.name] = n_bad
                if dangling == "null":
                    bad_mask = present.copy()
                    bad_mask[present] = ~ok.to_numpy()
                    new_values = values.astype("float64" if values.dtype.kind in "iuf" else object)
                    new_values = new_values.where(~bad_mask)
                    if values.dtype.kind in "iu":
                        new_values = new_values.astype("Int64")
                    frame = frame.copy()
                    frame[fk.fkey_col] = new_values
                    self._tables[fk.src_table] = frame
        if counts:
            detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
            if dangling == "raise":
                raise ValueError(
                    f"foreign keys reference missing rows ({detail}). Fix the data, or pass "
                    "dangling='null' to set them to null (the RelBench convention)."
                )
            warnings.warn(
                f"foreign keys reference missing rows and were set to null, as RelBench "
                f"does ({detail}). Pass dangling='raise' to make this an error.",
                UserWarning,
                stacklevel=4,
            )

    # ------------------------------------------------------------------ access
    def _check_attached(self) -> None:
        if self._tables is None:
            live = _LIVE_HANDLES.get(self._expected_fingerprint or "")
            if live is not None and live is not self and live._tables is not None:
                self.attach(live)
                return
            if self._spec.get("kind") in ("folder", "relbench-name"):
                self._reload_from_spec()
                return
            raise DatabaseNotAttachedError(
                "this database handle was restored from a pickle and holds no data "
                f"(spec {self._spec}, fingerprint {self._expected_fingerprint}). Attach the "
                "data with `db.attach(load_database(tables, schema=...))`, or give the "
                "estimator a database with `est.set_params(database=...)`."
            )

    def _reload_from_spec(self) -> None:
        fresh = load_database(
            self._spec["source"],
            upto_test_timestamp=self._spec.get("upto_test_timestamp", True),
        )
        self.attach(fresh)

    def attach(self, other: Database) -> Database:
        """Give a handle restored from a pickle its data again.

        Parameters
        ----------
        other : Database
            A loaded database with the same content (checked by fingerprint).

        Returns
        -------
        self : Database
        """
        if not isinstance(other, Database):
            raise TypeError(f"attach expects a sktve Database, got {type(other).__name__}.")
        expected = self._expected_fingerprint if self._tables is None else self.fingerprint
        if expected is not None and other.fingerprint != expected:
            raise ValueError(
                f"the database to attach has fingerprint {other.fingerprint[:12]}..., but this "
                f"handle was saved with {expected[:12]}...: it is not the same data."
            )
        other._check_attached()
        self._tables = other._tables
        self._schema = other._schema
        self._key_index_cache = {}
        self._fingerprint = other.fingerprint
        self.val_timestamp = other.val_timestamp
        self.test_timestamp = other.test_timestamp
        return self

    @property
    def is_attached(self) -> bool:
        """Whether the handle holds its tables (False after unpickling until attached)."""
        return self._tables is not None

    @property
    def spec(self) -> dict[str, Any]:
        """How this database was obtained: ``{"kind": ..., "source": ...}``."""
        return dict(self._spec)

    @property
    def table_names(self) -> list[str]:
        self._check_attached()
        return list(self._tables)

    @property
    def schema(self) -> dict[str, TableSchema]:
        self._check_attached()
        return dict(self._schema)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The normalised tables. Treat them as read-only."""
        self._check_attached()
        return dict(self._tables)

    def __contains__(self, table: str) -> bool:
        self._check_attached()
        return table in self._tables

    def __iter__(self) -> Iterator[str]:
        return iter(self.table_names)

    def _require_table(self, table: str) -> None:
        self._check_attached()
        if table not in self._tables:
            raise KeyError(
                f"unknown table {table!r}; the database has tables {sorted(self._tables)}."
            )

    def table(self, name: str) -> pd.DataFrame:
        """The normalised frame of one table (read-only by convention)."""
        self._require_table(name)
        return self._tables[name]

    def pkey(self, table: str) -> str | None:
        self._require_table(table)
        return self._schema[table].pkey

    def time_col(self, table: str) -> str | None:
        self._require_table(table)
        return self._schema[table].time_col

    def fkeys(self, table: str) -> dict[str, str]:
        self._require_table(table)
        return dict(self._schema[table].fkeys)

    def is_temporal(self, table: str) -> bool:
        return self.time_col(table) is not None

    @property
    def foreign_keys(self) -> list[ForeignKey]:
        """Every foreign key, as schema-graph edges (source table -> referenced table)."""
        self._check_attached()
        schema = self._schema
        return [
            ForeignKey(src, col, dst) for src in schema for col, dst in schema[src].fkeys.items()
        ]

    def schema_graph(self) -> dict[str, list[tuple[str, str, str]]]:
        """Adjacency of the schema graph in both directions.

        Returns
        -------
        graph : dict
            ``graph[table]`` lists ``(neighbour_table, fkey_col, direction)`` where
            direction is ``"out"`` (``table.fkey_col`` references the neighbour) or
            ``"in"`` (``neighbour.fkey_col`` references ``table``).
        """
        self._check_attached()
        graph: dict[str, list[tuple[str, str, str]]] = {name: [] for name in self._tables}
        for fk in self.foreign_keys:
            graph[fk.src_table].append((fk.dst_table, fk.fkey_col, "out"))
            graph[fk.dst_table].append((fk.src_table, fk.fkey_col, "in"))
        return graph

    def num_rows(self, table: str | None = None) -> int:
        """Rows in one table, or in all tables together."""
        if table is not None:
            return len(self.table(table))
        self._check_attached()
        return sum(len(frame) for frame in self._tables.values())

    def time_range(self, table: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """(min, max) of a table's time column, None for static tables."""
        col = self.time_col(table)
        if col is None:
            return None
        times = self._tables[table][col]
        return times.min(), times.max()

    @property
    def min_timestamp(self) -> pd.Timestamp:
        ranges = [r for r in (self.time_range(t) for t in self.table_names) if r is not None]
        if not ranges:
            raise ValueError("the database has no time columns, so no timestamps.")
        return min(r[0] for r in ranges)

    @property
    def max_timestamp(self) -> pd.Timestamp:
        ranges = [r for r in (self.time_range(t) for t in self.table_names) if r is not None]
        if not ranges:
            raise ValueError("the database has no time columns, so no timestamps.")
        return max(r[1] for r in ranges)

    def key_index(self, table: str) -> pd.Index:
        """An index of the table's primary key values (position = row number)."""
        pkey = self.pkey(table)
        if pkey is None:
            raise ValueError(f"table {table!r} has no primary key.")
        if table not in self._key_index_cache:
            self._key_index_cache[table] = pd.Index(self._tables[table][pkey].to_numpy())
        return self._key_index_cache[table]

    def fkey_positions(self, table: str, fkey_col: str) -> np.ndarray:
        """Row positions in the referenced table for each row's foreign key (-1 for null).

        Returns
        -------
        positions : ndarray of int64, shape (n_rows,)
        """
        fkeys = self.fkeys(table)
        if fkey_col not in fkeys:
            raise KeyError(f"{table}.{fkey_col} is not a foreign key; foreign keys: {list(fkeys)}.")
        values = self._tables[table][fkey_col]
        positions = np.full(len(values), -1, dtype=np.int64)
        present = values.notna().to_numpy()
        if present.any():
            index = self.key_index(fkeys[fkey_col])
            found = index.get_indexer(values[present].to_numpy())
            positions[present] = found
        return positions

    def time_values(self, table: str) -> np.ndarray | None:
        """A table's times as int64 nanoseconds since the epoch (None for static tables)."""
        col = self.time_col(table)
        if col is None:
            return None
        return self._tables[table][col].to_numpy(dtype=TIME_DTYPE).view(np.int64)

    def entity_positions(self, table: str, keys: Any) -> np.ndarray:
        """Row positions of primary key values; raises listing unknown keys."""
        index = self.key_index(table)
        keys = np.asarray(keys)
        positions = index.get_indexer(keys)
        unknown = positions < 0
        if unknown.any():
            examples = pd.unique(keys[unknown])[:5].tolist()
            raise ValueError(
                f"{int(unknown.sum())} ids are not keys of table {table!r} "
                f"(e.g. {examples}); check the entity column and the entity table."
            )
        return positions.astype(np.int64)

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """A stable hash of the schema and every table's content."""
        if self._fingerprint is None:
            self._check_attached()
            digest = hashlib.sha256()
            digest.update(
                json.dumps(
                    {k: v.to_dict() for k, v in sorted(self._schema.items())}, sort_keys=True
                ).encode()
            )
            for name in sorted(self._tables):
                digest.update(name.encode())
                digest.update(_content_hash(self._tables[name]).encode())
            self._fingerprint = digest.hexdigest()
            _LIVE_HANDLES[self._fingerprint] = self
        return self._fingerprint

    def __deepcopy__(self, memo: dict) -> Database:
        # A handle is shared, never copied: clone(estimator) must not duplicate the data.
        return self

    def __copy__(self) -> Database:
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {
            "spec": self._spec,
            "fingerprint": self.fingerprint
            if self._tables is not None
            else self._expected_fingerprint,
            "val_timestamp": self.val_timestamp,
            "test_timestamp": self.test_timestamp,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._spec = state["spec"]
        self._expected_fingerprint = state["fingerprint"]
        self._fingerprint = None
        self._tables = None
        self._schema = None
        self._key_index_cache = {}
        self.val_timestamp = state["val_timestamp"]
        self.test_timestamp = state["test_timestamp"]

    def __repr__(self) -> str:
        if self._tables is None:
            return f"Database(detached, spec={self._spec})"
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self._tables.items())
        return f"Database({sizes})"

    # ------------------------------------------------------------------ engines
    def register_duckdb(self, con: Any, tables: list[str] | None = None) -> None:
        """Register tables as DuckDB views on ``con`` (string columns as object)."""
        for name in tables or self.table_names:
            con.register(name, self.table(name))

    def describe(self) -> str:
        """A human-readable summary: tables, rows, keys, time ranges and the schema graph."""
        lines = [
            f"Database {self._spec.get('source', '(in memory)')}",
            f"  {len(self.table_names)} tables, {self.num_rows():,} rows",
        ]
        if any(self.is_temporal(t) for t in self.table_names):
            lines.append(f"  time range {self.min_timestamp} .. {self.max_timestamp}")
        if self.val_timestamp is not None:
            lines.append(
                f"  val timestamp {self.val_timestamp}, test timestamp {self.test_timestamp}"
            )
        lines.append("")
        lines.append(f"  {'table':<24}{'rows':>12}  {'pkey':<22}{'time column':<14}time range")
        for name in self.table_names:
            rng = self.time_range(name)
            rng_text = "static" if rng is None else f"{rng[0]} .. {rng[1]}"
            lines.append(
                f"  {name:<24}{len(self._tables[name]):>12,}  {str(self.pkey(name)):<22}"
                f"{str(self.time_col(name)):<14}{rng_text}"
            )
        lines.append("")
        lines.append("  schema graph (foreign key -> referenced table):")
        for fk in self.foreign_keys:
            lines.append(f"    {fk.src_table}.{fk.fkey_col} -> {fk.dst_table}")
        if not self.foreign_keys:
            lines.append("    (no foreign keys)")
        return "\n".join(lines)


def _as_naive_datetime(values: pd.Series, where: str) -> pd.Series:
    """Convert a time column to timezone-naive datetime64[ns], warning about conversions."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        warnings.warn(
            f"time column {where} is timezone-aware ({values.dtype.tz}); converted to UTC "
            "and stored without a timezone. Give prediction times in UTC too.",
            UserWarning,
            stacklevel=6,
        )
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif values.dtype.kind != "M":
        try:
            converted = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"time column {where} has values that are not timestamps ({err}); "
                "convert it with pandas.to_datetime before loading."
            ) from err
        if values.dtype.kind in "iuf":
            raise ValueError(
                f"time column {where} is numeric ({values.dtype}); numbers are ambiguous as "
                "times. Convert it with pandas.to_datetime(..., unit=...) before loading."
            )
        warnings.warn(
            f"time column {where} had dtype {values.dtype}; converted with "
            "pandas.to_datetime (as UTC, stored without a timezone).",
            UserWarning,
            stacklevel=6,
        )
        values = converted.dt.tz_localize(None)
    n_null = int(values.isna().sum())
    if n_null:
        raise ValueError(
            f"time column {where} has {n_null} missing values; every row of a timestamped "
            "table needs a time (drop those rows, or fill them)."
        )
    return values.astype(TIME_DTYPE)


def _from_relbench_database(rdb: Any, spec: dict[str, Any], **kwargs: Any) -> Database:
    tables = {name: t.df for name, t in rdb.table_dict.items()}
    schema = {
        name: TableSchema(
            pkey=t.pkey_col, time_col=t.time_col, fkeys=dict(t.fkey_col_to_pkey_table)
        )
        for name, t in rdb.table_dict.items()
    }
    return Database(tables, schema, spec=spec, **kwargs)


def load_database(
    source: Any,
    schema: Mapping[str, Any] | None = None,
    *,
    upto_test_timestamp: bool = True,
    dangling: str = "null",
) -> Database:
    """Load a relational database into a validated :class:`Database` handle.

    Parameters
    ----------
    source : str, Path, dict, relbench Dataset or Database, or sktve Database
        - a local RelBench 3 folder (holding ``manifest.yaml`` and ``db/*.parquet``);
        - a RelBench dataset name such as ``"rel-f1"`` (``relbench.load_dataset``, which
          may download where a network exists);
        - a ``relbench`` ``Dataset`` or ``Database`` object;
        - a dict ``{table_name: DataFrame}``, with ``schema``;
        - a sktve ``Database`` (returned as is).
    schema : dict, optional
        Required with a dict of frames: ``{table: {"pkey": col or None, "time_col": col or
        None, "fkeys": {fkey_col: referenced_table}}}``.
    upto_test_timestamp : bool, default=True
        For RelBench sources, keep only rows up to the dataset's test timestamp (the
        RelBench protocol; labels of the test split lie after it).
    dangling : {"null", "raise"}, default="null"
        Foreign keys that reference no row: set to null with a warning, or raise.

    Returns
    -------
    Database

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import load_database
    >>> users = pd.DataFrame({"user_id": [0, 1]})
    >>> orders = pd.DataFrame({"order_id": [0, 1, 2], "user_id": [0, 0, 1],
    ...                        "ts": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-02-03"]),
    ...                        "amount": [9.5, 3.0, 12.0]})
    >>> db = load_database({"users": users, "orders": orders}, schema={
    ...     "users": {"pkey": "user_id"},
    ...     "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}}})
    >>> db.num_rows()
    5
    """
    if isinstance(source, Database):
        if schema is not None:
            raise ValueError("schema is only used with a dict of DataFrames.")
        return source
    if isinstance(source, Mapping):
        if schema is None:
            raise ValueError(
                "a dict of DataFrames needs a schema: schema={table: {'pkey': ..., "
                "'time_col': ..., 'fkeys': {col: referenced_table}}}."
            )
        return Database(source, schema, spec={"kind": "in-memory"}, dangling=dangling)
    if schema is not None:
        raise ValueError("schema is only used with a dict of DataFrames.")

    import relbench
    from relbench.base import Database as RelBenchDatabase
    from relbench.base import Dataset as RelBenchDataset

    if isinstance(source, RelBenchDatabase):
        return _from_relbench_database(source, {"kind": "relbench-database"}, dangling=dangling)
    if isinstance(source, RelBenchDataset):
        rdb = source.get_db(upto_test_timestamp=upto_test_timestamp)
        folder = getattr(source, "dataset_dir", None)
        spec = (
            {"kind": "folder", "source": str(folder), "upto_test_timestamp": upto_test_timestamp}
            if folder is not None and getattr(source, "is_local", False)
            else {"kind": "relbench-dataset"}
        )
        return _from_relbench_database(
            rdb,
            spec,
            dangling=dangling,
            val_timestamp=getattr(source, "val_timestamp", None),
            test_timestamp=getattr(source, "test_timestamp", None),
        )
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        looks_like_path = isinstance(source, Path) or str(source).startswith((".", "/", "~"))
        if looks_like_path and not path.exists():
            raise FileNotFoundError(
                f"no dataset folder at {str(source)!r}; give an existing RelBench 3 folder "
                "(with manifest.yaml) or a RelBench dataset name such as 'rel-f1'."
            )
        if path.exists():
            if not (path / "manifest.yaml").exists():
                raise ValueError(
                    f"{str(path)!r} is not a RelBench 3 dataset folder: it has no "
                    "manifest.yaml. Pass a folder with manifest.yaml and db/*.parquet, a "
                    "RelBench name, or a dict of DataFrames with a schema."
                )
            kind, text = "folder", str(path.resolve())
        else:
            kind, text = "relbench-name", str(source)
        dataset = relbench.load_dataset(text)
        rdb = dataset.get_db(upto_test_timestamp=upto_test_timestamp)
        return _from_relbench_database(
            rdb,
            {"kind": kind, "source": text, "upto_test_timestamp": upto_test_timestamp},
            dangling=dangling,
            val_timestamp=dataset.val_timestamp,
            test_timestamp=dataset.test_timestamp,
        )
    raise TypeError(
        f"cannot load a database from a {type(source).__name__}. Pass a RelBench folder or "
        "name, a relbench Dataset/Database, or a dict of DataFrames with a schema."
    )
