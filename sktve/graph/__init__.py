"""Heterogeneous temporal graph of a database and its vectorised temporal neighbour sampler.

- :class:`GraphFeaturizer` fits per-table column statistics (on rows up to a boundary)
  and builds a :class:`TemporalGraph`;
- :class:`TemporalNeighborSampler` samples disjoint per-seed subgraphs that only reach
  rows with time <= the seed's time, into a :class:`SampledBatch` for
  :class:`sktve.nn.RelationalEncoder`.
"""

from sktve.graph.build import Adjacency, NeighborLists, TemporalGraph
from sktve.graph.features import (
    ColumnSpec,
    GraphFeaturizer,
    GraphMetadata,
    TableMeta,
    hashing_text_embedder,
)
from sktve.graph.sampler import SampledBatch, TemporalNeighborSampler

__all__ = [
    "Adjacency",
    "ColumnSpec",
    "GraphFeaturizer",
    "GraphMetadata",
    "NeighborLists",
    "SampledBatch",
    "TableMeta",
    "TemporalGraph",
    "TemporalNeighborSampler",
    "hashing_text_embedder",
]
