"""Probability paths between Gaussian noise and data.

A path says how a clean sample ``x_data`` is corrupted to ``x_t`` at time ``t``, what the
network is trained to predict there, and how to integrate the learned field back to data.
Two paths are provided:

* :class:`OptimalTransportPath` — flow matching on straight lines (Lipman et al., 2022).
  Time runs from ``t = 0`` (noise) to ``t = 1`` (data); the network predicts a velocity.
* :class:`VPPath` — the variance-preserving SDE of score-based diffusion (Song et al., 2021)
  with a linear ``beta(t)``. Time runs from ``t = 1`` (noise) to ``t ≈ 0`` (data); the
  network predicts the noise ``epsilon``.

Both expose the same three operations (``sample_times``, ``training_pair``, ``sample``), so the
energy-weighted loss and every agent are written once and are path-agnostic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from qipo_agents.generative import solvers

FieldFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A learned field ``f(x_t, t) -> prediction``: ``x_t`` is ``(batch, dim)``, ``t`` is ``(batch,)``."""


class ProbabilityPath(ABC):
    """A Gaussian probability path used for training and sampling."""

    name: str
    noise_time: float
    """The time at which ``x_t`` is pure noise, where sampling starts."""
    solvers: tuple[str, ...]
    default_solver: str
    default_steps: int

    @abstractmethod
    def sample_times(self, n: int, device: torch.device | str, generator: torch.Generator | None = None):
        """Draw ``n`` training times, shape ``(n,)``."""

    @abstractmethod
    def training_pair(
        self, data: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x_t, target)`` for clean ``data`` ``(batch, dim)``, ``noise`` of the same
        shape and times ``t`` ``(batch,)``; the network regresses ``target`` from ``(x_t, t)``."""

    @abstractmethod
    def sample(
        self, field: FieldFn, noise: torch.Tensor, n_steps: int | None = None, solver: str | None = None
    ) -> torch.Tensor:
        """Integrate ``field`` from ``noise`` ``(batch, dim)`` to data ``(batch, dim)``."""

    def check_solver(self, solver: str | None, n_steps: int | None) -> tuple[str, int]:
        """Resolve defaults and validate a ``(solver, n_steps)`` request."""
        solver = self.default_solver if solver is None else solver
        n_steps = self.default_steps if n_steps is None else int(n_steps)
        if solver not in self.solvers:
            raise ValueError(f"unknown solver {solver!r} for the {self.name} path; choose one of {self.solvers}")
        if n_steps < 1:
            raise ValueError(f"n_steps must be at least 1, got {n_steps}")
        return solver, n_steps


class OptimalTransportPath(ProbabilityPath):
    """Straight-line (optimal-transport) conditional flow.

    ``x_t = (1 - (1 - sigma_min) t) x_noise + t x_data`` and the conditional velocity is
    ``u_t = x_data - (1 - sigma_min) x_noise`` (Lipman et al., 2022, eq. 20–23), with
    ``t ~ U(0, 1)``. Sampling integrates ``dx/dt = v(x, t)`` from ``t = 0`` to ``t = 1``.

    Args:
        sigma_min: width of the path at the data end (dimensionless).
        default_solver: ``"euler"``, ``"midpoint"`` or ``"rk4"``.
        default_steps: number of integration steps when ``sample`` is given none.
    """

    name = "ot"
    noise_time = 0.0
    solvers = ("euler", "midpoint", "rk4")

    def __init__(self, sigma_min: float = 1e-4, default_solver: str = "midpoint", default_steps: int = 3):
        self.sigma_min = float(sigma_min)
        self.default_solver, self.default_steps = default_solver, default_steps
        self.check_solver(default_solver, default_steps)

    def sample_times(self, n, device, generator=None):
        return torch.rand(n, device=device, generator=generator)

    def training_pair(self, data, noise, t):
        t = t.unsqueeze(-1)
        x_t = (1.0 - (1.0 - self.sigma_min) * t) * noise + t * data
        target = data - (1.0 - self.sigma_min) * noise
        return x_t, target

    def sample(self, field, noise, n_steps=None, solver=None):
        solver, n_steps = self.check_solver(solver, n_steps)
        return solvers.integrate_ode(field, noise, n_steps=n_steps, method=solver, t_start=0.0, t_end=1.0)


class VPPath(ProbabilityPath):
    """Variance-preserving SDE with a linear noise schedule ``beta(t) = beta_0 + t (beta_1 - beta_0)``.

    ``alpha_t = exp(-t^2 (beta_1 - beta_0) / 4 - t beta_0 / 2)``, ``sigma_t = sqrt(1 - alpha_t^2)``,
    ``x_t = alpha_t x_data + sigma_t epsilon``; the network predicts ``epsilon`` and training times
    are ``t ~ U(t_min, 1)``. Sampling runs multistep DPM-Solver on the noise prediction (Lu et
    al., 2022) or DDIM from ``t = 1`` to ``t_min``, on a grid uniform in log-SNR (``time_grid``).
    QGPO samples with DPM-Solver's data prediction, single-step order 2, on a time-uniform grid:
    ``solver="dpm_solver_pp_2s"`` (its own grid, whatever ``time_grid`` says).

    Args:
        beta_0: the noise schedule's rate at ``t = 0`` (per unit time).
        beta_1: the noise schedule's rate at ``t = 1`` (per unit time).
        t_min: smallest training time and the sampler's end time (avoids the singular ``t = 0``).
        default_solver: ``"dpm_solver_2"``, ``"dpm_solver_3"``, ``"ddim"`` or ``"dpm_solver_pp_2s"`` (QGPO's).
        default_steps: number of network evaluations when ``sample`` is given none.
        time_grid: sampler grid, ``"logsnr"`` (uniform in ``lambda_t``, DPM-Solver's choice for
            low-dimensional data; accurate for sharp action modes) or ``"time_uniform"`` (QGPO's).
    """

    name = "vp"
    noise_time = 1.0
    solvers = ("dpm_solver_2", "dpm_solver_3", "ddim", "dpm_solver_pp_2s")

    def __init__(
        self,
        beta_0: float = 0.1,
        beta_1: float = 20.0,
        t_min: float = 1e-3,
        default_solver: str = "dpm_solver_2",
        default_steps: int = 15,
        time_grid: str = "logsnr",
    ):
        if time_grid not in ("logsnr", "time_uniform"):
            raise ValueError(f"unknown time_grid {time_grid!r}; choose 'logsnr' or 'time_uniform'")
        self.time_grid = time_grid
        self.beta_0, self.beta_1, self.t_min = float(beta_0), float(beta_1), float(t_min)
        self.default_solver, self.default_steps = default_solver, default_steps
        self.check_solver(default_solver, default_steps)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``log alpha_t``, the log of the signal coefficient."""
        return -0.25 * t**2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal and noise coefficients ``(alpha_t, sigma_t)``."""
        log_alpha = self.log_alpha(t)
        return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2.0 * log_alpha))

    def half_log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """``lambda_t = log(alpha_t / sigma_t)``, DPM-Solver's integration variable."""
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))

    def time_of_half_log_snr(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`half_log_snr` for the linear schedule (DPM-Solver, Appendix)."""
        tmp = 2.0 * (self.beta_1 - self.beta_0) * torch.logaddexp(-2.0 * lam, torch.zeros_like(lam))
        delta = self.beta_0**2 + tmp
        return tmp / (torch.sqrt(delta) + self.beta_0) / (self.beta_1 - self.beta_0)

    def sample_times(self, n, device, generator=None):
        return self.t_min + (1.0 - self.t_min) * torch.rand(n, device=device, generator=generator)

    def training_pair(self, data, noise, t):
        alpha, sigma = self.alpha_sigma(t.unsqueeze(-1))
        return alpha * data + sigma * noise, noise

    def sample(self, field, noise, n_steps=None, solver=None):
        solver, n_steps = self.check_solver(solver, n_steps)
        if solver == "ddim":
            return solvers.ddim(field, self, noise, n_steps=n_steps, t_end=self.t_min)
        if solver == "dpm_solver_pp_2s":  # QGPO's, on its own time-uniform grid
            return solvers.dpm_solver_pp_2s(field, self, noise, n_steps=n_steps, t_end=self.t_min)
        order = int(solver[-1])
        return solvers.dpm_solver(field, self, noise, n_steps=n_steps, order=order, t_end=self.t_min)


def make_path(name: str, **kwargs) -> ProbabilityPath:
    """Build a path by name: ``"ot"`` (flow matching) or ``"vp"`` (diffusion)."""
    paths = {"ot": OptimalTransportPath, "vp": VPPath}
    if name not in paths:
        raise ValueError(f"unknown probability path {name!r}; choose 'ot' (flow matching) or 'vp' (diffusion)")
    return paths[name](**kwargs)


__all__ = ["FieldFn", "OptimalTransportPath", "ProbabilityPath", "VPPath", "make_path"]
