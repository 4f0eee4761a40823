"""Critics: an ensemble of Q-networks ``Q(s, a)`` and a state-value network ``V(s)``."""

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


class QEnsemble(nn.Module):
    """``n_critics`` independent Q MLPs (QGPO: two, ``[256, 256, 256]``, ReLU).

    ``forward(obs (batch, obs_dim), action (batch, action_dim))`` returns one ``(batch,)`` tensor
    per member; :meth:`min_q` is the pessimistic minimum over the members, used wherever the critic
    is consumed (targets, support weights, best-of-N). More members make that minimum more
    pessimistic about actions they disagree on (on the local Hopper data, 4 members did not score
    better than 2: docs/benchmarks.md). The members are named ``q1 ... qK``, so a two-member
    ensemble is the classic twin critic and loads the twin critic's saved weights.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int] = (256, 256, 256), n_critics: int = 2):
        super().__init__()
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        self.n_critics = n_critics
        for index in range(1, n_critics + 1):
            self.add_module(f"q{index}", mlp(obs_dim + action_dim, hidden_dims, 1))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = torch.cat([obs, action], dim=-1)
        return tuple(member(x).squeeze(-1) for member in self.children())

    def min_q(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.stack(self(obs, action)).min(dim=0).values


class ValueNetwork(nn.Module):
    """State value ``V(obs (batch, obs_dim)) -> (batch,)`` (used by the expectile critic)."""

    def __init__(self, obs_dim: int, hidden_dims: Sequence[int] = (256, 256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)
