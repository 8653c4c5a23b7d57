"""Schema paths from an entity table, and the aggregates computed along them.

A *path* starts at the entity table and walks foreign keys. Its first table is always a
timestamped table whose rows reference the entity (the window filter applies to it);
2-hop paths continue from those rows:

``direct``      entity <- F                  rows of F referencing the entity
``dimension``   entity <- F -> D             the D row each F row references
``sibling``     entity <- F -> X <- G        rows of timestamped G sharing F's key to X,
                                             with time in (F.time - lookback, F.time]
``child``       entity <- F <- G             rows of G referencing the F row

Columns are aggregated by kind (see :func:`column_kind`): keys, time columns, datetimes
and free text are never aggregated.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sktve.database import Database, is_code_name

__all__ = [
    "AggregateSpec",
    "ColumnSpec",
    "Hop",
    "PathSpec",
    "column_kind",
    "enumerate_paths",
    "plan_aggregates",
    "profile_positions",
]

#: Aggregates per column kind. Boolean columns get the mean (the share of true values).
AGGREGATES: dict[str, tuple[str, ...]] = {
    "numeric": ("mean", "min", "max", "sum", "std", "count"),
    "boolean": ("mean",),
    "categorical": ("count", "nunique", "mode"),
}
#: Sibling paths are computed from per-row partial aggregates (count, sum, sum of squares,
#: min, max), which cannot give distinct counts or modes: categorical columns get counts only.
SIBLING_AGGREGATES: dict[str, tuple[str, ...]] = {**AGGREGATES, "categorical": ("count",)}

#: A string column is categorical when it has at most this many distinct values ...
MAX_CATEGORIES = 1000
#: ... and either at most this share of its non-null rows, or at most this many (and at
#: most half of its non-null rows: all-distinct strings are names or text, not categories).
SMALL_CATEGORIES = 50
MAX_DISTINCT_SHARE = 0.1
#: Column kinds are decided on an evenly spaced sample of at most this many rows.
PROFILE_ROWS = 200_000


@dataclass(frozen=True)
class Hop:
    """One step of a path: to ``table`` through its column ``fkey`` (``direction="in"``)
    or through the previous table's column ``fkey`` (``direction="out"``)."""

    table: str
    fkey: str
    direction: str


@dataclass(frozen=True)
class ColumnSpec:
    """A column of a path's last table, with its kind (numeric, boolean, categorical)."""

    name: str
    kind: str


@dataclass(frozen=True)
class PathSpec:
    """A path from the entity table, and the columns aggregated at its end.

    Attributes
    ----------
    name : str
        Readable, stable name such as ``"orders"`` or ``"orders->products"``.
    kind : {"direct", "dimension", "sibling", "child"}
    hops : tuple of Hop
    columns : tuple of ColumnSpec
        Aggregated columns of the last table (after include/exclude).
    lookback : Timedelta or None
        For sibling paths: how far before the first-hop row the sibling rows may lie
        (None: the window length).
    """

    name: str
    kind: str
    hops: tuple[Hop, ...]
    columns: tuple[ColumnSpec, ...]
    lookback: pd.Timedelta | None = None
    row_count: bool = True

    @property
    def first_table(self) -> str:
        return self.hops[0].table

    @property
    def last_table(self) -> str:
        return self.hops[-1].table

    @property
    def n_hops(self) -> int:
        return len(self.hops)

    def aggregates(self) -> list[tuple[str | None, str]]:
        """(column or None for the row count, aggregate) pairs, in output order."""
        table = SIBLING_AGGREGATES if self.kind == "sibling" else AGGREGATES
        out: list[tuple[str | None, str]] = [(None, "count")] if self.row_count else []
        for col in self.columns:
            out.extend((col.name, agg) for agg in table[col.kind])
        return out


@dataclass(frozen=True)
class AggregateSpec:
    """One output column of a window block: ``path|column|aggregate``."""

    path: PathSpec
    column: str | None
    agg: str

    @property
    def name(self) -> str:
        return f"{self.path.name}|{'*' if self.column is None else self.column}|{self.agg}"

    @property
    def kind(self) -> str:
        if self.column is None:
            return "numeric"
        return next(c.kind for c in self.path.columns if c.name == self.column)


# ---------------------------------------------------------------------- column kinds
def column_kind(values: pd.Series) -> str | None:
    """The aggregation kind of a column, or None when it is not aggregated.

    - bool / nullable boolean -> ``"boolean"``;
    - integer and float -> ``"numeric"``, except integer codes named like ids
      (``statusId``, ``..._id``; see :func:`sktve.database.is_code_name`) ->
      ``"categorical"``, as the encoder's featurizer reads them;
    - pandas ``category`` -> ``"categorical"``;
    - strings -> ``"categorical"`` when they have few distinct values (at most 1000, and
      either at most 10% of the non-null rows, or at most 50 and at most half of the
      non-null rows), otherwise free text or identifiers, which are
      skipped (it has no meaningful mean or mode; text embedding is the encoder's job);
    - datetimes, timedeltas, mixed objects and all-null columns -> None (skipped: a date
      other than the row's time is usually a static attribute such as a birth date).

    Parameters
    ----------
    values : Series

    Returns
    -------
    str or None
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if dtype.kind in "mM" or isinstance(dtype, pd.DatetimeTZDtype):
        return None
    if pd.api.types.is_integer_dtype(dtype) and is_code_name(str(values.name)):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and dtype.kind != "c":
        return "numeric"
    if dtype.kind == "O" or isinstance(dtype, pd.StringDtype):
        nonnull = values.dropna()
        if len(nonnull) == 0:
            return None
        inferred = pd.api.types.infer_dtype(nonnull, skipna=True)
        if inferred == "boolean":
            return "boolean"
        if inferred != "string":
            return None
        n_unique = nonnull.nunique()
        if n_unique <= MAX_CATEGORIES and (
            (n_unique <= SMALL_CATEGORIES and n_unique <= 0.5 * len(nonnull))
            or n_unique <= MAX_DISTINCT_SHARE * len(nonnull)
        ):
            return "categorical"
    return None


def profile_positions(n_rows: int) -> np.ndarray | None:
    """Positions of the rows that decide column kinds among ``n_rows`` rows.

    At most :data:`PROFILE_ROWS` rows, equally spaced by position; None when every row
    counts. Shared by the pandas :class:`~sktve.Database` and
    :class:`~sktve.targets.SparkDatabase`, which fetches only these rows.
    """
    if n_rows > PROFILE_ROWS:
        return np.linspace(0, n_rows - 1, PROFILE_ROWS).astype(np.int64)
    return None


def profile_table(database: Database, table: str, as_of: pd.Timestamp | None) -> list[ColumnSpec]:
    """Aggregated columns of a table with their kinds, decided from rows up to ``as_of``.

    Keys and the time column are left out; see :func:`column_kind` for the kinds. A
    :class:`~sktve.targets.SparkDatabase` hands over the same rows from Spark
    (``profile_sample``): the table itself never comes to the driver.
    """
    schema = database.schema[table]
    skip = {schema.pkey, schema.time_col, *schema.fkeys}
    # Only rows up to the horizon decide kinds (the time-correctness contract).
    frame = database.profile_sample(table, as_of)
    out = []
    for col in frame.columns:
        if col in skip:
            continue
        kind = column_kind(frame[col]) if len(frame) else None
        if kind is not None:
            out.append(ColumnSpec(str(col), kind))
    return out


# ---------------------------------------------------------------------- include / exclude
def _as_patterns(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        items = list(value)
        if not all(isinstance(v, str) for v in items):
            raise TypeError(f"{name} must be a string or a list of strings (name patterns).")
        return items
    raise TypeError(f"{name} must be a string or a list of strings, got {type(value).__name__}.")


def _matches(text: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(text, p) for p in patterns)


def _selected(path_name: str, column: str, include, exclude) -> bool:
    keys = (path_name, f"{path_name}|{column}")
    if include is not None and not any(_matches(k, include) for k in keys):
        return False
    if exclude is not None and any(_matches(k, exclude) for k in keys):
        return False
    return True


# ---------------------------------------------------------------------- enumeration
def check_entity_table(database: Database, entity_table: str) -> None:
    """Raise clear errors for an unknown entity table or one without a primary key."""
    from sktve.targets.spark_source import SparkDatabase

    if not isinstance(database, (Database, SparkDatabase)):
        raise TypeError(
            f"database must be a sktve Database (see sktve.load_database) or a "
            f"sktve.targets.SparkDatabase, got {type(database).__name__}."
        )
    if not isinstance(entity_table, str) or entity_table not in database.table_names:
        raise ValueError(
            f"unknown entity table {entity_table!r}; the database has tables "
            f"{sorted(database.table_names)}."
        )
    if database.pkey(entity_table) is None:
        raise ValueError(
            f"entity table {entity_table!r} has no primary key, so its rows cannot be named; "
            "choose a table with a primary key."
        )


def direct_edges(database: Database, entity_table: str) -> list[tuple[str, str]]:
    """(timestamped table, fkey column) pairs whose rows reference the entity table."""
    return [
        (fk.src_table, fk.fkey_col)
        for fk in database.foreign_keys
        if fk.dst_table == entity_table and database.is_temporal(fk.src_table)
    ]


def _hop_label(database: Database, prev: str, hop: Hop) -> str:
    arrow = "<-" if hop.direction == "in" else "->"
    # Name the key column only where two edges join the same tables the same way.
    if hop.direction == "in":
        twins = [c for c, t in database.fkeys(hop.table).items() if t == prev]
    else:
        twins = [c for c, t in database.fkeys(prev).items() if t == hop.table]
    suffix = f"[{hop.fkey}]" if len(twins) > 1 else ""
    return f"{arrow}{hop.table}{suffix}"


def _path_name(database: Database, entity_table: str, hops: tuple[Hop, ...]) -> str:
    name = ""
    prev = entity_table
    for hop in hops:
        name += _hop_label(database, prev, hop)
        prev = hop.table
    # The leading "<-" of the first hop is implicit: "orders", "orders->products".
    return name[2:]


def _raw_paths(
    database: Database, entity_table: str, max_hops: int
) -> list[tuple[str, tuple[Hop, ...]]]:
    out: list[tuple[str, tuple[Hop, ...]]] = []
    firsts = direct_edges(database, entity_table)
    for table, col in firsts:
        out.append(("direct", (Hop(table, col, "in"),)))
    if max_hops < 2:
        return out
    for table, col in firsts:
        first = Hop(table, col, "in")
        for fcol, dst in database.fkeys(table).items():
            if fcol == col:
                continue  # the path back to the entity itself
            out.append(("dimension", (first, Hop(dst, fcol, "out"))))
        for fcol, dst in database.fkeys(table).items():
            if fcol == col:
                continue
            for fk in database.foreign_keys:
                if fk.dst_table == dst and database.is_temporal(fk.src_table):
                    out.append(
                        (
                            "sibling",
                            (first, Hop(dst, fcol, "out"), Hop(fk.src_table, fk.fkey_col, "in")),
                        )
                    )
        if database.pkey(table) is not None:
            for fk in database.foreign_keys:
                if fk.dst_table == table:
                    out.append(("child", (first, Hop(fk.src_table, fk.fkey_col, "in"))))
    return out


def enumerate_paths(
    database: Database,
    entity_table: str,
    max_hops: int = 2,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    lookback: Any = None,
    *,
    as_of: Any = None,
) -> list[PathSpec]:
    """List the paths (and their aggregated columns) task vectors are built from.

    Parameters
    ----------
    database : Database
    entity_table : str
        Table whose rows are the entities (needs a primary key).
    max_hops : {1, 2}, default=2
    include, exclude : str or list of str, optional
        Shell-style patterns (``fnmatch``) matched against a path name (``"orders"``,
        ``"orders->products"``) or ``"<path>|<column>"`` (``"orders|amount"``,
        ``"*|discount"``; ``"<path>|*"`` is the path's row count). An aggregate is kept
        when it matches ``include`` (if given) and does not match ``exclude``.
    lookback : str or Timedelta, optional
        For sibling paths (``entity <- F -> X <- G``): sibling rows lie in
        ``(F.time - lookback, F.time]``. None: the window length of each block.
    as_of : Timestamp, optional
        Decide column kinds from rows up to this time only (used internally so that rows
        after the training horizon never change what is computed).

    Returns
    -------
    list of PathSpec
        Paths in a stable order: 1-hop first, then 2-hop by first table.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import load_database
    >>> from sktve.targets import enumerate_paths
    >>> db = load_database(
    ...     {"users": pd.DataFrame({"user_id": [0, 1]}),
    ...      "orders": pd.DataFrame({"order_id": [0, 1], "user_id": [0, 1],
    ...                              "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
    ...                              "amount": [3.0, 4.0]})},
    ...     schema={"users": {"pkey": "user_id"},
    ...             "orders": {"pkey": "order_id", "time_col": "ts",
    ...                        "fkeys": {"user_id": "users"}}})
    >>> [p.name for p in enumerate_paths(db, "users")]
    ['orders']
    """
    check_entity_table(database, entity_table)
    if max_hops not in (1, 2):
        raise ValueError(f"max_hops must be 1 or 2, got {max_hops!r}.")
    include_p = _as_patterns(include, "include")
    exclude_p = _as_patterns(exclude, "exclude")
    lookback_td = None
    if lookback is not None:
        from sktve._validation import parse_windows

        lookback_td = parse_windows(lookback, "lookback")
        if len(lookback_td) != 1:
            raise ValueError("lookback must be a single duration such as '30D'.")
        lookback_td = lookback_td[0]
    raw = _raw_paths(database, entity_table, max_hops)
    if not raw:
        referenced = sorted(
            {fk.dst_table for fk in database.foreign_keys if database.is_temporal(fk.src_table)}
        )
        raise ValueError(
            f"entity table {entity_table!r} is not referenced by any timestamped table, so "
            f"nothing happens to its rows over time and task vectors are undefined. Tables "
            f"referenced by timestamped tables: {referenced}. Choose one of those as the "
            "entity table, or declare the foreign key of a timestamped table that references "
            "this one in the schema's 'fkeys'."
        )
    as_of_ts = None if as_of is None else pd.Timestamp(as_of)
    profiles: dict[str, list[ColumnSpec]] = {}
    paths = []
    for kind, hops in raw:
        last = hops[-1].table
        if last not in profiles:
            profiles[last] = profile_table(database, last, as_of_ts)
        name = _path_name(database, entity_table, hops)
        columns = tuple(c for c in profiles[last] if _selected(name, c.name, include_p, exclude_p))
        row_count = _selected(name, "*", include_p, exclude_p)
        if not columns and not row_count:
            continue
        paths.append(
            PathSpec(
                name=name,
                kind=kind,
                hops=hops,
                columns=columns,
                lookback=lookback_td if kind == "sibling" else None,
                row_count=row_count,
            )
        )
    return paths


def plan_aggregates(
    paths: Sequence[PathSpec], max_columns: int | None
) -> tuple[list[AggregateSpec], list[str]]:
    """Choose the aggregates of one window block under a cap on their number.

    1-hop paths come first (all their aggregates, in path order), then the row counts of
    2-hop paths, then 2-hop column aggregates taken round-robin over paths one column at a
    time, so that a cap trims every wide path a little rather than dropping whole paths.

    Returns
    -------
    kept : list of AggregateSpec
        In output order (grouped by path, as enumerated).
    dropped : list of str
        Names (``path|column|aggregate``) of the aggregates left out by the cap.
    """
    if max_columns is not None and (
        not isinstance(max_columns, (int, np.integer)) or max_columns < 1
    ):
        raise ValueError(f"max_columns must be a positive integer or None, got {max_columns!r}.")
    # Priority queue as a list of groups; a group is all aggregates of one column.
    groups: list[list[AggregateSpec]] = []
    for path in paths:
        if path.n_hops == 1:
            groups.extend(_column_groups(path))
    two_hop = [p for p in paths if p.n_hops > 1]
    for path in two_hop:
        if path.row_count:
            groups.append([AggregateSpec(path, None, "count")])
    per_path = [[g for g in _column_groups(p) if g[0].column is not None] for p in two_hop]
    depth = max((len(g) for g in per_path), default=0)
    for i in range(depth):
        for path_groups in per_path:
            if i < len(path_groups):
                groups.append(path_groups[i])
    chosen: set[int] = set()
    total = 0
    dropped: list[str] = []
    for group in groups:
        for spec in group:
            if max_columns is None or total < max_columns:
                chosen.add(id(spec))
                total += 1
            else:
                dropped.append(spec.name)
    kept = [spec for group in _output_order(paths, groups) for spec in group if id(spec) in chosen]
    return kept, dropped


def _column_groups(path: PathSpec) -> list[list[AggregateSpec]]:
    groups: dict[str | None, list[AggregateSpec]] = {}
    for column, agg in path.aggregates():
        groups.setdefault(column, []).append(AggregateSpec(path, column, agg))
    return list(groups.values())


def _output_order(
    paths: Sequence[PathSpec], groups: list[list[AggregateSpec]]
) -> list[list[AggregateSpec]]:
    order = {p.name: i for i, p in enumerate(paths)}
    # Output keeps path order, and within a path the column order; sort is stable.
    indexed = []
    for group in groups:
        spec = group[0]
        cols = [None] + [c.name for c in spec.path.columns]
        indexed.append(((order[spec.path.name], cols.index(spec.column)), group))
    indexed.sort(key=lambda item: item[0])
    return [g for _, g in indexed]
