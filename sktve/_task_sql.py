"""The last step of the synthetic schemas' labelling queries, in one place.

Every forecast task of :mod:`sktve.datasets`, :mod:`sktve.synthetic_library` and
:mod:`sktve.synthetic_bank` is a DuckDB query with two CTEs, ``active`` (the entities
scored at each cutoff) and ``future`` (what each does in the window after it), and ends by
keeping every active row, labelled from its ``future`` row or from its absence.
"""

from __future__ import annotations


def label_select(entity_col: str, label: str, name: str) -> str:
    """The final ``SELECT``: each active (cutoff, entity) row with its label.

    Parameters
    ----------
    entity_col : str
        The entity's key column in both CTEs.
    label : str
        A SQL expression over ``f``, the entity's ``future`` row (all NULL when nothing
        happened in the window), e.g. ``"CAST(COALESCE(f.spend, 0.0) AS DOUBLE)"``.
    name : str
        The label column's name.

    Returns
    -------
    str
        SQL that follows the CTEs; it holds no ``{...}`` placeholders of its own.
    """
    return (
        f"SELECT a.timestamp AS timestamp, a.{entity_col} AS {entity_col},\n"
        f"       {label} AS {name}\n"
        "FROM active a\n"
        f"LEFT JOIN future f ON f.timestamp = a.timestamp AND f.{entity_col} = a.{entity_col}"
    )
