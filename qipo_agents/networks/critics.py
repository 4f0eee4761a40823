"""Critics: an ensemble of Q-networks ``Q(s, a)`` and a state-value network ``V(s)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from qipo_agents.common.precision import float32_layer


class MLP(nn.Sequential):
    """A ReLU MLP ``in_dim -> hidden_dims... -> out_dim``: ``x (batch, in_dim) -> (batch, out_dim)``.

    Its output layer computes in float32 under bfloat16 autocast (:func:`float32_layer`).
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int):
        layers: list[nn.Module] = []
        for width in hidden_dims:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            in_dim = width
        layers.append(nn.Linear(in_dim, out_dim))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, output = self
        for layer in hidden:
            x = layer(x)
        return float32_layer(output, x)


class EnsembleLinear(nn.Module):
    """``n_members`` affine maps at once: ``x (n_members, batch, in) -> (n_members, batch, out)``.

    ``weight`` is ``(n_members, in_features, out_features)`` (each member's ``nn.Linear`` weight
    transposed) and ``bias`` ``(n_members, 1, out_features)``, so the layer is one batched matmul.

    Args:
        n_members: independent maps (the ensemble's members).
        in_features: input width.
        out_features: output width.
    """

    def __init__(self, n_members: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))

    @torch.no_grad()
    def reset_member(self, member: int) -> None:
        """Draw member ``member``'s weights as ``nn.Linear(in_features, out_features)`` does.

        The weight is drawn in ``nn.Linear``'s ``(out, in)`` layout (Kaiming-uniform with
        ``a = sqrt(5)``, i.e. ``U(±1/sqrt(in))``), then the bias ``U(±1/sqrt(in))``: the same random
        numbers in the same order as ``nn.Linear`` draws them.

        Args:
            member: index of the member to draw, in ``[0, n_members)``.
        """
        weight = torch.empty(self.out_features, self.in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.in_features)
        self.weight[member].copy_(weight.T)
        nn.init.uniform_(self.bias[member, 0], -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """Layer normalisation of each member's features, with each member's own gain and shift:
    ``x (n_members, batch, features) -> (n_members, batch, features)``.

    Args:
        n_members: ensemble members.
        features: width normalised over.
    """

    def __init__(self, n_members: int, features: int):
        super().__init__()
        self.features = features
        self.weight = nn.Parameter(torch.ones(n_members, 1, features))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, (self.features,)) * self.weight + self.bias


class QEnsemble(nn.Module):
    """``n_critics`` independent Q MLPs (QGPO: two, ``[256, 256, 256]``, ReLU), evaluated as one.

    ``forward(obs (batch, obs_dim), action (batch, action_dim))`` returns ``(n_critics, batch)``;
    :meth:`min_q` is the pessimistic minimum over the members, used wherever the critic is
    consumed (targets, support weights, best-of-N). More members make that minimum more
    pessimistic about actions they disagree on (on the local Hopper data, 4 members did not score
    better than 2: docs/benchmarks.md).

    The members' weights are stacked: layer ``l`` is an :class:`EnsembleLinear` holding every
    member's weight, so a forward pass is one batched matmul per layer instead of one matmul per
    layer and member. Each member starts from the weights that its own ``nn.Linear`` MLP would
    draw from the same random state (members one after another, each layer by layer).

    ``layer_norm`` normalises each hidden layer's pre-activations (gain and shift per member) as
    ReBRAC's critic does (Tarasov et al., 2023): every hidden feature stays of unit scale however
    far an action lies from the data, so ``Q`` grows at most linearly in the last layer's weights
    there instead of with the input's norm. It draws no random numbers: the linear layers start
    from the same weights with or without it.

    Args:
        obs_dim: observation size.
        action_dim: action size.
        hidden_dims: widths of each member's hidden layers.
        n_critics: members (2: the twin critic).
        layer_norm: a :class:`EnsembleLayerNorm` before each hidden ReLU.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dims: Sequence[int] = (256, 256, 256),
        n_critics: int = 2,
        layer_norm: bool = False,
    ):
        super().__init__()
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        self.n_critics = n_critics
        widths = [obs_dim + action_dim, *hidden_dims, 1]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_critics, in_width, out_width) for in_width, out_width in zip(widths[:-1], widths[1:])
        )
        self.norms = nn.ModuleList(EnsembleLayerNorm(n_critics, width) for width in hidden_dims) if layer_norm else None
        for member in range(n_critics):
            for layer in self.layers:
                layer.reset_member(member)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        h = x.expand(self.n_critics, *x.shape)
        *hidden, output = self.layers
        for index, layer in enumerate(hidden):
            h = layer(h)
            if self.norms is not None:
                h = self.norms[index](h)
            h = torch.relu(h)
        return float32_layer(output, h).squeeze(-1)

    def min_q(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``min_k Q_k(obs, action)``: ``(batch,)``."""
        return self(obs, action).min(dim=0).values


class ValueNetwork(nn.Module):
    """State value ``V(obs (batch, obs_dim)) -> (batch,)`` (used by the expectile critic)."""

    def __init__(self, obs_dim: int, hidden_dims: Sequence[int] = (256, 256, 256)):
        super().__init__()
        self.net = MLP(obs_dim, hidden_dims, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)
