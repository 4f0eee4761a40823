"""EnergyGuidedGenerator learns the energy-tilted target: Gaussian tilt and a reduced 8-Gaussian toy."""

import sys
from pathlib import Path

import numpy as np
import pytest

from qipo_agents.generative import EnergyGuidedGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import eight_gaussians as toy  # noqa: E402

SMALL = dict(hidden_dims=(128, 128), batch_size=512, seed=0)


def test_beta_conditioned_generator_tilts_a_gaussian_at_any_beta():
    """p = N(0, I), E(x) = x_0: q = N((-beta, 0), I), so one model must shift its mean by -beta."""
    data = np.random.default_rng(0).standard_normal((20_000, 2))
    gen = EnergyGuidedGenerator(path="ot", guidance_max=2.0, **SMALL).fit(data, lambda x: x[:, 0], n_steps=2000)
    for beta in (0.0, 1.0, 2.0):
        samples = gen.sample(4000, beta=beta)
        np.testing.assert_allclose(samples.mean(0), [-beta, 0.0], atol=0.2)
        np.testing.assert_allclose(samples.std(0), [1.0, 1.0], atol=0.25)
    with pytest.raises(ValueError, match=r"\[0, 2.0\]"):
        gen.sample(10, beta=3.0)


@pytest.mark.parametrize(("path", "steps", "solver", "n_steps"), [("ot", 1500, "midpoint", 10), ("vp", 2500, None, 25)])
def test_reduced_toy_recovers_the_exact_mode_masses(path, steps, solver, n_steps):
    """8 Gaussians, beta = 3: the sampled mode masses are within TV 0.08 of the exact tilted ones."""
    rng = np.random.default_rng(0)
    data, modes = toy.sample_data(50_000, rng)
    gen = EnergyGuidedGenerator(path=path, beta=3.0, **SMALL).fit(data, toy.energy_of_modes(modes), n_steps=steps)
    samples = gen.sample(5000, n_steps=n_steps, solver=solver)
    tv = toy.total_variation(toy.mode_masses(samples), toy.exact_mode_masses(3.0))
    unweighted = toy.total_variation(np.full(8, 1 / 8), toy.exact_mode_masses(3.0))
    assert tv <= 0.08, tv
    assert unweighted > 0.3  # the tilt is large: matching it is not an accident


def test_fit_validates_its_inputs():
    gen = EnergyGuidedGenerator(path="ot", beta=1.0)
    with pytest.raises(ValueError, match=r"\(n, dim\)"):
        gen.fit(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"energies must have shape \(4,\)"):
        gen.fit(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        gen.fit(np.array([[0.0, np.nan]]), np.zeros(1))
    with pytest.raises(RuntimeError, match="fit"):
        gen.sample(3)
    with pytest.raises(ValueError, match="exactly one"):
        EnergyGuidedGenerator(beta=None)
