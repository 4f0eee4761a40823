"""qipo_agents: energy-guided flow and diffusion policies for offline RL (QIPO), SB3-style.

``QIPOFlow`` and ``QIPODiffusion`` are the agents; ``qipo_agents.generative`` is the
energy-weighted generative core usable on its own; ``qipo_agents.data`` loads offline datasets.
"""

__version__ = "0.1.0"

from qipo_agents.qipo import QIPO, QIPODiffusion, QIPOFlow  # noqa: E402

__all__ = ["QIPO", "QIPODiffusion", "QIPOFlow", "__version__"]
