"""sktve: Task Vector Estimation pre-training for relational databases, in scikit-learn."""

from sktve.database import Database, DatabaseNotAttachedError, load_database

__version__ = "0.1.0"

__all__ = ["Database", "DatabaseNotAttachedError", "load_database", "__version__"]
