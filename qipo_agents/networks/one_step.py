"""One-step policy networks ``g(s, z) -> a``: an action in one evaluation from a state and a noise.

Two students of the multi-step sampler's map from noise to action
(:class:`~qipo_agents.qipo.distillation.OneStepDistillation`):

* :class:`OneStepField` (``one_step_architecture="field"``, the default): a copy of the policy's
  field network read once at the noise end of its path, ``a = z + f(z, t_noise | s)``. Copied from
  the teacher when the distillation starts, it begins as the teacher's own one-step solve and
  only learns the correction to it, with the teacher's features of the state.
* :class:`OneStepActor` (``"mlp"``): a plain ReLU MLP over ``(s, z)``, trained from scratch.

Distilled from the same QIPOFlow agent on the same pairs (Walker2d expert data, 3 000 steps), the
field student's squared error was 0.37 % of the sampler's action variance and the MLP's 4.4 %
(``docs/benchmarks.md``, "One-step acting").
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from qipo_agents.networks.critics import MLP
from qipo_agents.networks.field import FieldNetwork

ONE_STEP_ARCHITECTURES = ("field", "mlp")


class OneStepActor(nn.Module):
    """A ReLU MLP over the concatenated ``(observation, noise)``.

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
        self.net = MLP(obs_dim + action_dim, hidden_dims, action_dim)

    def forward(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([observation, noise], dim=-1))

    def initialise_from(self, teacher: FieldNetwork) -> None:
        """Nothing to take from the teacher: the MLP learns the map from scratch."""


class OneStepField(nn.Module):
    """``a = z + f(z, t_noise | s, guidance)``: the field network read once at the path's noise end.

    Under the OT path (``t_noise = 0``) this is exactly one Euler step of the flow over ``[0, 1]``
    when ``f`` is the teacher's field, so the student starts from the teacher's one-step solve.

    Args:
        field: a field network of the teacher's shape (copied; the copy is trained).
        noise_time: the path's time of pure noise (``ProbabilityPath.noise_time``).
        guidance: the guidance scale fed to a guidance-conditioned field (ignored otherwise).

    Shapes: ``observation (batch, obs_dim)``, ``noise (batch, action_dim)``; output
    ``(batch, action_dim)``, unclipped.
    """

    def __init__(self, field: FieldNetwork, noise_time: float, guidance: float | None = None):
        super().__init__()
        self.field = copy.deepcopy(field).requires_grad_(True)
        self.action_dim = field.x_dim
        self.noise_time = float(noise_time)
        self.guidance = None if field.guidance_max is None else float(guidance)

    def forward(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        t = torch.full_like(noise[:, 0], self.noise_time)
        guidance = None if self.guidance is None else torch.full_like(noise[:, 0], self.guidance)
        return noise + self.field(noise, t, condition=observation, guidance=guidance)

    def initialise_from(self, teacher: FieldNetwork) -> None:
        """Copy the teacher's weights: the student starts as the teacher's one-step solve."""
        self.field.load_state_dict(teacher.state_dict())
