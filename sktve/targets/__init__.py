"""Task vectors: schema paths -> generated SQL -> DuckDB or Spark -> wide frame -> scaler.

>>> from sktve.targets import task_vectors, TaskVectorScaler, enumerate_paths
"""

from sktve.targets.engine import DuckDBEngine, SparkEngine
from sktve.targets.paths import AggregateSpec, ColumnSpec, Hop, PathSpec, enumerate_paths
from sktve.targets.scaler import TaskVectorScaler
from sktve.targets.spark_source import SparkDatabase
from sktve.targets.vectors import (
    DEFAULT_CHUNK_PAIRS,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_WRITE_CHUNK_ROWS,
    task_vectors,
    window_label,
    write_task_vectors,
)

__all__ = [
    "DEFAULT_CHUNK_PAIRS",
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_WRITE_CHUNK_ROWS",
    "AggregateSpec",
    "ColumnSpec",
    "DuckDBEngine",
    "Hop",
    "PathSpec",
    "SparkDatabase",
    "SparkEngine",
    "TaskVectorScaler",
    "enumerate_paths",
    "task_vectors",
    "window_label",
    "write_task_vectors",
]
