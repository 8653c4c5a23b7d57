"""SQL generation for path aggregates (no execution here; see :mod:`sktve.targets.engine`).

The generator writes plain SQL against views prepared by the caller:

- ``__tve_<table>``: a table's key columns, the aggregated columns (numeric and boolean
  as DOUBLE, categorical as VARCHAR), ``__t`` (time as BIGINT nanoseconds, timestamped
  tables);
- ``__pairs(pair_id, entity, cutoff, cutoff_id)`` with ``cutoff`` in nanoseconds;
- ``__cutoffs(cutoff_id, cutoff)``: the distinct cutoffs (ids in increasing time);
- ``__tve_<table>__w``: a first-hop table's view plus ``__i0, __i1``, the range of cutoff
  ids whose window holds the row (for the ``"cutoff"`` join strategy).

Times are integers so that every engine compares them exactly (no timestamp precision or
time zone rules). Windows are ``(cutoff + lo, cutoff + hi]`` on the first table of a path:
``lo=0, hi=w`` for task vectors (the future), ``lo=-w, hi=0`` for history features.
Later timestamped tables on a path never see rows after ``cutoff + hi``.

Every generator takes a ``dialect``: ``"duckdb"`` (the default) or ``"spark"`` (Spark SQL
4). The statements are the same up to four points, and only those differ:

- identifiers: in double quotes (DuckDB) or in backquotes (Spark), see :func:`quote`;
- the mode (ties to the smallest value): a sorted histogram in DuckDB, whose ``mode()``
  breaks ties arbitrarily, and ``mode(x, true)`` (deterministic) in Spark, see
  :func:`mode_expression`;
- the sibling partials table: ``CREATE OR REPLACE TEMP TABLE`` (DuckDB) or
  ``CREATE OR REPLACE TEMPORARY VIEW`` (Spark has no temporary tables), see
  :func:`sibling_partials_sql`;
- the ``"cutoff"`` join's range of cutoff ids: ``unnest(range(a, b))`` (DuckDB) or
  ``explode(sequence(a, b - 1))`` (Spark), see :func:`_window_join`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sktve.targets.paths import AggregateSpec, PathSpec

__all__ = [
    "DIALECTS",
    "check_dialect",
    "first_time_sql",
    "mode_expression",
    "path_query_sql",
    "quote",
    "sibling_partials_sql",
    "view_name",
]


#: SQL dialects the generator writes.
DIALECTS = ("duckdb", "spark")


def check_dialect(dialect: str) -> str:
    """``dialect`` if the generator knows it, else a ValueError naming the known ones."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {list(DIALECTS)}, got {dialect!r}.")
    return dialect


def quote(identifier: str, dialect: str = "duckdb") -> str:
    """Quote an SQL identifier: double quotes (DuckDB) or backquotes (Spark), inner ones doubled."""
    q = "`" if check_dialect(dialect) == "spark" else '"'
    return q + str(identifier).replace(q, q + q) + q


def view_name(table: str, dialect: str = "duckdb") -> str:
    return quote(f"__tve_{table}", dialect)


def mode_expression(value: str, dialect: str = "duckdb") -> str:
    """Most frequent non-null value; ties go to the smallest value in sort order.

    DuckDB's ``mode()`` picks an arbitrary value on ties, so the histogram's entries are
    sorted by (-count, value) and the first is taken. Spark 4's ``mode(x, true)`` is
    deterministic and returns the smallest of the tied values.
    """
    if check_dialect(dialect) == "spark":
        return f"mode({value}, true)"
    return (
        f"list_sort(list_transform(map_entries(histogram({value})), lambda e: "
        f"struct_pack(n := -CAST(e.value AS BIGINT), v := e.key)))[1].v"
    )


def _floor_div(value: str, divisor: int, dialect: str) -> str:
    """Exact floor division of a BIGINT expression (both engines truncate toward zero)."""
    remainder = f"((({value}) % {divisor}) + {divisor}) % {divisor}"
    op = "DIV" if dialect == "spark" else "//"
    return f"((({value}) - {remainder}) {op} {divisor})"


def _cutoff_buckets(lo: int, hi: int, dialect: str) -> str:
    """``__cutoffs`` with ``__b``, each bucket (of width ``hi - lo``) its window overlaps.

    Row times ``t`` in ``(c + lo, c + hi]`` have ``t - 1`` in ``[c + lo, c + hi - 1]``,
    whose buckets run from that of ``c + lo`` to that of ``c + hi - 1`` (one or two).
    """
    width = hi - lo
    first = _floor_div(f"cutoff + ({lo})", width, dialect)
    last = _floor_div(f"cutoff + ({hi - 1})", width, dialect)
    buckets = (
        f"explode(sequence({first}, {last}))"
        if dialect == "spark"
        else f"unnest(range({first}, {last} + 1))"
    )
    return f"(SELECT cutoff_id, cutoff, {buckets} AS __b FROM __cutoffs)"


def _window_join(
    path: PathSpec, lo: int, hi: int, strategy: str, dialect: str, pairs: bool = True
) -> str:
    """FROM clause joining the pairs to the first-hop rows in their window.

    ``pairs=False`` (bucket join only) leaves out ``__pairs``: the cutoffs come in as ``p``
    and each row's entity is its first-hop key.
    """
    first = path.hops[0]
    fk = f"f.{quote(first.fkey, dialect)}"
    if strategy == "cutoff":
        # Each row carries the range [__i0, __i1) of sorted cutoff ids whose window holds
        # it (computed by the caller with a binary search); unnesting it turns the range
        # join into an equi-join on (cutoff_id, entity). Cheap when many entities share few
        # cutoffs, where a hash join on the entity alone would meet every cutoff of the
        # entity before filtering.
        ids = (
            "explode(sequence(__i0, __i1 - 1))"  # Spark's sequence includes its end
            if dialect == "spark"
            else "unnest(range(__i0, __i1))"
        )
        return (
            f"FROM (SELECT *, {ids} AS __cid "
            f"FROM {view_name(first.table + '__w', dialect)} WHERE __i1 > __i0) f "
            f"JOIN __pairs p ON p.cutoff_id = f.__cid AND p.entity = {fk}"
        )
    if strategy == "bucket":
        # An equi-join on time buckets as wide as the window: a window (c + lo, c + hi]
        # overlaps at most two buckets, so each row meets only the few cutoffs of its bucket
        # (about twice those whose window holds it), whatever the number of cutoffs, and
        # then the pairs on (cutoff_id, entity). Everything is in SQL, so it also serves
        # engines where the caller cannot compute the ``__w`` view's cutoff-id ranges.
        width = hi - lo
        if width <= 0:
            raise ValueError(f"the bucket join needs hi > lo, got lo={lo}, hi={hi}.")
        c = "c" if pairs else "p"
        sql = (
            f"FROM {view_name(first.table, dialect)} f "
            f"JOIN {_cutoff_buckets(lo, hi, dialect)} {c} "
            f"ON {c}.__b = {_floor_div('f.__t - 1', width, dialect)} "
            f"AND f.__t > {c}.cutoff + ({lo}) AND f.__t <= {c}.cutoff + ({hi})"
        )
        if not pairs:
            return sql + f" AND {fk} IS NOT NULL"
        return sql + f" JOIN __pairs p ON p.cutoff_id = c.cutoff_id AND p.entity = {fk}"
    if not pairs:
        raise ValueError(f"only the bucket join runs without __pairs, not {strategy!r}.")
    # Hash-join on the entity, then filter by time: cheap when each entity has few cutoffs.
    return (
        f"FROM __pairs p JOIN {view_name(first.table, dialect)} f "
        f"ON {fk} = p.entity AND f.__t > p.cutoff + ({lo}) AND f.__t <= p.cutoff + ({hi})"
    )


def _second_join(
    path: PathSpec, hi: int, temporal: bool, partials: str | None, dialect: str
) -> str:
    if path.kind == "direct":
        return ""
    hop = path.hops[1]
    if path.kind == "dimension":
        # The D row each first-hop row references (its primary key is the fkey's target).
        # Views expose each table's primary key as __pkey, so no schema lookups are needed.
        cond = f"x.__pkey = f.{quote(hop.fkey, dialect)}"
    elif path.kind == "child":
        cond = f"x.{quote(hop.fkey, dialect)} = f.__pkey"
    else:  # sibling: partial aggregates per first-hop row
        return f"JOIN {partials} s ON s.__k = f.{quote(hop.fkey, dialect)} AND s.__t = f.__t"
    if temporal:
        cond += f" AND x.__t <= p.cutoff + ({hi})"
    return f"JOIN {view_name(hop.table, dialect)} x ON {cond}"


def _plain_aggregate(spec: AggregateSpec, alias: str, dialect: str) -> str:
    if spec.column is None:
        return "CAST(count(*) AS BIGINT)"
    v = f"{alias}.{quote(spec.column, dialect)}"
    return {
        "mean": f"avg({v})",
        "min": f"min({v})",
        "max": f"max({v})",
        "sum": f"coalesce(sum({v}), 0.0)",
        "std": f"stddev_pop({v})",
        "count": f"CAST(count({v}) AS BIGINT)",
        "nunique": f"CAST(count(DISTINCT {v}) AS BIGINT)",
        "mode": mode_expression(v, dialect),
    }[spec.agg]


def _sibling_aggregate(spec: AggregateSpec, index: dict[str, int]) -> str:
    if spec.column is None:
        return "CAST(coalesce(sum(s.__n), 0) AS BIGINT)"
    i = index[spec.column]
    n = f"CAST(sum(s.c{i}) AS DOUBLE)"
    total = f"CAST(sum(s.s{i}) AS DOUBLE)"
    mean = f"({total} / nullif({n}, 0))"
    var = f"(CAST(sum(s.q{i}) AS DOUBLE) / nullif({n}, 0) - {mean} * {mean})"
    return {
        "mean": mean,
        "min": f"min(s.mn{i})",
        "max": f"max(s.mx{i})",
        "sum": f"coalesce({total}, 0.0)",
        # Population std from sums of squares, clamped at 0 against rounding.
        # (greatest() skips NULLs, hence the explicit NULL case for no values.)
        "std": f"CASE WHEN {var} IS NULL THEN NULL ELSE sqrt(greatest({var}, 0)) END",
        "count": f"CAST(coalesce(sum(s.c{i}), 0) AS BIGINT)",
    }[spec.agg]


def path_query_sql(
    path: PathSpec,
    aggregates: Sequence[AggregateSpec],
    *,
    lo: int,
    hi: int,
    strategy: str = "entity",
    second_temporal: bool = False,
    partials: str | None = None,
    dialect: str = "duckdb",
    keys: str = "pair_id",
) -> tuple[str, list[str]]:
    """One ``GROUP BY pair_id`` query computing all aggregates of one path and window.

    Parameters
    ----------
    path : PathSpec
    aggregates : list of AggregateSpec
        Aggregates of this path to compute (their order is the column order).
    lo, hi : int
        Window bounds relative to the cutoff, in nanoseconds: ``(cutoff+lo, cutoff+hi]``.
    strategy : {"entity", "cutoff", "bucket"}
        Join order for the windowed first hop (see :func:`_window_join`): pairs by entity
        then time, a caller-made ``__w`` view of cutoff-id ranges, or time buckets of the
        window's width (all in SQL).
    second_temporal : bool
        Whether the second table of a 2-hop path has a time column (rows after
        ``cutoff + hi`` are then excluded).
    partials : str, optional
        Name of the sibling partials table (sibling paths).
    dialect : {"duckdb", "spark"}, default="duckdb"
        SQL dialect of the statement (see the module docstring).
    keys : {"pair_id", "cutoff_entity"}, default="pair_id"
        The group keys and first result columns: ``pair_id``, or ``cutoff_id, entity``.
        With ``"cutoff_entity"`` the bucket join does not join ``__pairs`` at all: every
        (entity, cutoff) with a row in its window is grouped, and the caller keeps the
        pairs it wants (an active pair always has such rows, so with the active pairs
        nothing is wasted, and a join as large as the rows is saved).

    Returns
    -------
    sql : str
    aliases : list of str
        Result column aliases, in the order of ``aggregates`` (``a0``, ``a1``, ...).
    """
    check_dialect(dialect)
    if keys not in ("pair_id", "cutoff_entity"):
        raise ValueError(f"keys must be 'pair_id' or 'cutoff_entity', got {keys!r}.")
    pairs = not (keys == "cutoff_entity" and strategy == "bucket")
    aliases = [f"a{i}" for i in range(len(aggregates))]
    if path.kind == "sibling":
        index = {c.name: i for i, c in enumerate(path.columns)}
        exprs = [_sibling_aggregate(a, index) for a in aggregates]
    else:
        alias = "f" if path.kind == "direct" else "x"
        exprs = [_plain_aggregate(a, alias, dialect) for a in aggregates]
    if keys == "pair_id":
        group = ["p.pair_id"]
        names = ["p.pair_id"]
    else:
        entity = "p.entity" if pairs else f"f.{quote(path.hops[0].fkey, dialect)}"
        group = ["p.cutoff_id", entity]
        names = ["p.cutoff_id AS cutoff_id", f"{entity} AS entity"]
    select = ",\n  ".join([*names, *(f"{e} AS {a}" for e, a in zip(exprs, aliases))])
    sql = (
        f"SELECT {select}\n{_window_join(path, lo, hi, strategy, dialect, pairs)}\n"
        f"{_second_join(path, hi, second_temporal, partials, dialect)}\n"
        f"GROUP BY {', '.join(group)}"
    )
    return sql, aliases


def sibling_partials_sql(
    path: PathSpec, lookback: int, target: str, dialect: str = "duckdb"
) -> str:
    """Partial aggregates of sibling rows per (key, time) of first-hop rows (cutoff free).

    For a first-hop row f of path ``entity <- F -> X <- G``, the sibling rows are the G
    rows with ``G.key = f.key`` and time in ``(f.time - lookback, f.time]`` (f itself
    included when G is F). G is first grouped by (key, time); running count, sum, sum of
    squares, min and max over those groups are then taken with window functions ordered by
    time, evaluated at the distinct (key, time) of F's rows. The cost is linear in the
    number of distinct (key, time) values, never in the number of (F, G) row pairs.
    The result has columns ``__k, __t, __n`` and per column i ``c{i}, s{i}, q{i}, mn{i},
    mx{i}`` (as the column kind needs). DuckDB materialises it as a temporary table; Spark,
    which has none, gets a temporary view (evaluated by the one query that reads it when
    ``lookback`` is the window, the default).
    """
    create = (
        "CREATE OR REPLACE TEMPORARY VIEW"
        if check_dialect(dialect) == "spark"
        else "CREATE OR REPLACE TEMP TABLE"
    )
    first, via, sib = path.hops
    key_f, key_g = quote(via.fkey, dialect), quote(sib.fkey, dialect)
    frame = (
        "PARTITION BY __k ORDER BY __t RANGE BETWEEN "
        f"{max(lookback - 1, 0)} PRECEDING AND CURRENT ROW"
    )
    group_exprs = ["count(*) AS __n"]
    win_exprs = ["CAST(sum(__n) OVER w AS BIGINT) AS __n"]
    for i, c in enumerate(path.columns):
        v = quote(c.name, dialect)
        group_exprs.append(f"count({v}) AS c{i}")
        win_exprs.append(f"CAST(sum(c{i}) OVER w AS BIGINT) AS c{i}")
        if c.kind in ("numeric", "boolean"):
            group_exprs.append(f"sum({v}) AS s{i}")
            win_exprs.append(f"sum(s{i}) OVER w AS s{i}")
        if c.kind == "numeric":
            group_exprs += [f"sum({v} * {v}) AS q{i}", f"min({v}) AS mn{i}", f"max({v}) AS mx{i}"]
            win_exprs += [
                f"sum(q{i}) OVER w AS q{i}",
                f"min(mn{i}) OVER w AS mn{i}",
                f"max(mx{i}) OVER w AS mx{i}",
            ]
    value_names = [e.rsplit(" AS ", 1)[1] for e in group_exprs]
    nulls = ", ".join(f"NULL AS {name}" for name in value_names)
    group_sql = ",\n    ".join(group_exprs)
    win_sql = ",\n  ".join(win_exprs)
    return (
        f"{create} {target} AS\n"
        f"WITH g AS (\n  SELECT {key_g} AS __k, __t,\n    {group_sql}\n"
        f"  FROM {view_name(sib.table, dialect)} WHERE {key_g} IS NOT NULL GROUP BY 1, 2\n),\n"
        f"m AS (\n  SELECT DISTINCT {key_f} AS __k, __t FROM {view_name(first.table, dialect)} "
        f"WHERE {key_f} IS NOT NULL\n),\n"
        f"u AS (\n  SELECT __k, __t, 1 AS __g, {', '.join(value_names)} FROM g\n"
        f"  UNION ALL\n  SELECT __k, __t, 0 AS __g, {nulls} FROM m\n)\n"
        f"SELECT __k, __t, {', '.join(value_names)} FROM (\n"
        f"  SELECT __k, __t, __g,\n  {win_sql}\n  FROM u WINDOW w AS ({frame})\n) z "
        f"WHERE __g = 0"
    )


def first_time_sql(edges: Sequence[tuple[str, str]], dialect: str = "duckdb") -> str:
    """Earliest first-hop time per entity over all direct paths (for the active universe)."""
    q = [quote(col, dialect) for _, col in edges]
    parts = [
        f"SELECT {qc} AS entity, min(__t) AS t0 FROM {view_name(table, dialect)} "
        f"WHERE {qc} IS NOT NULL GROUP BY 1"
        for (table, _), qc in zip(edges, q)
    ]
    return f"SELECT entity, min(t0) AS t0 FROM (\n{' UNION ALL '.join(parts)}\n) u GROUP BY 1"
