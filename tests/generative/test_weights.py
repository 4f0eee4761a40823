"""Energy weights are a (scaled) distribution, stable at extreme beta, and match the closed form."""

import pytest
import torch

from qipo_agents.generative import effective_sample_size, energy_weights, trust_region_beta


def test_weights_have_mean_one_and_are_nonnegative():
    energies = torch.randn(5, 16)
    w = energy_weights(energies, beta=3.0)
    assert (w >= 0).all()
    torch.testing.assert_close(w.mean(dim=-1), torch.ones(5))


def test_weights_match_the_softmax_closed_form():
    energies = torch.tensor([0.0, 1.0, 2.0])
    w = energy_weights(energies, beta=0.5)
    expected = 3 * torch.exp(-0.5 * energies) / torch.exp(-0.5 * energies).sum()
    torch.testing.assert_close(w, expected)


def test_no_overflow_at_extreme_beta():
    energies = torch.tensor([[-300.0, -299.0, 150.0, 1000.0]])
    for beta in (1e3, 1e5):
        w = energy_weights(energies, beta=beta)
        assert torch.isfinite(w).all()
        torch.testing.assert_close(w.sum(), torch.tensor(4.0))
    # at beta -> infinity all the mass goes to the lowest energy
    torch.testing.assert_close(energy_weights(energies, beta=1e5)[0, 0], torch.tensor(4.0))


def test_beta_zero_gives_uniform_weights_and_full_ess():
    w = energy_weights(torch.randn(64) * 100, beta=0.0)
    torch.testing.assert_close(w, torch.ones(64))
    torch.testing.assert_close(effective_sample_size(w), torch.tensor(64.0))


def test_effective_sample_size_of_a_degenerate_group_is_one():
    w = energy_weights(torch.tensor([0.0, 50.0, 50.0, 50.0]), beta=100.0)
    torch.testing.assert_close(effective_sample_size(w), torch.tensor(1.0))


def test_per_group_beta_broadcasts():
    energies = torch.randn(3, 8)
    beta = torch.tensor([[0.0], [1.0], [10.0]])
    w = energy_weights(energies, beta)
    torch.testing.assert_close(w[0], torch.ones(8))
    torch.testing.assert_close(w[2], energy_weights(energies[2], 10.0))


def test_nan_energies_raise_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="NaN or inf"):
        energy_weights(torch.tensor([0.0, float("nan")]), beta=1.0)


def test_trust_region_beta_keeps_the_effective_fraction_floor():
    energies = torch.randn(200, 17) * 50.0  # a critic's scale: softmax(3 Q) would be one-hot
    betas = trust_region_beta(energies, beta=3.0, min_effective_fraction=0.5)
    assert (betas > 0).all() and (betas < 3.0).all()
    fraction = effective_sample_size(energy_weights(energies, betas.unsqueeze(1))) / 17
    torch.testing.assert_close(fraction, torch.full((200,), 0.5), atol=1e-4, rtol=0)


def test_trust_region_beta_is_scale_free_and_leaves_mild_tilts_alone():
    energies = torch.randn(50, 16)
    coarse = trust_region_beta(energies * 100.0, beta=1e3, min_effective_fraction=0.7)
    fine = trust_region_beta(energies, beta=1e3, min_effective_fraction=0.7)
    torch.testing.assert_close(coarse * 100.0, fine, rtol=1e-5, atol=0)
    # energies so flat that beta itself keeps the floor: beta is kept
    torch.testing.assert_close(trust_region_beta(energies * 1e-4, 3.0, 0.7), torch.full((50,), 3.0))


def test_trust_region_beta_rejects_a_fraction_outside_zero_one():
    with pytest.raises(ValueError, match=r"min_effective_fraction must lie in \(0, 1\]"):
        trust_region_beta(torch.randn(4, 8), beta=3.0, min_effective_fraction=0.0)
