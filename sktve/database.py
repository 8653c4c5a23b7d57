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
import os
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
    "is_code_name",
    "load_database",
    "open_relbench_dataset",
]

TIME_DTYPE = "datetime64[ns]"


def is_code_name(name: str) -> bool:
    """Whether an integer column's name marks it as a code (``id``, ``...Id``, ``..._id``).

    Integer codes such as ``statusId`` are labels, not quantities: the encoder's
    featurizer and the aggregates (task vectors, AggregateFeatures) both treat such a
    non-key column as categorical, so they agree on what it holds. To read an integer
    column the other way, rename it (or cast it to ``float`` to make it a number, or
    to ``str`` to make it a category) before loading the database.

    Parameters
    ----------
    name : str
        Column name.

    Returns
    -------
    bool

    Examples
    --------
    >>> from sktve.database import is_code_name
    >>> [is_code_name(n) for n in ("statusId", "status_id", "quantity", "id")]
    [True, True, False, True]
    """
    return name.lower() == "id" or name.endswith(("Id", "ID", "_id"))


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
                f"referenced table, e.g. {{'user_id': 'users'}}; got {type(fkeys).__name__}."
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


def _parse_table_schemas(tables: list[str], schema: Mapping[str, Any]) -> dict[str, TableSchema]:
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
            f"known tables: {sorted(tables)}. Remove those entries or add the tables."
        )
    return {name: TableSchema.from_any(name, schema[name]) for name in tables}


def _check_fkey_targets(parsed: Mapping[str, TableSchema]) -> None:
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


def parse_schema(tables: list[str], schema: Mapping[str, Any]) -> dict[str, TableSchema]:
    """The schema of ``tables`` as TableSchema, checked as :class:`Database` checks it.

    Every table needs an entry and every entry a table; each foreign key must reference
    a known table that has a primary key.
    """
    parsed = _parse_table_schemas(tables, schema)
    _check_fkey_targets(parsed)
    return parsed


def unknown_keys_error(table: str, n_unknown: int, examples: list) -> ValueError:
    """The error for ids that are not keys of ``table`` (with a few examples)."""
    return ValueError(
        f"{n_unknown} ids are not keys of table {table!r} "
        f"(e.g. {examples}); check the entity column and the entity table."
    )


def _content_hash(frame: pd.DataFrame) -> str:
    # Row hashes summed positionally would ignore order; hashing the array of row hashes
    # keeps order and is still vectorised.
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(row_hashes.tobytes())
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(json.dumps([str(t) for t in frame.dtypes]).encode())
    return digest.hexdigest()


class SchemaAccess:
    """Schema lookups shared by :class:`Database` and ``sktve.targets.SparkDatabase``.

    The class using it holds ``_schema`` (table name -> ``TableSchema``) and a
    ``_require_table(table)`` that raises a clear KeyError for an unknown table.
    """

    _schema: dict[str, TableSchema]

    def _require_table(self, table: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

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
        schema = self._schema
        return [
            ForeignKey(src, col, dst) for src in schema for col, dst in schema[src].fkeys.items()
        ]


class Database(SchemaAccess):
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
                    f"table {name!r} is a {type(frame).__name__}, not a pandas DataFrame; "
                    "convert it first (e.g. pd.DataFrame(...) or polars' .to_pandas())."
                )
        parsed = _parse_table_schemas(list(tables), schema)
        normalised: dict[str, pd.DataFrame] = {}
        for name, frame in tables.items():
            normalised[name] = self._normalise_table(name, frame, parsed[name])
        _check_fkey_targets(parsed)
        self._tables = normalised
        self._schema = parsed
        self._match_fkey_types()
        self._null_dangling_keys(dangling)
        self._key_index_cache: dict[str, pd.Index] = {}

    @staticmethod
    def _normalise_table(name: str, frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
        if frame.columns.duplicated().any():
            dup = sorted(set(frame.columns[frame.columns.duplicated()]))
            raise ValueError(
                f"table {name!r} has duplicate column names {dup}; rename them so that "
                "each column has its own name."
            )
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
                    f"(e.g. {pkey[pkey.duplicated()].tolist()[0]!r}); keys must be unique "
                    "(drop the duplicated rows, or declare another key column)."
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

    def _match_fkey_types(self) -> None:
        # Before the dangling check: a string key against integer references would
        # otherwise null every reference, and only "no entity has activity" would follow.
        for fk in self.foreign_keys:
            frame = self._tables[fk.src_table]
            pkey = self._schema[fk.dst_table].pkey
            values = frame[fk.fkey_col]
            matched = match_key_type(
                values,
                self._tables[fk.dst_table][pkey],
                where=f"foreign key {fk.src_table}.{fk.fkey_col}",
                key_where=f"primary key {fk.dst_table}.{pkey}",
                stacklevel=6,
            )
            if matched is not values:
                frame = frame.copy()
                frame[fk.fkey_col] = matched
                self._tables[fk.src_table] = frame

    def _null_dangling_keys(self, dangling: str) -> None:
        counts: dict[str, int] = {}
        # Foreign keys whose values mostly reference nothing: rarely missing rows, usually
        # ids of another type or source. They get their own message.
        mostly: dict[str, str] = {}
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
                n_present = int(present.sum())
                if n_bad > MOSTLY_DANGLING * n_present:
                    mostly[fk.name] = _mostly_dangling_text(
                        fk,
                        self._schema[fk.dst_table].pkey,
                        values[present][~ok.to_numpy()].iloc[:1].tolist()[0],
                        target_keys,
                        n_bad,
                        n_present,
                    )
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
                loud = "".join(f" MOSTLY DANGLING: {text}." for text in mostly.values())
                raise ValueError(
                    f"foreign keys reference missing rows ({detail}).{loud} Fix the data, or "
                    "pass dangling='null' to set them to null (the RelBench convention)."
                )
            for text in mostly.values():
                warnings.warn(
                    f"MOSTLY DANGLING FOREIGN KEY: {text}. They were set to null (as "
                    "RelBench does), which leaves most of those rows unlinked: fix the ids, "
                    "or cast one column so that both hold the same values (dangling='raise' "
                    "makes this an error).",
                    UserWarning,
                    stacklevel=4,
                )
            counts = {k: v for k, v in counts.items() if k not in mostly}
            detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        if counts:
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
                f"handle was saved with {expected[:12]}...: it is not the same data. Attach "
                "the data the handle was saved with, or give the estimator the new data with "
                "set_params(database=...) (refit it if the schema changed)."
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

    @property
    def foreign_keys(self) -> list[ForeignKey]:
        """Every foreign key, as schema-graph edges (source table -> referenced table)."""
        self._check_attached()
        return super().foreign_keys

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

    def _time_ranges(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        ranges = [r for r in (self.time_range(t) for t in self.table_names) if r is not None]
        if not ranges:
            raise ValueError(
                "the database has no time columns, so no timestamps: declare the "
                "'time_col' of the tables whose rows happen over time (orders, events, ...)."
            )
        # Empty tables (an early snapshot) have a NaT range: they bound nothing.
        ranges = [r for r in ranges if not pd.isna(r[0])]
        if not ranges:
            raise ValueError(
                "every timestamped table of the database is empty, so there are no "
                "timestamps yet: load a snapshot with rows in at least one of them."
            )
        return ranges

    @property
    def min_timestamp(self) -> pd.Timestamp:
        return min(r[0] for r in self._time_ranges())

    @property
    def max_timestamp(self) -> pd.Timestamp:
        return max(r[1] for r in self._time_ranges())

    def key_index(self, table: str) -> pd.Index:
        """An index of the table's primary key values (position = row number)."""
        pkey = self.pkey(table)
        if pkey is None:
            raise ValueError(
                f"table {table!r} has no primary key; declare its 'pkey' in the schema to "
                "name its rows by id."
            )
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
            raise unknown_keys_error(table, int(unknown.sum()), examples)
        return positions.astype(np.int64)

    def check_keys(self, table: str, keys: Any) -> None:
        """Raise listing ids that are not keys of ``table`` (see :meth:`entity_positions`)."""
        self.entity_positions(table, keys)

    def profile_sample(self, table: str, as_of: pd.Timestamp | None) -> pd.DataFrame:
        """The rows that decide the table's column kinds (see ``targets.paths.profile_table``).

        Rows up to ``as_of`` (a row after the horizon must not change what is computed:
        the time-correctness contract), then at most ``PROFILE_ROWS`` of them equally
        spaced by position.
        """
        from sktve.targets.paths import profile_positions

        frame = self.table(table)
        time_col = self.time_col(table)
        if as_of is not None and time_col is not None:
            frame = frame[frame[time_col] <= as_of]
        positions = profile_positions(len(frame))
        return frame if positions is None else frame.iloc[positions]

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

    def describe(self, columns: bool = True) -> str:
        """A human-readable summary: tables, rows, keys, time ranges, schema graph, columns.

        Parameters
        ----------
        columns : bool, default=True
            List each table's columns with their types.

        Returns
        -------
        str
        """
        lines = [
            f"Database {self._spec.get('source', '(in memory)')}",
            f"  {len(self.table_names)} tables, {self.num_rows():,} rows",
        ]
        if any(self.num_rows(t) and self.is_temporal(t) for t in self.table_names):
            lines.append(f"  time range {self.min_timestamp} .. {self.max_timestamp}")
        if self.val_timestamp is not None:
            lines.append(
                f"  val timestamp {self.val_timestamp}, test timestamp {self.test_timestamp}"
            )
        lines.append("")
        lines.append(f"  {'table':<24}{'rows':>12}  {'pkey':<22}{'time column':<14}time range")
        for name in self.table_names:
            rng = self.time_range(name)
            rng_text = (
                "static" if rng is None else "empty" if pd.isna(rng[0]) else f"{rng[0]} .. {rng[1]}"
            )
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
        if columns:
            lines.append("")
            lines.append("  columns (type; pkey, time and foreign keys marked):")
            for name in self.table_names:
                lines.extend(self._column_lines(name))
        return "\n".join(lines)

    def _column_lines(self, table: str, width: int = 88) -> list[str]:
        import textwrap

        frame, fkeys = self._tables[table], self.fkeys(table)
        items = []
        for col in frame.columns:
            role = (
                "pkey"
                if col == self.pkey(table)
                else "time"
                if col == self.time_col(table)
                else f"-> {fkeys[col]}"
                if col in fkeys
                else "text"
                if frame[col].dtype == object
                else str(frame[col].dtype)
            )
            # No-break spaces keep "col (role)" on one line; restored after wrapping.
            items.append(f"{col} ({role})".replace(" ", "\xa0"))
        head = f"    {table}: "
        wrapped = textwrap.wrap(
            ", ".join(items), width, initial_indent=head, subsequent_indent=" " * len(head)
        )
        return [line.replace("\xa0", " ") for line in wrapped]


def ship_database(database: Database) -> tuple[Database, Any, Any]:
    """A database and its data, for a spawned process (a handle pickles without its tables).

    The receiving process calls :func:`attach_shipped` on the tuple.
    """
    database.table_names  # noqa: B018 - reloads a detached folder / RelBench handle
    return database, database._tables, database._schema


def attach_shipped(
    database: Database, tables: dict[str, pd.DataFrame], schema: dict[str, Any]
) -> Database:
    """In a spawned process: give the unpickled handle its tables again (checked)."""
    if not database.is_attached:
        database._tables = tables
        database._schema = schema
        database._key_index_cache = {}
        if database.fingerprint != database._expected_fingerprint:
            raise RuntimeError("the database changed on its way to a worker process.")
    return database


def _mostly_dangling_text(
    fk: ForeignKey, pkey: str, example: Any, target_keys: pd.Series, n_bad: int, n_present: int
) -> str:
    where, key_where = f"{fk.src_table}.{fk.fkey_col}", f"{fk.dst_table}.{pkey}"
    text = (
        f"{n_bad:,} of the {n_present:,} values ({n_bad / n_present:.0%}) of foreign key "
        f"{where} reference no row of {fk.dst_table!r}"
    )
    if len(target_keys) == 0:
        return f"{text}, which has no rows"
    return (
        f"{text}. So many usually means that {where} and {key_where} do not hold the same "
        f"ids: check their types (e.g. 12 vs '12', 12 vs 12.5) and values (e.g. {where} = "
        f"{example!r}, {key_where} = {target_keys.iloc[:1].tolist()[0]!r})"
    )


#: ``pandas.api.types.infer_dtype`` answers of object columns that hold numbers.
_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "boolean", "decimal")


def _holds_numbers(values: pd.Series) -> bool:
    if values.dtype.kind in "iufb":
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in _NUMBER_KINDS


def naive_times(values: pd.Series, what: str, *, stacklevel: int = 2) -> pd.Series:
    """Times as timezone-naive ``datetime64[ns]``: the one rule of tables and task tables.

    ``datetime64`` values are kept; timezone-aware ones are converted to UTC and made
    naive, with a warning; strings, Timestamps and datetime objects are parsed; numbers
    are refused, since nothing says whether they count seconds, milliseconds or
    nanoseconds. Missing values stay NaT (the caller decides).

    Parameters
    ----------
    values : Series
    what : str
        How messages name the values, e.g. ``"time column orders.ts"``.
    stacklevel : int, default=2
        Of the timezone warning, as for ``warnings.warn`` here (2: the caller).

    Returns
    -------
    Series of datetime64[ns]
    """
    if _holds_numbers(values):
        present = values.dropna()
        example = f", e.g. {present.iloc[:1].tolist()[0]!r}" if len(present) else ""
        raise ValueError(
            f"{what} is numeric ({values.dtype}{example}); numbers are ambiguous as times "
            "(seconds, milliseconds or nanoseconds since 1970?). Convert them first, e.g. "
            "pd.to_datetime(values, unit='s') for seconds since the epoch (unit='ms' for "
            "milliseconds)."
        )
    if values.dtype.kind != "M" and not isinstance(values.dtype, pd.DatetimeTZDtype):
        try:
            values = pd.to_datetime(values, format="mixed")
        except (ValueError, TypeError) as err:
            try:  # strings with different UTC offsets only parse into UTC
                values = pd.to_datetime(values, utc=True, format="mixed")
            except (ValueError, TypeError):
                raise ValueError(
                    f"{what} has values that are not timestamps ({err}); give datetime64 "
                    "values, Timestamps or ISO strings such as '2024-01-31 12:00' (convert "
                    "with pandas.to_datetime)."
                ) from err
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        warnings.warn(
            f"{what} is timezone-aware ({values.dtype.tz}); converted to UTC and made "
            "timezone-naive, as sktve holds every time (database and prediction times "
            "alike). Give times in UTC to skip this conversion.",
            UserWarning,
            stacklevel=stacklevel,
        )
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return values.astype(TIME_DTYPE)
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as err:
        raise ValueError(
            f"{what} has times outside the range sktve stores (datetime64[ns]: years 1677 "
            f"to 2262): {err}. Drop those rows or replace placeholder dates such as "
            "9999-12-31 with real times or nulls."
        ) from err


def _as_naive_datetime(values: pd.Series, where: str) -> pd.Series:
    """Convert a time column to timezone-naive datetime64[ns], warning about conversions."""
    if len(values) == 0:
        # An empty table (an early snapshot of the schema): its time column holds no value
        # to be ambiguous about, whatever its dtype.
        return pd.Series(np.array([], dtype=TIME_DTYPE), index=values.index, name=values.name)
    converted = naive_times(values, f"time column {where}", stacklevel=7)
    if values.dtype.kind != "M" and not isinstance(values.dtype, pd.DatetimeTZDtype):
        warnings.warn(
            f"time column {where} had dtype {values.dtype}; converted with "
            "pandas.to_datetime (as UTC, stored without a timezone).",
            UserWarning,
            stacklevel=6,
        )
    n_null = int(converted.isna().sum())
    if n_null:
        raise ValueError(
            f"time column {where} has {n_null} missing values; every row of a timestamped "
            "table needs a time (drop those rows, or fill them)."
        )
    return converted


# ---------------------------------------------------------------------- key types
#: Above this share of dangling values, a foreign key gets its own loud warning.
MOSTLY_DANGLING = 0.5


def _key_kind(values: pd.Series) -> str | None:
    """ "number", "string", or None (other types, or no values) for a column of ids."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred == "string":
            return "string"
        if inferred in ("integer", "floating", "mixed-integer-float"):
            return "number"
    return None


def _exact_integers(strings: pd.Series) -> pd.Series | None:
    """int64 of strings that are exactly integers ('12', '-3'), else None.

    Exactly: ``str(int(s)) == s``, so '012', '12.0', ' 12' and '1e3' do not count (they
    would name another id once converted).
    """
    numbers = pd.to_numeric(strings, errors="coerce")
    if numbers.isna().any() or not (numbers % 1 == 0).all():
        return None
    integers = numbers.astype("int64")
    if not (integers.astype(str).to_numpy(dtype=object) == strings.to_numpy(dtype=object)).all():
        return None
    return integers


def match_key_type(
    values: pd.Series,
    keys: pd.Series,
    where: str,
    key_where: str,
    *,
    stacklevel: int = 2,
) -> pd.Series:
    """Ids converted to the type of the key column they name, when that is exact.

    Strings of digits and integers can name the same ids ('12' and 12), but never match
    each other. When every id converts exactly (and, for integer ids against string
    keys, every key is such a string), the ids are converted to the keys' type with a
    warning; when they cannot, a ValueError names both columns and what to cast. Ids of
    the keys' type come back as they are (the same object).

    Parameters
    ----------
    values : Series
        The ids (a foreign key column, or the entity column of a task table).
    keys : Series
        The primary key column they reference.
    where, key_where : str
        How messages name the two columns.
    stacklevel : int, default=2
        Of the warning, as for ``warnings.warn`` here (2: the caller).

    Returns
    -------
    Series
    """
    kind, key_kind = _key_kind(values), _key_kind(keys)
    if kind is None or key_kind is None or kind == key_kind:
        return values
    present = values.notna().to_numpy()
    if not present.any():
        return values
    given = values[present]
    converted: pd.Series | None = None
    if kind == "string":
        integers = _exact_integers(given)
        if integers is not None:
            full = np.zeros(len(values), dtype=np.int64)
            full[present] = integers.to_numpy()
            if keys.dtype.kind == "f":
                array: Any = np.where(present, full, np.nan)
            elif present.all():
                array = full
            else:
                array = pd.arrays.IntegerArray(full, ~present)
            converted = pd.Series(array, index=values.index, name=values.name)
            if present.all() and keys.dtype.kind in "iu":
                converted = converted.astype(keys.dtype)
    else:
        numbers = pd.to_numeric(given)
        integral = numbers.dtype.kind in "iu" or bool((numbers % 1 == 0).all())
        if integral and _exact_integers(keys.dropna()) is not None:
            text = numbers.astype("int64").astype(str).to_numpy(dtype=object)
            converted = pd.Series(None, index=values.index, dtype=object, name=values.name)
            converted[present] = text
    if converted is None:
        raise ValueError(
            f"{where} ({values.dtype}, e.g. {given.iloc[:3].tolist()}) and {key_where} "
            f"({keys.dtype}, e.g. {keys.dropna().iloc[:3].tolist()}) hold ids of different "
            f"types ({kind}s vs {key_kind}s) that do not convert exactly, so no id would "
            "match. Cast one side so that both hold the same ids, e.g. "
            "df[col] = df[col].astype(str), or .astype('int64')."
        )
    before, after = given.iloc[:1].tolist()[0], converted[present].iloc[:1].tolist()[0]
    warnings.warn(
        f"{where} holds {kind}s ({values.dtype}) and {key_where} holds {key_kind}s "
        f"({keys.dtype}); every id converts exactly, so {where} was converted to "
        f"{key_kind}s to match (e.g. {before!r} -> {after!r}). Give both columns the same "
        "type to skip this conversion.",
        UserWarning,
        stacklevel=stacklevel,
    )
    return converted


# ---------------------------------------------------------------------- fitted schema
def schema_of(database: Database) -> dict[str, dict[str, Any]]:
    """The schema as plain dicts (what fitted estimators remember and compare)."""
    return {t: database.schema[t].to_dict() for t in database.table_names}


def check_same_schema(fitted: Mapping[str, Any], database: Database, fitted_by: str) -> None:
    """Raise a clear error when ``database``'s schema is not the one ``fitted_by`` was fitted on.

    Parameters
    ----------
    fitted : dict
        ``schema_of(database)`` at fit.
    database : Database
        The database given at transform.
    fitted_by : str
        What was fitted, for the message (e.g. ``"AggregateFeatures"``).
    """
    schema = schema_of(database)
    if schema == dict(fitted):
        return
    details = []
    missing = sorted(set(fitted) - set(schema))
    added = sorted(set(schema) - set(fitted))
    changed = sorted(t for t in set(fitted) & set(schema) if fitted[t] != schema[t])
    if missing:
        details.append(f"tables missing: {missing}")
    if added:
        details.append(f"tables not there at fit: {added}")
    for table in changed:
        details.append(f"table {table!r} was {fitted[table]}, is {schema[table]}")
    raise ValueError(
        f"the database's schema differs from the one the {fitted_by} was fitted on "
        f"({'; '.join(details)}). Refit on this database, or pass one with the same tables, "
        "keys and time columns (an earlier or later snapshot of the same schema works)."
    )


def open_relbench_dataset(source: str | Path) -> Any:
    """``relbench.load_dataset`` with sktve's errors for sources that cannot be found.

    A local folder loads as is. A RelBench name (``"rel-f1"``) that is neither in the
    Hugging Face cache nor downloadable (no network, or ``HF_HUB_OFFLINE=1``, which the
    ``sktve`` command sets) gets a message that says how to get the data, instead of the
    hub's lookup error.

    Parameters
    ----------
    source : str or Path
        A RelBench 3 folder (with ``manifest.yaml``) or a RelBench dataset name.

    Returns
    -------
    relbench Dataset
    """
    import relbench

    if Path(source).expanduser().exists():
        return relbench.load_dataset(str(Path(source).expanduser()))
    try:
        return relbench.load_dataset(str(source))
    except OSError as err:  # huggingface_hub's lookup errors are OSErrors
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false")
        why = (
            "downloads are off (HF_HUB_OFFLINE=1; the sktve command sets it)"
            if offline
            else f"downloading it failed ({type(err).__name__}: {str(err).splitlines()[-1]})"
        )
        raise FileNotFoundError(
            f"{str(source)!r} is not a folder here, and no RelBench dataset of that name is "
            f"in the local cache: {why}. Pass the path of a RelBench 3 folder (with "
            "manifest.yaml, e.g. ../shared/data/rel-f1), or download the dataset once on a "
            'machine with network: HF_HUB_OFFLINE=0 python -c "import relbench; '
            f"relbench.load_dataset('{source}')\"."
        ) from None


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
        dataset = open_relbench_dataset(text)
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
