"""QIPOConfig: every hyperparameter of a QIPO agent, typed, ranged and described once.

A config is a frozen pydantic model: ``QIPOFlow("MlpPolicy", data, beta=5.0)`` builds
``QIPOFlowConfig(beta=5.0)`` and keeps it as ``agent.config``; saves hold it, ``qipo-zoo``
validates its YAML files against it. Single values are checked by their field (type and range),
combinations by :meth:`QIPOConfig._check_combinations`, whose errors name the fields involved
(``error["ctx"]["fields"]``) so that a caller merging several sources can say which one set them.
Python callers may pass any value pydantic converts (``beta=3`` is ``3.0``); configuration files
are validated strictly with :func:`validate_setting` (no ``"3e-4"`` string for a number, no
boolean for an integer).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from qipo_agents.common.validation import Integer
from qipo_agents.generative.paths import OptimalTransportPath, make_path
from qipo_agents.qipo.policy import QIPOPolicy


def keyword_arguments(name: str, function: Callable, set_by_agent: frozenset[str] = frozenset()) -> type:
    """A ``TypedDict`` of the keyword arguments of ``function`` (typed by its hints, none required,
    unknown keys refused): what a ``*_kwargs`` hyperparameter passed on to ``function`` may hold."""
    hints = typing.get_type_hints(function)
    names = [n for n in inspect.signature(function).parameters if n != "self" and n not in set_by_agent]
    fields = {n: Integer if hints.get(n, Any) is int else hints.get(n, Any) for n in names}
    return with_config(ConfigDict(extra="forbid"))(TypedDict(name, fields, total=False))


#: ``QIPOPolicy`` arguments the agent fills in from the data and its other hyperparameters.
POLICY_ARGUMENTS_SET_BY_AGENT = frozenset(
    "obs_dim action_dim guidance_max use_value_network actor_learning_rate critic_learning_rate "
    "one_step_noise_time one_step_guidance one_step_learning_rate".split()
)
PolicyKwargs = keyword_arguments("PolicyKwargs", QIPOPolicy.__init__, POLICY_ARGUMENTS_SET_BY_AGENT)
OptimalTransportPathKwargs = keyword_arguments("OptimalTransportPathKwargs", OptimalTransportPath.__init__)


def combination_error(fields: tuple[str, ...], message: str) -> PydanticCustomError:
    """The error of settings refused together; ``fields`` names them for the caller's blame."""
    return PydanticCustomError("combination", "{message}", {"message": message, "fields": fields})


class QIPOConfig(BaseModel):
    """The hyperparameters of a QIPO agent, grouped by the phase that reads them.

    Every field is documented at length on :class:`~qipo_agents.qipo.algorithm.QIPO`; the
    ``description`` of each field is its one-line summary. A config is frozen: :meth:`replace`
    returns a validated copy with some fields changed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The probability path (``"ot"`` or ``"vp"``) the agent's ``solver`` and ``path_kwargs`` belong to.
    path_name: ClassVar[str] = "ot"
    #: Settings that only shape what follows the critic (refinement, distillation, acting): an agent
    #: saved at the end of its critic phase may go on with other values of these (``--start-from``).
    refinement_settings: ClassVar[frozenset[str]] = frozenset(
        "beta min_effective_support n_support_actions include_dataset_action renew_interval n_support_states "
        "policy_steps policy_batch_size policy_learning_rate policy_tau distill_steps distill_batch_size "
        "distill_learning_rate extraction_alpha extraction_trust_limit extraction_trust_concentration "
        "extraction_critic extraction_acting one_step_acting n_sampling_steps solver best_of_n acting_temperature "
        "deterministic_action mean_action_samples sampling_chunk_size precision".split()
    )

    # ---------------------------------------------------------------- behaviour warm-up (K1)
    behavior_steps: Integer = Field(600_000, ge=0, description="gradient steps of the behaviour warm-up (K1)")
    behavior_batch_size: Integer = Field(4096, ge=1, description="transitions per behaviour warm-up step")
    behavior_learning_rate: float = Field(1e-4, ge=0, description="Adam step size of the behaviour warm-up")
    behavior_during_critic: bool = Field(
        False, description="every critic step also takes a behaviour warm-up step (both networks train at once)"
    )

    # ---------------------------------------------------------------- critic (K2)
    critic_type: Literal["in_support_softmax", "expectile"] = Field(
        "in_support_softmax", description="QGPO's in-support softmax Q-learning, or IQL's expectile critic"
    )
    critic_steps: Integer = Field(1_000_000, ge=0, description="gradient steps of the critic phase (K2)")
    critic_batch_size: Integer = Field(256, ge=1, description="transitions per critic step")
    critic_learning_rate: float = Field(3e-4, ge=0, description="Adam step size of the critic")
    alpha_q: float | None = Field(
        None, ge=0, description="inverse temperature of the in-support softmax value (None: beta)"
    )
    expectile: float = Field(0.7, gt=0, lt=1, description="IQL expectile of the expectile critic, in (0, 1)")
    gamma: float = Field(0.99, ge=0, le=1, description="discount factor of the critic's target")
    critic_tau: float = Field(0.005, gt=0, le=1, description="Polyak rate of the critic's target networks")

    # ---------------------------------------------------------------- refinement (K3)
    beta: float = Field(3.0, ge=0, description="guidance scale of the Q-weights softmax(beta Q)")
    guidance_max: float | None = Field(
        None, gt=0, description="train a guidance-conditioned policy over beta in [0, guidance_max] (None: off)"
    )
    n_support_actions: Integer = Field(16, ge=1, description="M: support actions drawn per state")
    include_dataset_action: bool = Field(True, description="add the dataset action to each support group")
    renew_interval: Integer = Field(10_000, ge=1, description="gradient steps between support renewals")
    n_support_states: Integer | None = Field(
        None, ge=1, description="states whose support a renewal draws (None: every state)"
    )
    min_effective_support: float | None = Field(
        None, gt=0, le=1, description="trust region: the fraction of each support group kept effective (None: off)"
    )
    policy_steps: Integer = Field(100_000, ge=0, description="gradient steps of the refinement (K3)")
    policy_batch_size: Integer = Field(4096, ge=1, description="(state, support action) pairs per refinement step")
    policy_learning_rate: float = Field(1e-4, ge=0, description="Adam step size of the refinement")
    policy_tau: float = Field(0.005, gt=0, le=1, description="Polyak rate of the acting policy actor_ema")

    # ---------------------------------------------------------------- one-step distillation (optional)
    distill_steps: Integer = Field(0, ge=0, description="gradient steps of the one-step distillation (0: none)")
    distill_batch_size: Integer = Field(256, ge=1, description="(state, noise) pairs per distillation step")
    distill_learning_rate: float = Field(3e-4, ge=0, description="Adam step size of the one-step policy")
    extraction_alpha: float | None = Field(
        None, gt=0, description="weight of the copy term of the Q-guided extraction (None: a plain copy)"
    )
    extraction_trust_limit: float | None = Field(
        None, gt=0, description="largest promised Q gain, in units of mean |Q|, the extraction trusts (None: no check)"
    )
    extraction_trust_concentration: float | None = Field(
        None,
        ge=1,
        description="a promise above the limit is still trusted while its mean over median per-state gain "
        "is at most this (None: the limit alone)",
    )
    extraction_critic: Literal["frozen", "policy"] = Field(
        "frozen",
        description="the critic during a trusted extraction: as its phase left it, or also trained on the "
        "one-step policy's next actions (Flow Q-Learning's critic)",
    )
    extraction_acting: Literal["sampled", "deterministic"] = Field(
        "sampled", description="how predict(deterministic=False) acts with a trusted Q-guided extraction"
    )

    # ---------------------------------------------------------------- acting and sampling
    one_step_acting: bool = Field(True, description="act with the distilled one-step policy once it is trained")
    n_sampling_steps: Integer | None = Field(
        None, ge=1, description="solver steps for acting and support sampling (None: the path's default)"
    )
    solver: str | None = Field(None, description="the sampler's solver (None: the path's default)")
    best_of_n: Integer = Field(1, ge=1, description="act with the best of N sampled actions by Q (1: off)")
    acting_temperature: float = Field(
        1.0, ge=0, description="noise scale an acted action starts from (1: sample the policy; 0: zero noise)"
    )
    deterministic_action: Literal["zero_noise", "mean"] = Field(
        "zero_noise",
        description="predict(deterministic=True): the action of zero noise, or the mean of mean_action_samples actions",
    )
    mean_action_samples: Integer = Field(
        32, ge=1, description="actions averaged per state by deterministic_action='mean' (fixed noises)"
    )
    sampling_chunk_size: Integer = Field(16_384, ge=1, description="(state, action) pairs per batched sampling call")

    # ---------------------------------------------------------------- data, precision and networks
    normalize_observations: bool = Field(False, description="standardise observations with dataset statistics")
    reward_scaling: Literal["locomotion", "antmaze", "none"] = Field(
        "locomotion", description="reward transform: QGPO's locomotion scale, AntMaze's r - 1, or none"
    )
    precision: Literal["fp32", "bf16-mixed"] = Field(
        "fp32", description="gradient steps in float32, or with bfloat16 matrix products"
    )
    policy_kwargs: PolicyKwargs = Field(  # type: ignore[valid-type]
        default_factory=dict, description="network shapes, passed to QIPOPolicy"
    )
    path_kwargs: OptimalTransportPathKwargs = Field(  # type: ignore[valid-type]
        default_factory=dict, description="options of the probability path (e.g. sigma_min)"
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> QIPOConfig:
        """Settings valid alone but not together."""
        if self.guidance_max is not None and self.beta > self.guidance_max:
            raise combination_error(
                ("beta", "guidance_max"),
                f"beta={self.beta} must lie in [0, guidance_max={self.guidance_max}]: the policy is trained "
                "for guidance scales up to guidance_max, and beta is the one it acts at; raise guidance_max",
            )
        if self.extraction_trust_limit is not None and self.extraction_alpha is None:
            raise combination_error(
                ("extraction_trust_limit", "extraction_alpha"),
                "extraction_trust_limit guards the Q-guided extraction: it needs extraction_alpha "
                f"(got extraction_trust_limit={self.extraction_trust_limit} with extraction_alpha=None); "
                "set extraction_trust_limit=None too",
            )
        if self.extraction_trust_concentration is not None and self.extraction_trust_limit is None:
            raise combination_error(
                ("extraction_trust_concentration", "extraction_trust_limit"),
                "extraction_trust_concentration says which promises above extraction_trust_limit are still "
                f"trusted: it needs extraction_trust_limit (got extraction_trust_concentration="
                f"{self.extraction_trust_concentration} with extraction_trust_limit=None); set both, or neither",
            )
        if self.extraction_critic == "policy" and self.extraction_alpha is None:
            raise combination_error(
                ("extraction_critic", "extraction_alpha"),
                "extraction_critic='policy' trains the critic on the actions of a Q-guided extraction: it needs "
                "extraction_alpha (got extraction_alpha=None, a plain copy, which reads no critic); set "
                "extraction_critic='frozen' or an extraction_alpha",
            )
        if self.extraction_alpha is not None and self.distill_steps == 0:
            raise combination_error(
                ("extraction_alpha", "distill_steps"),
                f"extraction_alpha={self.extraction_alpha} shapes the one-step policy, which only distill_steps > 0 "
                "trains: keep distill_steps > 0 (the CPU recipe: 10000), or set extraction_alpha=None and "
                "extraction_trust_limit=None to act with the refined flow's sampler",
            )
        if self.deterministic_action == "mean" and self.best_of_n > 1:
            raise combination_error(
                ("deterministic_action", "best_of_n"),
                "deterministic_action='mean' averages the policy's actions and best_of_n picks one of them: "
                "set best_of_n=1 or deterministic_action='zero_noise'",
            )
        try:
            path = make_path(self.path_name, **self.path_kwargs)
        except (TypeError, ValueError) as error:
            raise combination_error(("path_kwargs",), f"path_kwargs: {error}") from None
        try:
            path.check_solver(self.solver, self.n_sampling_steps)
        except ValueError as error:
            raise combination_error(("solver",), str(error)) from None
        return self

    def replace(self, **changes: Any) -> QIPOConfig:
        """A validated copy with ``changes`` applied (a config itself never changes)."""
        return type(self).model_validate({**dict(self), **changes})
