"""Samplers integrate Gaussian-to-Gaussian flows with closed-form solutions.

For data ``N(m, s^2)`` the exact marginal fields are linear in ``x``, and every path maps a noise
sample ``z`` to ``mean_1 + std_1 / std_0 * (z - mean_0)``. We feed the exact field to each solver
and compare with that end point.
"""

import pytest
import torch

from qipo_agents.generative import OptimalTransportPath, VPPath

MEAN, STD = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.5])


def ot_exact_velocity(path):
    a = 1 - path.sigma_min

    def velocity(x, t):
        t = t[:, None].double()
        x = x.double()
        std_t = torch.sqrt((1 - a * t) ** 2 + (t * STD) ** 2)
        d_std = (-a * (1 - a * t) + t * STD**2) / std_t
        return (MEAN + d_std / std_t * (x - t * MEAN)).float()

    return velocity


def ot_end_point(path, z):
    return MEAN + torch.sqrt(path.sigma_min**2 + STD**2) * z


def vp_exact_noise(path):
    def noise(x, t):
        alpha, sigma = path.alpha_sigma(t[:, None].double())
        return (sigma * (x.double() - alpha * MEAN) / (alpha**2 * STD**2 + sigma**2)).float()

    return noise


def vp_end_point(path, z):
    t0, t1 = torch.tensor(path.t_min, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    (a0, s0), (a1, s1) = path.alpha_sigma(t0), path.alpha_sigma(t1)
    std0, std1 = torch.sqrt(a0**2 * STD**2 + s0**2), torch.sqrt(a1**2 * STD**2 + s1**2)
    return (a0 * MEAN + std0 / std1 * (z - a1 * MEAN)).float()


def error(path, field, end_point, solver, n_steps):
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    return (path.sample(field, z, n_steps=n_steps, solver=solver) - end_point(path, z)).abs().max().item()


@pytest.mark.parametrize(
    ("solver", "n_steps", "tolerance"), [("euler", 32, 0.3), ("midpoint", 16, 1e-3), ("rk4", 8, 1e-4)]
)
def test_ode_solvers_reach_the_closed_form(solver, n_steps, tolerance):
    """Largest absolute error over 2000 samples of the end point."""
    path = OptimalTransportPath()
    assert error(path, ot_exact_velocity(path), ot_end_point, solver, n_steps) < tolerance


def test_higher_order_ode_solvers_are_more_accurate_at_equal_steps():
    path = OptimalTransportPath()
    errors = [error(path, ot_exact_velocity(path), ot_end_point, s, 8) for s in ("euler", "midpoint", "rk4")]
    assert errors[0] > errors[1] > errors[2]
    # and convergence is at the stated order: halving h divides the RK4 error by ~16
    assert error(path, ot_exact_velocity(path), ot_end_point, "rk4", 4) / errors[2] > 8


@pytest.mark.parametrize(
    ("solver", "n_steps", "tolerance"), [("ddim", 100, 0.15), ("dpm_solver_2", 30, 0.15), ("dpm_solver_3", 30, 0.03)]
)
def test_vp_solvers_reach_the_closed_form(solver, n_steps, tolerance):
    """Largest absolute error over 2000 samples; the time-uniform grid's last step (t -> 1e-3)
    is long in log-SNR, which dominates the error at few steps."""
    path = VPPath()
    assert error(path, vp_exact_noise(path), vp_end_point, solver, n_steps) < tolerance


def test_dpm_solver_orders_are_more_accurate_at_equal_steps():
    path = VPPath()
    errors = [error(path, vp_exact_noise(path), vp_end_point, s, 10) for s in ("ddim", "dpm_solver_2", "dpm_solver_3")]
    assert errors[0] > errors[1] > errors[2]


def test_sampling_records_no_autograd_graph():
    path = OptimalTransportPath()
    weight = torch.ones(1, requires_grad=True)
    out = path.sample(lambda x, t: weight * x, torch.randn(4, 2), n_steps=3, solver="rk4")
    assert not out.requires_grad
    out = VPPath().sample(lambda x, t: weight * x, torch.randn(4, 2), n_steps=3)
    assert not out.requires_grad


def test_number_of_network_evaluations():
    calls = []

    def field(x, t):
        calls.append(1)
        return torch.zeros_like(x)

    for path, solver, n_steps, nfe in [
        (OptimalTransportPath(), "euler", 7, 7),
        (OptimalTransportPath(), "midpoint", 7, 14),
        (OptimalTransportPath(), "rk4", 7, 28),
        (VPPath(), "dpm_solver_2", 15, 15),
        (VPPath(), "dpm_solver_3", 15, 15),
        (VPPath(), "ddim", 15, 15),
    ]:
        calls.clear()
        path.sample(field, torch.zeros(3, 2), n_steps=n_steps, solver=solver)
        assert len(calls) == nfe, (solver, len(calls))


def test_qgpos_data_prediction_solver_reaches_the_closed_form_in_n_evaluations():
    """QGPO's DPM-Solver++(2S) on the time-uniform grid: NFE equals n_steps (odd counts end with a
    first-order step) and the error shrinks with more steps."""
    path = VPPath()
    field = vp_exact_noise(path)
    calls = []

    def counted(x, t):
        calls.append(1)
        return field(x, t)

    for n_steps in (15, 16):
        calls.clear()
        error(path, counted, vp_end_point, "dpm_solver_pp_2s", n_steps)
        assert len(calls) == n_steps
    assert error(path, field, vp_end_point, "dpm_solver_pp_2s", 60) < 0.05
    assert error(path, field, vp_end_point, "dpm_solver_pp_2s", 60) < error(
        path, field, vp_end_point, "dpm_solver_pp_2s", 15
    )
