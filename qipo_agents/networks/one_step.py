"""The one-step policy network ``g(s, z) -> a``: an action in one evaluation from a state and a noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qipo_agents.networks.critics import mlp


class OneStepActor(nn.Module):
    """A ReLU MLP over the concatenated ``(observation, noise)``.

    Trained by :class:`~qipo_agents.qipo.distillation.OneStepDistillation` to reproduce the
    multi-step sampler's map from its starting noise to the action it reaches.

    Args:
        obs_dim: observation size.
        action_dim: action size (and noise size).
        hidden_dims: hidden widths.

    Shapes: ``observation (batch, obs_dim)``, ``noise (batch, action_dim)``; output
    ``(batch, action_dim)``, unclipped.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int] = (256, 256, 256)):
        super().__init__()
        self.action_dim = action_dim
        self.net = mlp(obs_dim + action_dim, hidden_dims, action_dim)

    def forward(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([observation, noise], dim=-1))
