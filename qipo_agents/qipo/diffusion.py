"""QIPODiffusion: QIPO with energy-weighted diffusion on the VP-SDE path (QIPO-Diff)."""

from pydantic import Field

from qipo_agents.generative.paths import VPPath
from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.config import QIPOConfig, keyword_arguments

VPPathKwargs = keyword_arguments("VPPathKwargs", VPPath.__init__)


class QIPODiffusionConfig(QIPOConfig):
    """The hyperparameters of :class:`QIPODiffusion`: :class:`~qipo_agents.qipo.config.QIPOConfig` on
    the VP path, whose options ``path_kwargs`` holds."""

    path_name = "vp"
    path_kwargs: VPPathKwargs = Field(  # type: ignore[valid-type]
        default_factory=dict, description="options of the VP path (e.g. beta_0, beta_1)"
    )


class QIPODiffusion(QIPO):
    """QIPO-Diff: the policy is a noise-prediction network of a VP-SDE (linear beta 0.1 → 20).

    Acting runs DPM-Solver (``solver`` ``"dpm_solver_2"`` (default), ``"dpm_solver_3"`` or
    ``"ddim"``) with ``n_sampling_steps`` network evaluations (default 15, as QGPO). Every
    other hyperparameter is documented on :class:`~qipo_agents.qipo.algorithm.QIPO`.

    Example::

        from qipo_agents import QIPODiffusion
        agent = QIPODiffusion("MlpPolicy", "mujoco/hopper/medium-v0", seed=0)
        agent.learn(total_timesteps=1_000_000)
    """

    config_class = QIPODiffusionConfig
