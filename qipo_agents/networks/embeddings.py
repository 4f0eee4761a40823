"""Embeddings of scalar inputs (diffusion time, guidance scale) for field networks."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of a scalar: ``[sin(2π s W), cos(2π s W)]`` with fixed ``W ~ N(0, scale²)``.

    QGPO's time embedding (32 features, scale 30). Input ``(batch,)``, output ``(batch, n_features)``.
    """

    def __init__(self, n_features: int = 32, scale: float = 30.0):
        super().__init__()
        if n_features % 2:
            raise ValueError(f"n_features must be even, got {n_features}")
        self.register_buffer("frequencies", torch.randn(n_features // 2) * scale)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        angles = 2.0 * math.pi * s.unsqueeze(-1) * self.frequencies
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class ScalarEmbedding(nn.Sequential):
    """Fourier features followed by a linear layer: ``(batch,) -> (batch, n_features)``."""

    def __init__(self, n_features: int = 32, scale: float = 30.0):
        super().__init__(GaussianFourierProjection(n_features, scale), nn.Linear(n_features, n_features))
