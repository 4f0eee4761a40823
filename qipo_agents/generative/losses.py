"""Energy-weighted training losses (paper, Theorem 4.3 and eq. 4.4).

The ordinary conditional flow-matching (OT path) or denoising (VP path) loss, with each
sample's squared error multiplied by its energy weight. The path decides what ``x_t`` and the
regression target are, so one function serves both: energy-weighted flow matching (EFM) and
energy-weighted diffusion (ED).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from qipo_agents.generative.paths import ProbabilityPath

ConditionalField = Callable[..., torch.Tensor]
"""``model(x_t, t, condition=None, guidance=None) -> prediction`` with the shapes of ``x_t``."""


def energy_weighted_loss(
    model: ConditionalField,
    path: ProbabilityPath,
    data: torch.Tensor,
    weights: torch.Tensor | None = None,
    condition: torch.Tensor | None = None,
    guidance: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``mean_i w_i * || model(x_t^i, t_i, c_i) - target_i ||^2`` for one minibatch.

    Args:
        model: the field network.
        path: the probability path (:class:`~qipo_agents.generative.paths.OptimalTransportPath`
            gives EFM, :class:`~qipo_agents.generative.paths.VPPath` gives ED).
        data: clean samples ``(batch, dim)``.
        weights: energy weights ``(batch,)`` from
            :func:`~qipo_agents.generative.weights.energy_weights` (mean 1 per group); ``None``
            trains the unweighted model of the data distribution.
        condition: optional conditioning input ``(batch, cond_dim)`` (states in RL).
        guidance: optional guidance scale fed to a beta-conditioned network, ``(batch,)``.
        generator: optional random generator for the noise and the times.

    Returns:
        The scalar loss; the squared error is summed over ``dim`` and averaged over the batch.
    """
    noise = torch.randn(data.shape, device=data.device, dtype=data.dtype, generator=generator)
    t = path.sample_times(data.shape[0], data.device, generator=generator)
    x_t, target = path.training_pair(data, noise, t)
    prediction = model(x_t, t, condition=condition, guidance=guidance)
    squared_error = ((prediction - target) ** 2).sum(dim=-1)
    if weights is not None:
        squared_error = weights.detach() * squared_error
    return squared_error.mean()
