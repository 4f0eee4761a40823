"""The QIPO algorithm: phases (warm-up, critic, refinement), support sets, and the two agents."""

from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.diffusion import QIPODiffusion
from qipo_agents.qipo.flow import QIPOFlow

__all__ = ["QIPO", "QIPODiffusion", "QIPOFlow"]
