"""Fitted per-table column featurizer: turns table columns into dense model inputs.

Every non-key column of every table becomes one *feature group* (one "cell" per row):

- **numeric** (int, float): standardised with mean / std fitted on the fit rows, clipped
  to [-10, 10]; a missing value becomes 0 plus a missing indicator (2 floats).
- **boolean**: a categorical column with vocabulary {False, True}.
- **categorical** (strings with few distinct values or few words, pandas categoricals,
  integer columns named like ids (``id``, ``...Id``, ``..._id``, e.g. ``statusId``)): index into a
  vocabulary of the ``max_categories`` most frequent values at fit; 0 = null,
  1 = other (unknown or rare), 2.. = vocabulary (1 integer).
- **text** (strings with many distinct values and several words on average): an
  embedding of ``text_dim`` floats from ``text_embedder`` (by default a stateless
  hashing embedder, so nothing is downloaded), plus a missing indicator.
- **datetime** (datetime columns other than the table's time column): years since
  1970, then treated as numeric.
- key columns (primary key, foreign keys) and the table's time column are *not*
  features: keys become edges and times drive the temporal sampler.

With a ``boundary``, statistics (means, standard deviations, vocabularies) are fitted
only on rows of timestamped tables whose time is at or before the boundary, and are
frozen: :meth:`GraphFeaturizer.transform` never refits them, so it can be applied to
another :class:`~sktve.database.Database` with the same schema (e.g. one with later
rows appended) without any later row influencing the features of earlier rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sktve.database import Database, check_same_schema, is_code_name, schema_of

__all__ = [
    "ColumnSpec",
    "GraphFeaturizer",
    "GraphMetadata",
    "TableMeta",
    "hashing_text_embedder",
]

EdgeType = tuple[str, str, str]

NULL_INDEX = 0
OTHER_INDEX = 1
_CLIP = 10.0
_NS_PER_YEAR = 365.2425 * 86400 * 1e9


def hashing_text_embedder(texts: list[str], dim: int = 16) -> np.ndarray:
    """Offline default text embedder: word tokens hashed into ``dim`` signed buckets.

    Stateless (nothing is fitted or downloaded) and vectorised through scikit-learn's
    ``HashingVectorizer``; rows are L2-normalised, empty strings give zero rows.

    Parameters
    ----------
    texts : list of str
    dim : int, default=16

    Returns
    -------
    ndarray of float32, shape (len(texts), dim)
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    if len(texts) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    vectorizer = HashingVectorizer(n_features=dim, alternate_sign=True, norm="l2")
    return vectorizer.transform(texts).toarray().astype(np.float32)


@dataclass
class ColumnSpec:
    """How one column is featurized, with its frozen statistics.

    Attributes
    ----------
    name : str
        Column name in the table.
    kind : {"numeric", "datetime", "categorical", "boolean", "text"}
    mean, std : float
        Standardisation statistics (numeric and datetime columns).
    vocabulary : list of str
        Most frequent values at fit (categorical and boolean columns); index ``i`` of the
        vocabulary is encoded as ``i + 2``.
    width : int
        Number of float features (numeric, datetime, text) or 1 (categorical).
    """

    name: str
    kind: str
    mean: float = 0.0
    std: float = 1.0
    vocabulary: list[str] = field(default_factory=list)
    width: int = 1

    @property
    def is_float(self) -> bool:
        return self.kind in ("numeric", "datetime", "text")

    @property
    def cardinality(self) -> int:
        """Number of distinct codes (null, other and the vocabulary)."""
        return len(self.vocabulary) + 2


@dataclass
class TableMeta:
    """What the encoder needs to know about one node type.

    Attributes
    ----------
    num_dim : int
        Width of the float feature block ``x_num``.
    num_groups : list of int
        For each float feature, the index of the column (group) it belongs to; a
        numeric column's value and missing indicator form one group, as do a text
        column's embedding dimensions.
    num_group_names : list of str
        Column name of each float group.
    cat_cardinalities : list of int
        Number of codes of each categorical column (``x_cat`` has one int per column).
    cat_names : list of str
        Column name of each categorical column.
    temporal : bool
        Whether the table has a time column (its nodes get a relative-time encoding).
    """

    num_dim: int
    num_groups: list[int]
    num_group_names: list[str]
    cat_cardinalities: list[int]
    cat_names: list[str]
    temporal: bool


@dataclass
class GraphMetadata:
    """Node types, edge types and per-table feature layout: all an encoder is built from.

    A plain picklable object (only lists, dicts, strings and ints), also convertible to
    and from a plain dict with :meth:`to_dict` / :meth:`from_dict`.

    Attributes
    ----------
    node_types : list of str
        One per table, in the database's table order.
    edge_types : list of (str, str, str)
        ``(src, relation, dst)``, messages flow from ``src`` to ``dst`` (PyG convention).
        For a foreign key ``child.col -> parent`` there are two: ``(child, col, parent)``
        (fact rows -> the entity they reference) and ``(parent, "rev_" + col, child)``.
    tables : dict of str to TableMeta
    """

    node_types: list[str]
    edge_types: list[EdgeType]
    tables: dict[str, TableMeta]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists and dicts), e.g. to save next to model weights."""
        return {
            "node_types": list(self.node_types),
            "edge_types": [list(e) for e in self.edge_types],
            "tables": {name: vars(meta).copy() for name, meta in self.tables.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphMetadata:
        """Rebuild from :meth:`to_dict`'s output."""
        return cls(
            node_types=list(data["node_types"]),
            edge_types=[tuple(e) for e in data["edge_types"]],
            tables={name: TableMeta(**meta) for name, meta in data["tables"].items()},
        )

    def child_edge_types(self) -> dict[str, list[EdgeType]]:
        """Per node type, the edge types that bring it the rows referencing it.

        For a foreign key ``child.col -> parent`` that is ``(child, col, parent)``: the
        parent's fact rows, whose visible number the sampler counts (see
        ``SampledBatch.seed_history``). Recognised as the edge types whose reverse
        ``(parent, "rev_" + col, child)`` exists too. Node types without one are absent.
        """
        present = set(self.edge_types)
        out: dict[str, list[EdgeType]] = {}
        for src, rel, dst in self.edge_types:
            if (dst, f"rev_{rel}", src) in present:
                out.setdefault(dst, []).append((src, rel, dst))
        return out


def _infer_kind(series: pd.Series, max_categories: int) -> str | None:
    """Column kind from dtype and content; None for columns that cannot be featurized."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if dtype.kind == "b" or isinstance(dtype, pd.BooleanDtype):
        return "boolean"
    if dtype.kind == "M" or isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime"
    if dtype.kind in "iu" or pd.api.types.is_integer_dtype(dtype):
        # Integer codes such as statusId are labels, not quantities.
        return "categorical" if is_code_name(str(series.name)) else "numeric"
    if dtype.kind == "f":
        return "numeric"
    if dtype.kind == "m":
        return "numeric"
    # Strings (object or pandas string dtype). Text if many distinct values *and* several
    # words on average; short codes and names stay categorical.
    values = series.dropna()
    if len(values) == 0:
        return "categorical"
    sample = values.iloc[:: max(1, len(values) // 5000)].astype(str)
    n_unique = sample.nunique()
    mean_words = sample.str.split().str.len().mean()
    if n_unique > max_categories and mean_words >= 2.0:
        return "text"
    return "categorical"


def _as_float(series: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        values = series
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = values.astype("datetime64[ns]").to_numpy()
        out = ns.view(np.int64).astype(np.float64) / _NS_PER_YEAR
        out[np.isnat(ns)] = np.nan
        return out
    if series.dtype.kind == "m":
        return series.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan) / 86400.0
    numeric = pd.to_numeric(series, errors="coerce")
    return numeric.to_numpy(dtype=np.float64, na_value=np.nan)


def _factorize(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(codes with -1 for null, distinct values as str): string work on distinct values only."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), [str(v) for v in np.asarray(uniques, dtype=object)]


class GraphFeaturizer:
    """Fit per-table column statistics, then build a :class:`TemporalGraph` from a database.

    See the module docstring for what happens to each kind of column.

    Parameters
    ----------
    text_embedder : callable, optional
        ``f(list_of_str) -> ndarray (n, d)`` for text columns. Default: a stateless
        hashing embedder with ``text_dim`` buckets (no download). A custom embedder must
        be picklable for the featurizer to be.
    text_dim : int, default=16
        Width of the default hashing embedder.
    max_categories : int, default=64
        Vocabulary size kept per categorical column (most frequent values at fit).
    column_kinds : dict, optional
        Overrides of the inferred kind, ``{"table.column": kind}`` with kind one of
        ``"numeric"``, ``"categorical"``, ``"boolean"``, ``"text"``, ``"datetime"``
        or ``"skip"``.

    Attributes
    ----------
    columns_ : dict of str to list of ColumnSpec
        Featurized columns of each table, with frozen statistics.
    metadata_ : GraphMetadata
        Node types, edge types and feature layout, for :class:`sktve.nn.RelationalEncoder`.
    boundary_ : Timestamp or None
        The boundary used at fit.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import load_database
    >>> from sktve.graph import GraphFeaturizer
    >>> users = pd.DataFrame({"user_id": [0, 1], "country": ["fr", "de"]})
    >>> orders = pd.DataFrame({"order_id": [0, 1], "user_id": [0, 1],
    ...     "ts": pd.to_datetime(["2024-01-01", "2024-02-01"]), "amount": [9.5, 3.0]})
    >>> db = load_database({"users": users, "orders": orders}, schema={
    ...     "users": {"pkey": "user_id"},
    ...     "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}}})
    >>> graph = GraphFeaturizer().fit(db).transform(db)
    >>> graph.x_num["orders"].shape
    (2, 2)
    """

    def __init__(
        self,
        text_embedder: Callable[[list[str]], np.ndarray] | None = None,
        text_dim: int = 16,
        max_categories: int = 64,
        column_kinds: dict[str, str] | None = None,
    ) -> None:
        self.text_embedder = text_embedder
        self.text_dim = text_dim
        self.max_categories = max_categories
        self.column_kinds = column_kinds

    # ------------------------------------------------------------------ fit
    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.text_embedder is None:
            return hashing_text_embedder(texts, int(self.text_dim))
        out = np.asarray(self.text_embedder(texts), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise ValueError(
                f"text_embedder must return an array of shape (n_texts, dim); got shape "
                f"{out.shape} for {len(texts)} texts."
            )
        return out

    def fit(self, database: Database, boundary: Any = None) -> GraphFeaturizer:
        """Fit column kinds and statistics.

        Parameters
        ----------
        database : Database
        boundary : Timestamp, optional
            When given, statistics are fitted only on rows of timestamped tables with
            time <= boundary (static tables use all rows).

        Returns
        -------
        self : GraphFeaturizer
        """
        if not isinstance(database, Database):
            raise TypeError(
                f"fit expects a sktve Database (see sktve.load_database), got "
                f"{type(database).__name__}."
            )
        if int(self.max_categories) < 1:
            raise ValueError(f"max_categories must be >= 1, got {self.max_categories}.")
        if int(self.text_dim) < 1:
            raise ValueError(f"text_dim must be >= 1, got {self.text_dim}.")
        overrides = dict(self.column_kinds or {})
        allowed = {"numeric", "categorical", "boolean", "text", "datetime", "skip"}
        bad = {k: v for k, v in overrides.items() if v not in allowed}
        if bad:
            raise ValueError(f"column_kinds has unknown kinds {bad}; use one of {sorted(allowed)}.")
        self.boundary_ = pd.Timestamp(boundary) if boundary is not None else None
        boundary_ns = self.boundary_.as_unit("ns").value if self.boundary_ is not None else None

        columns: dict[str, list[ColumnSpec]] = {}
        text_width: int | None = None
        for table in database.table_names:
            frame = database.table(table)
            times = database.time_values(table)
            if boundary_ns is not None and times is not None:
                frame = frame.loc[times <= boundary_ns]
            excluded = {database.pkey(table), database.time_col(table), *database.fkeys(table)}
            specs = []
            for col in frame.columns:
                if col in excluded:
                    continue
                # Kinds are inferred from the fit rows only, like every other statistic.
                kind = overrides.get(f"{table}.{col}") or _infer_kind(
                    frame[col], int(self.max_categories)
                )
                if kind is None or kind == "skip":
                    continue
                spec = ColumnSpec(name=str(col), kind=kind)
                series = frame[col]
                if kind in ("numeric", "datetime"):
                    values = _as_float(series, kind)
                    finite = values[np.isfinite(values)]
                    if len(finite):
                        spec.mean = float(finite.mean())
                        std = float(finite.std())
                        spec.std = std if std > 1e-12 else 1.0
                    spec.width = 2
                elif kind in ("categorical", "boolean"):
                    codes, uniques = _factorize(series)
                    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
                    # Ties broken by value so the vocabulary does not depend on row order.
                    ordered = sorted(zip(uniques, counts.tolist()), key=lambda kv: (-kv[1], kv[0]))
                    spec.vocabulary = [v for v, c in ordered[: int(self.max_categories)] if c > 0]
                    spec.width = 1
                else:  # text
                    if text_width is None:
                        text_width = self._embed(["probe"]).shape[1]
                    spec.width = text_width + 1
                specs.append(spec)
            columns[table] = specs
        self.columns_ = columns
        self.schema_ = schema_of(database)
        self.metadata_ = self._build_metadata(database)
        return self

    def _build_metadata(self, database: Database) -> GraphMetadata:
        edge_types: list[EdgeType] = []
        for fk in database.foreign_keys:
            edge_types.append((fk.src_table, fk.fkey_col, fk.dst_table))
            edge_types.append((fk.dst_table, f"rev_{fk.fkey_col}", fk.src_table))
        tables = {}
        for table, specs in self.columns_.items():
            num_groups: list[int] = []
            group_names: list[str] = []
            for spec in specs:
                if spec.is_float:
                    num_groups.extend([len(group_names)] * spec.width)
                    group_names.append(spec.name)
            tables[table] = TableMeta(
                num_dim=len(num_groups),
                num_groups=num_groups,
                num_group_names=group_names,
                cat_cardinalities=[s.cardinality for s in specs if not s.is_float],
                cat_names=[s.name for s in specs if not s.is_float],
                temporal=database.time_col(table) is not None,
            )
        return GraphMetadata(
            node_types=list(database.table_names), edge_types=edge_types, tables=tables
        )

    # ------------------------------------------------------------------ transform
    def _check_fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise RuntimeError("this GraphFeaturizer is not fitted yet; call fit(database) first.")

    def _check_schema(self, database: Database) -> None:
        check_same_schema(self.schema_, database, "featurizer")
        for table, specs in self.columns_.items():
            missing = [s.name for s in specs if s.name not in database.table(table).columns]
            if missing:
                raise ValueError(
                    f"table {table!r} lacks the fitted feature columns {missing}; refit on "
                    "this database, or give one with the same columns."
                )

    def transform_table(self, database: Database, table: str) -> tuple[np.ndarray, np.ndarray]:
        """Features of one table with the frozen statistics.

        Returns
        -------
        x_num : ndarray of float32, shape (n_rows, num_dim)
        x_cat : ndarray of int64, shape (n_rows, n_categorical)
        """
        self._check_fitted()
        frame = database.table(table)
        n = len(frame)
        floats: list[np.ndarray] = []
        cats: list[np.ndarray] = []
        for spec in self.columns_[table]:
            series = frame[spec.name]
            if spec.kind in ("numeric", "datetime"):
                values = _as_float(series, spec.kind)
                missing = ~np.isfinite(values)
                scaled = np.clip((values - spec.mean) / spec.std, -_CLIP, _CLIP)
                scaled[missing] = 0.0
                floats.append(np.stack([scaled, missing.astype(np.float64)], axis=1))
            elif spec.kind in ("categorical", "boolean"):
                codes, uniques = _factorize(series)
                lookup = pd.Index(spec.vocabulary, dtype=object).get_indexer(uniques)
                lookup = np.where(lookup >= 0, lookup + 2, OTHER_INDEX).astype(np.int64)
                cats.append(np.where(codes >= 0, lookup[codes], NULL_INDEX).astype(np.int64))
            else:
                codes, uniques = _factorize(series)
                width = spec.width - 1
                # Embed each distinct text once; nulls get zeros plus the missing flag.
                emb = self._embed(uniques) if uniques else np.zeros((0, width))
                if emb.shape[1] != width:
                    raise ValueError(
                        f"text_embedder returned width {emb.shape[1]} for {table}.{spec.name}, "
                        f"but {width} at fit; use the embedder the featurizer was fitted with, "
                        "or refit."
                    )
                table_emb = np.concatenate([emb, np.zeros((1, width))]).astype(np.float32)
                null = codes < 0
                rows = table_emb[np.where(null, len(uniques), codes)]
                floats.append(np.concatenate([rows, null[:, None].astype(np.float32)], axis=1))
        x_num = (
            np.concatenate(floats, axis=1).astype(np.float32)
            if floats
            else np.zeros((n, 0), dtype=np.float32)
        )
        x_cat = np.stack(cats, axis=1) if cats else np.zeros((n, 0), dtype=np.int64)
        return np.ascontiguousarray(x_num), np.ascontiguousarray(x_cat)

    def transform(self, database: Database):
        """Build the temporal graph of ``database`` with the statistics frozen at fit.

        Parameters
        ----------
        database : Database
            The fitted database or another one with the same schema.

        Returns
        -------
        TemporalGraph
        """
        from sktve.graph.build import TemporalGraph

        self._check_fitted()
        self._check_schema(database)
        features = {t: self.transform_table(database, t) for t in database.table_names}
        return TemporalGraph.from_database(database, self.metadata_, features)

    def fit_transform(self, database: Database, boundary: Any = None):
        """``fit(database, boundary).transform(database)``."""
        return self.fit(database, boundary=boundary).transform(database)

    def feature_summary(self) -> pd.DataFrame:
        """One row per featurized column: table, column, kind, width (for inspection)."""
        self._check_fitted()
        rows = [
            {"table": t, "column": s.name, "kind": s.kind, "width": s.width}
            for t, specs in self.columns_.items()
            for s in specs
        ]
        return pd.DataFrame(rows, columns=["table", "column", "kind", "width"])
