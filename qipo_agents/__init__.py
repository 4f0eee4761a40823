"""qipo_agents: energy-guided flow and diffusion policies for offline RL (QIPO), SB3-style."""

__version__ = "0.1.0"
