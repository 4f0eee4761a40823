"""Energy weights: the self-normalised importance weights of energy-weighted training.

For a group of ``n`` samples ``x_1..x_n ~ p`` with energies ``E(x_i)``, the weight
``w_i = n * softmax_i(-beta * E(x_i))`` turns an expectation under ``p`` into one under the
tilted target ``q(x) ∝ p(x) exp(-beta E(x))``: the softmax's denominator is the Monte-Carlo
estimate of the normaliser ``E_p[exp(-beta E)]`` (paper, eq. 4.2 and Theorem 4.3). The factor
``n`` keeps the mean weight at 1 so the loss scale does not depend on the group size.

Everything is computed in log space (``logsumexp``), so ``beta * |E|`` in the thousands neither
overflows nor turns into NaN.
"""

from __future__ import annotations

import torch


def energy_weights(energies: torch.Tensor, beta: float | torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Normalised energy weights ``n * softmax(-beta * E)`` along ``dim``.

    Args:
        energies: energies ``E``, any shape; the group runs along ``dim`` (a batch for
            unconditional data, the support actions of one state in RL, where ``E = -Q``).
        beta: inverse temperature (guidance scale), a float or a tensor broadcastable against
            ``energies`` (e.g. one ``beta`` per group).
        dim: the group dimension.

    Returns:
        Weights of the same shape as ``energies``; non-negative, mean 1 along ``dim``.
    """
    if not torch.isfinite(energies).all():
        raise ValueError(
            "energies contain NaN or inf; an unstable energy (or critic) produced them — "
            "check its training before weighting samples by it"
        )
    logits = -beta * energies
    log_w = logits - torch.logsumexp(logits, dim=dim, keepdim=True)
    return log_w.exp() * energies.shape[dim]


def effective_sample_size(weights: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Kish's effective sample size ``1 / sum_i p_i^2`` with ``p = w / sum(w)`` along ``dim``.

    Equals the group size for uniform weights and 1 when a single sample holds all the mass:
    the diagnostic of how many samples the energy weighting really trains on.
    """
    p = weights / weights.sum(dim=dim, keepdim=True)
    return 1.0 / (p**2).sum(dim=dim)


def trust_region_beta(
    energies: torch.Tensor, beta: float, min_effective_fraction: float, dim: int = -1, n_bisections: int = 40
) -> torch.Tensor:
    """The largest inverse temperature ``<= beta`` per group whose weights keep an effective sample
    size of at least ``min_effective_fraction * n``.

    The Kish fraction ``ESS / n`` of the weights ``softmax(-b E)`` equals ``1 / (1 + chi^2)``, where
    ``chi^2`` is the empirical chi-square divergence of the tilted target from the distribution the
    group was drawn from. A floor on it is a trust region: however the energies are scaled, and
    however wrong they are, one tilt moves the target at most ``chi^2 <= 1 / fraction - 1`` away.
    The fraction falls monotonically as ``b`` grows, so bisection on ``[0, beta]`` finds the bound.

    Args:
        energies: ``(..., n)`` energies with the group along ``dim`` (RL: ``E = -Q`` of one state's
            support actions).
        beta: the inverse temperature asked for; groups that keep the floor at ``beta`` keep it.
        min_effective_fraction: the floor, in ``(0, 1]``.
        n_bisections: bisection steps (40 give ``beta * 1e-12``).

    Returns:
        ``(...)``: one inverse temperature per group, in ``[0, beta]``, with ``dim`` removed.
    """
    if not 0.0 < min_effective_fraction <= 1.0:
        raise ValueError(f"min_effective_fraction must lie in (0, 1], got {min_effective_fraction}")
    energies = energies.movedim(dim, -1)
    n = energies.shape[-1]

    def keeps_floor(b: torch.Tensor) -> torch.Tensor:
        fraction = effective_sample_size(energy_weights(energies, b.unsqueeze(-1)), dim=-1) / n
        return fraction >= min_effective_fraction - 1e-6

    low = torch.zeros(energies.shape[:-1], device=energies.device, dtype=energies.dtype)
    high = torch.full_like(low, float(beta))
    accepted = keeps_floor(high)
    for _ in range(n_bisections):
        middle = 0.5 * (low + high)
        ok = keeps_floor(middle)
        low = torch.where(ok, middle, low)
        high = torch.where(ok, high, middle)
    return torch.where(accepted, torch.full_like(low, float(beta)), low)
