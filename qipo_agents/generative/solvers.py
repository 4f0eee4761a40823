"""Samplers: fixed-step ODE integrators for flows, DPM-Solver and DDIM for the VP path.

All samplers are batched, run without autograd, and take the number of steps at call time.
A field is called as ``field(x, t)`` with ``x`` of shape ``(batch, dim)`` and ``t`` of shape
``(batch,)``; every call counts as one network evaluation (NFE).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from qipo_agents.generative.paths import FieldFn, VPPath


def _time(value: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)


@torch.no_grad()
def integrate_ode(
    velocity: FieldFn,
    x: torch.Tensor,
    n_steps: int,
    method: str = "euler",
    t_start: float = 0.0,
    t_end: float = 1.0,
) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` on a uniform grid.

    Args:
        velocity: the vector field.
        x: the initial state at ``t_start``, shape ``(batch, dim)``.
        n_steps: number of steps; the NFE is ``n_steps`` (Euler), ``2 n_steps`` (midpoint)
            or ``4 n_steps`` (RK4).
        method: ``"euler"`` (order 1), ``"midpoint"`` (order 2) or ``"rk4"`` (order 4).

    Returns:
        The state at ``t_end``, shape ``(batch, dim)``.
    """
    h = (t_end - t_start) / n_steps
    for i in range(n_steps):
        t = t_start + i * h
        if method == "euler":
            x = x + h * velocity(x, _time(t, x))
        elif method == "midpoint":
            k1 = velocity(x, _time(t, x))
            x = x + h * velocity(x + 0.5 * h * k1, _time(t + 0.5 * h, x))
        elif method == "rk4":
            k1 = velocity(x, _time(t, x))
            k2 = velocity(x + 0.5 * h * k1, _time(t + 0.5 * h, x))
            k3 = velocity(x + 0.5 * h * k2, _time(t + 0.5 * h, x))
            k4 = velocity(x + h * k3, _time(t + h, x))
            x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        else:
            raise ValueError(f"unknown ODE method {method!r}; choose 'euler', 'midpoint' or 'rk4'")
    return x


def _vp_grid(path: VPPath, n_steps: int, t_end: float):
    """Grid from 1 to ``t_end`` (uniform in time or in log-SNR, ``path.time_grid``) with the
    quantities DPM-Solver needs at each node."""
    if path.time_grid == "logsnr":
        ends = torch.tensor([1.0, t_end], dtype=torch.float64)
        lam_start, lam_end = path.half_log_snr(ends).tolist()
        times = path.time_of_half_log_snr(torch.linspace(lam_start, lam_end, n_steps + 1, dtype=torch.float64))
    else:
        times = torch.linspace(1.0, t_end, n_steps + 1, dtype=torch.float64)
    log_alpha = path.log_alpha(times)
    sigma = torch.sqrt(-torch.expm1(2.0 * log_alpha))
    lam = log_alpha - torch.log(sigma)
    return times.tolist(), log_alpha.tolist(), sigma.tolist(), lam.tolist()


@torch.no_grad()
def ddim(noise_model: FieldFn, path: VPPath, x: torch.Tensor, n_steps: int, t_end: float) -> torch.Tensor:
    """Deterministic DDIM (Song et al., 2021) on a time-uniform grid from ``t = 1`` to ``t_end``.

    Each step predicts the clean sample ``x0 = (x - sigma_s eps) / alpha_s`` and re-noises it to
    the next time: ``x_t = alpha_t x0 + sigma_t eps``. NFE = ``n_steps``.
    """
    times, log_alpha, sigma, _ = _vp_grid(path, n_steps, t_end)
    for i in range(n_steps):
        eps = noise_model(x, _time(times[i], x))
        alpha_s, alpha_t = math.exp(log_alpha[i]), math.exp(log_alpha[i + 1])
        x0 = (x - sigma[i] * eps) / alpha_s
        x = alpha_t * x0 + sigma[i + 1] * eps
    return x


@torch.no_grad()
def dpm_solver(
    noise_model: FieldFn, path: VPPath, x: torch.Tensor, n_steps: int, order: int = 2, t_end: float = 1e-3
) -> torch.Tensor:
    """Multistep DPM-Solver (Lu et al., 2022) for a noise-prediction model, orders 1–3.

    Integrates the probability-flow ODE in the half-log-SNR ``lambda`` from ``t = 1`` to
    ``t_end`` on the path's grid (``path.time_grid``: uniform in log-SNR by default, or in time),
    reusing the previous ``order - 1`` network outputs, so the
    NFE is exactly ``n_steps``. The first steps warm up with lower orders; with fewer than 10
    steps the last steps also drop order (``lower_order_final``), as in the reference code.

    Args:
        noise_model: ``eps(x_t, t)``.
        path: the VP path that defines ``alpha_t`` and ``sigma_t``.
        x: samples at ``t = 1``, shape ``(batch, dim)``.
        n_steps: number of steps (= NFE).
        order: 1 (equivalent to DDIM), 2 or 3.
        t_end: final time.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"DPM-Solver order must be 1, 2 or 3, got {order}")
    times, log_alpha, sigma, lam = _vp_grid(path, n_steps, t_end)
    history: list[torch.Tensor] = []  # newest last: eps at the previous grid nodes
    for i in range(n_steps):
        history.append(noise_model(x, _time(times[i], x)))
        history = history[-order:]
        step_order = min(order, i + 1)
        if n_steps < 10:
            step_order = min(step_order, n_steps - i)
        h = lam[i + 1] - lam[i]
        phi_1 = math.expm1(h)
        ratio = math.exp(log_alpha[i + 1] - log_alpha[i])
        sigma_t = sigma[i + 1]
        update = history[-1]
        if step_order == 2:
            r0 = (lam[i] - lam[i - 1]) / h
            d1 = (history[-1] - history[-2]) / r0
            update = history[-1] + 0.5 * d1
        elif step_order == 3:
            r0 = (lam[i] - lam[i - 1]) / h
            r1 = (lam[i - 1] - lam[i - 2]) / h
            d1_0 = (history[-1] - history[-2]) / r0
            d1_1 = (history[-2] - history[-3]) / r1
            d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_2 = phi_1 / h - 1.0
            phi_3 = phi_2 / h - 0.5
            x = ratio * x - sigma_t * (phi_1 * history[-1] + phi_2 * d1 + phi_3 * d2)
            continue
        x = ratio * x - sigma_t * phi_1 * update
    return x


@torch.no_grad()
def dpm_solver_pp_2s(noise_model: FieldFn, path: VPPath, x: torch.Tensor, n_steps: int, t_end: float) -> torch.Tensor:
    """QGPO's sampler: single-step second-order DPM-Solver on the data prediction (DPM-Solver++(2S),
    Lu et al., 2022b) on a time-uniform grid, as QGPO configures the reference implementation
    (``predict_x0=True``, ``order=2``, ``method="singlestep"``, ``skip_type="time_uniform"``).

    The ``n_steps`` network evaluations go to ``n_steps // 2`` second-order steps (each with one
    intermediate evaluation at the midpoint in half-log-SNR) and, for an odd count, one final
    first-order step; the steps span consecutive pairs of a time-uniform grid of ``n_steps``
    intervals from ``t = 1`` to ``t_end``, as the reference code places them. NFE = ``n_steps``.
    """
    orders = [2] * (n_steps // 2) + [1] * (n_steps % 2)
    grid = torch.linspace(1.0, t_end, n_steps + 1, dtype=torch.float64)
    nodes = grid[torch.cumsum(torch.tensor([0, *orders]), 0)]

    def coefficients(t: torch.Tensor) -> tuple[float, float, float]:
        log_alpha = float(path.log_alpha(t))
        return math.exp(log_alpha), math.sqrt(-math.expm1(2.0 * log_alpha)), float(path.half_log_snr(t))

    def data_prediction(x_t: torch.Tensor, t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """``x0 = (x_t - sigma_t eps(x_t, t)) / alpha_t``, one network evaluation."""
        return (x_t - sigma * noise_model(x_t, _time(float(t), x_t))) / alpha

    for order, s, t in zip(orders, nodes[:-1], nodes[1:]):
        (alpha_s, sigma_s, lam_s), (alpha_t, sigma_t, lam_t) = coefficients(s), coefficients(t)
        h = lam_t - lam_s
        phi_1 = math.expm1(-h)
        model_s = data_prediction(x, s, alpha_s, sigma_s)
        if order == 1:
            x = (sigma_t / sigma_s) * x - alpha_t * phi_1 * model_s
            continue
        s1 = path.time_of_half_log_snr(torch.tensor(lam_s + 0.5 * h, dtype=torch.float64))
        alpha_s1, sigma_s1, _ = coefficients(s1)
        x_s1 = (sigma_s1 / sigma_s) * x - alpha_s1 * math.expm1(-0.5 * h) * model_s
        model_s1 = data_prediction(x_s1, s1, alpha_s1, sigma_s1)
        x = (sigma_t / sigma_s) * x - alpha_t * phi_1 * model_s - alpha_t * phi_1 * (model_s1 - model_s)
    return x
