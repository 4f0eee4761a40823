"""Critics: twin Q-networks ``Q(s, a)`` and a state-value network ``V(s)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int) -> nn.Sequential:
    """A ReLU MLP ``in_dim -> hidden_dims... -> out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class TwinQNetwork(nn.Module):
    """Two independent Q MLPs (QGPO: ``[256, 256, 256]``, ReLU).

    ``forward(obs (batch, obs_dim), action (batch, act_dim)) -> (q1, q2)``, each ``(batch,)``;
    :meth:`min_q` is the pessimistic ``min(q1, q2)`` used when the critic is consumed.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int] = (256, 256, 256)):
        super().__init__()
        self.q1 = mlp(obs_dim + action_dim, hidden_dims, 1)
        self.q2 = mlp(obs_dim + action_dim, hidden_dims, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self(obs, action))


class ValueNetwork(nn.Module):
    """State value ``V(obs (batch, obs_dim)) -> (batch,)`` (used by the expectile critic)."""

    def __init__(self, obs_dim: int, hidden_dims: Sequence[int] = (256, 256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)
