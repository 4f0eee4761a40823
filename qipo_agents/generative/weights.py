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
