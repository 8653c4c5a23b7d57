"""sktve: Task Vector Estimation pre-training for relational databases, in scikit-learn.

The heavy modules (torch for the pretrainer, DuckDB for the aggregates) load on first
use, so ``import sktve`` and ``sktve.load_database`` stay light.
"""

from importlib import import_module
from typing import Any

from sktve.database import Database, DatabaseNotAttachedError, load_database

__version__ = "0.1.0"

_LAZY = {
    "TVEPretrainer": "sktve.pretrainer",
    "AggregateFeatures": "sktve.aggregates",
    "TVEClassifier": "sktve.finetune",
    "TVERegressor": "sktve.finetune",
    "task_vectors": "sktve.targets",
    "TaskVectorScaler": "sktve.targets",
    "enumerate_paths": "sktve.targets",
    "stale_rows": "sktve.staleness",
}

__all__ = [
    "AggregateFeatures",
    "Database",
    "DatabaseNotAttachedError",
    "TVEClassifier",
    "TVEPretrainer",
    "TVERegressor",
    "TaskVectorScaler",
    "__version__",
    "enumerate_paths",
    "load_database",
    "stale_rows",
    "task_vectors",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sktve' has no attribute {name!r}")
