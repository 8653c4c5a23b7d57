"""Neural modules: column encoders, relative-time encoding, hetero GraphSAGE, the encoder."""

from sktve.nn._alloc import keep_freed_memory
from sktve.nn.encoders import RelativeTimeEncoder, TableEncoder
from sktve.nn.model import RelationalEncoder, corrupt_features
from sktve.nn.sage import HeteroSAGELayer, recency_means, scatter_mean

__all__ = [
    "HeteroSAGELayer",
    "RelationalEncoder",
    "RelativeTimeEncoder",
    "TableEncoder",
    "corrupt_features",
    "keep_freed_memory",
    "recency_means",
    "scatter_mean",
]
