"""Neural networks (``nn.Module`` only): embeddings, field backbones, critics."""

from qipo_agents.networks.critics import QEnsemble, ValueNetwork
from qipo_agents.networks.embeddings import GaussianFourierProjection, ScalarEmbedding
from qipo_agents.networks.field import FieldNetwork, ResidualBlock

__all__ = [
    "FieldNetwork",
    "GaussianFourierProjection",
    "ResidualBlock",
    "ScalarEmbedding",
    "QEnsemble",
    "ValueNetwork",
]
