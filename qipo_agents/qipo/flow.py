"""QIPOFlow: QIPO with energy-weighted flow matching on the optimal-transport path (QIPO-OT)."""

from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.config import QIPOConfig


class QIPOFlowConfig(QIPOConfig):
    """The hyperparameters of :class:`QIPOFlow`: :class:`~qipo_agents.qipo.config.QIPOConfig` on the OT path."""

    path_name = "ot"


class QIPOFlow(QIPO):
    """QIPO-OT: the policy is a flow-matching vector field on straight noise-to-action paths.

    Acting integrates the ODE with a fixed-step solver (``solver`` ``"euler"``, ``"midpoint"``
    (default) or ``"rk4"``; ``n_sampling_steps`` defaults to 3 midpoint steps, 6 network
    evaluations). Fewer evaluations than diffusion make ``predict`` faster. Every other
    hyperparameter is documented on :class:`~qipo_agents.qipo.algorithm.QIPO`.

    Example::

        from qipo_agents import QIPOFlow
        agent = QIPOFlow("MlpPolicy", "mujoco/hopper/medium-v0", seed=0, tensorboard_log="runs/")
        agent.learn(total_timesteps=1_000_000, progress_bar=True)
        action, _ = agent.predict(obs, deterministic=True)
        agent.save("hopper_qipo")
    """

    config_class = QIPOFlowConfig
