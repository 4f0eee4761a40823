"""Energy-guided generative modelling, with no reinforcement learning inside.

To sample from ``q(x) ∝ p(x) exp(-beta E(x))`` given samples of ``p``, train an ordinary flow
(or diffusion) model with each sample's loss weighted by ``softmax(-beta E)`` over its group.
"""

from qipo_agents.generative.generator import EnergyGuidedGenerator
from qipo_agents.generative.losses import energy_weighted_loss
from qipo_agents.generative.paths import OptimalTransportPath, ProbabilityPath, VPPath, make_path
from qipo_agents.generative.solvers import ddim, dpm_solver, integrate_ode
from qipo_agents.generative.weights import effective_sample_size, energy_weights, trust_region_beta

__all__ = [
    "EnergyGuidedGenerator",
    "OptimalTransportPath",
    "ProbabilityPath",
    "VPPath",
    "ddim",
    "dpm_solver",
    "effective_sample_size",
    "energy_weighted_loss",
    "energy_weights",
    "integrate_ode",
    "make_path",
    "trust_region_beta",
]
