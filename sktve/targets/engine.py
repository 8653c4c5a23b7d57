"""Executors for the generated SQL.

An engine has three methods: ``register(name, frame)`` exposes a pandas frame as a view,
``execute(statements)`` runs SQL statements in order and returns the result of the last
one as a pandas DataFrame, and ``close()``. The generator in :mod:`sktve.targets.sql`
never touches an engine, so another engine (e.g. Spark SQL through pyspark, for databases
that do not fit one machine) can run the same statements.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["DuckDBEngine"]


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
