"""Each path's corruption and regression target match their closed forms."""

import math

import pytest
import torch

from qipo_agents.generative import OptimalTransportPath, VPPath, make_path


def test_ot_interpolant_and_velocity_target():
    path = OptimalTransportPath(sigma_min=1e-4)
    data, noise = torch.randn(6, 3), torch.randn(6, 3)
    t = torch.linspace(0, 1, 6)
    x_t, target = path.training_pair(data, noise, t)
    expected = (1 - (1 - 1e-4) * t[:, None]) * noise + t[:, None] * data
    torch.testing.assert_close(x_t, expected)
    torch.testing.assert_close(target, data - (1 - 1e-4) * noise)
    # the target is the time derivative of the interpolant
    dt = 1e-3
    x_next, _ = path.training_pair(data, noise, t + dt)
    torch.testing.assert_close((x_next - x_t) / dt, target, atol=1e-2, rtol=1e-2)
    # end points: noise at t=0, data (up to sigma_min) at t=1
    torch.testing.assert_close(x_t[0], noise[0])
    torch.testing.assert_close(x_t[-1], data[-1] + 1e-4 * noise[-1])


def test_vp_schedule_closed_form():
    path = VPPath(beta_0=0.1, beta_1=20.0)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    alpha, sigma = path.alpha_sigma(t)
    expected_alpha = torch.exp(-0.25 * t**2 * 19.9 - 0.5 * t * 0.1)
    torch.testing.assert_close(alpha, expected_alpha)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))
    torch.testing.assert_close(path.half_log_snr(t[1:]), torch.log(alpha[1:] / sigma[1:]))
    # d log alpha / dt = -beta(t) / 2 with beta(t) linear
    tt = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(path.log_alpha(tt).sum(), tt)
    assert grad.item() == pytest.approx(-0.5 * (0.1 + 0.3 * 19.9))
    assert alpha[-1].item() == pytest.approx(math.exp(-0.25 * 19.9 - 0.05))


def test_vp_training_pair_predicts_the_noise():
    path = VPPath()
    data, noise, t = torch.randn(4, 2), torch.randn(4, 2), torch.rand(4)
    x_t, target = path.training_pair(data, noise, t)
    alpha, sigma = path.alpha_sigma(t[:, None])
    torch.testing.assert_close(x_t, alpha * data + sigma * noise)
    torch.testing.assert_close(target, noise)


def test_training_times_are_in_range():
    assert (VPPath(t_min=1e-3).sample_times(1000, "cpu") >= 1e-3).all()
    times = OptimalTransportPath().sample_times(1000, "cpu")
    assert ((times >= 0) & (times <= 1)).all()


def test_unknown_path_and_solver_are_clear_errors():
    with pytest.raises(ValueError, match="'ot'"):
        make_path("rectified")
    with pytest.raises(ValueError, match="unknown solver"):
        OptimalTransportPath().sample(lambda x, t: x, torch.zeros(1, 1), solver="dpm_solver_2")
