"""QIPO: behaviour warm-up → critic → Q-weighted iterative policy optimisation [→ one-step distillation] → predict.

:class:`QIPO` owns the hyperparameters and the training loop; :class:`QIPOFlow` and
:class:`QIPODiffusion` (in ``flow.py`` / ``diffusion.py``) only choose the probability path and
its sampler.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qipo_agents.common.base import OfflineAlgorithm
from qipo_agents.data.device_buffer import DeviceBuffer
from qipo_agents.data.scalers import ObservationNormalizer, RewardScaler
from qipo_agents.generative.paths import ProbabilityPath, make_path
from qipo_agents.qipo.behavior import BehaviorWarmup, CriticWithBehaviorSteps
from qipo_agents.qipo.config import QIPOConfig
from qipo_agents.qipo.critic import ExpectileQLearning, InSupportSoftmaxQLearning
from qipo_agents.qipo.distillation import OneStepDistillation
from qipo_agents.qipo.phase import Phase
from qipo_agents.qipo.policy import QIPOPolicy
from qipo_agents.qipo.refinement import QWeightedRefinement
from qipo_agents.qipo.schedule import BEHAVIOR, CRITIC, DISTILL, PHASES, PhaseSchedule
from qipo_agents.qipo.support import SamplerConfig, clip_actions


class QIPO(OfflineAlgorithm):
    """Q-weighted Iterative Policy Optimisation (Zhang et al., ICLR 2025) over an offline dataset.

    The hyperparameters below are keyword arguments, as in Stable-Baselines3, and the fields of
    ``agent.config``, a frozen :class:`~qipo_agents.qipo.config.QIPOConfig` (typed, with its
    ranges; ``agent.beta`` reads ``agent.config.beta``). Out-of-range values and settings that do
    not go together are refused before any data is read.

    Training runs three phases one after another, on a schedule of gradient steps:

    1. **behaviour warm-up** (``behavior_steps``, K1): the policy learns ``mu(a|s)`` with the
       unweighted flow-matching / denoising loss on dataset pairs;
    2. **critic** (``critic_steps``, K2): in-support softmax Q-learning with ``n_support_actions``
       next actions per next state drawn once from the behaviour model (or IQL's expectile
       critic with ``critic_type="expectile"``);
    3. **refinement** (``policy_steps``, K3): every ``renew_interval`` steps, draw
       ``n_support_actions`` actions per state from the current policy, weight them by
       ``softmax(beta Q)`` within each state, and fit the policy with the energy-weighted loss;
    4. **distillation** (``distill_steps``, optional, off by default): fit a one-step policy
       ``g(s, z)`` to the refined policy's sampler, ``z -> a``; once it is trained the agent acts
       with one network evaluation per action (``one_step_acting``).

    ``learn(total_timesteps)`` splits ``total_timesteps`` across the phases in the proportions
    ``behavior_steps : critic_steps : policy_steps : distill_steps`` (the split is fixed at the first call and
    saved), and ``renew_interval`` is scaled with the refinement phase so the number of support
    renewals stays the same while they stay ``1 / policy_tau`` steps apart (:attr:`scheduled_renew_interval`);
    ``learn(total_timesteps=None)`` runs exactly the configured steps. In a run shorter than the
    configured one, a support draw, a renewal's or the in-support critic's, samples for no more states
    than the phase's minibatches can use (:attr:`support_states_per_renewal`,
    :attr:`critic_support_transitions`), so it costs in proportion to its steps. A later
    ``learn(n)`` continues the schedule where training stopped (for example on a loaded agent),
    whatever ``reset_num_timesteps`` does to the logged counter ``num_timesteps``; steps past the
    end of the schedule keep refining (or distilling, with ``distill_steps > 0``). Saves hold the schedule position and the current phase's
    sampled data, so a run resumed from a checkpoint trains exactly as the uninterrupted one.

    Args:
        policy: ``"MlpPolicy"``.
        dataset: the offline data (see :class:`~qipo_agents.common.base.OfflineAlgorithm`).
        beta: guidance scale ``beta`` of the Q-weights ``softmax_j(beta Q(s, a_j))`` (paper: 3).
        guidance_max: if set, the policy takes ``beta`` as an input and is trained with
            ``beta ~ U[0, guidance_max]`` (paper, Appendix F.2); ``predict(..., guidance_scale=b)``
            then picks the scale at run time. ``beta`` stays the default scale.
        n_support_actions: ``M``, support actions per state, for the critic and the refinement (16).
        include_dataset_action: add the dataset action to each refinement group (Algorithm 2).
        renew_interval: ``K_renew`` in gradient steps: steps between support renewals.
        min_effective_support: trust region of the refinement: each state's weights must keep at
            least this fraction, in ``(0, 1]``, of its support group as effective samples (Kish
            ESS / K); where ``softmax(beta Q)`` would concentrate more, that state's inverse
            temperature is lowered until it does not. It bounds how far one renewal can move the
            policy whatever the scale of Q, so a wrong critic does little harm (None: off, the paper).
        n_support_states: states whose support is renewed each time (random subset; None = all;
            fewer in a run shorter than configured, :attr:`support_states_per_renewal`). Keeps
            renewal affordable on CPU for 10^5-10^6 states: sampling cost is
            ``n_support_states * M * NFE`` network forwards per renewal.
        critic_type: ``"in_support_softmax"`` (QGPO, default) or ``"expectile"`` (IQL).
        alpha_q: softmax inverse temperature of the in-support value (None: ``beta``, as QGPO).
        expectile: IQL expectile for ``critic_type="expectile"`` (0.7).
        gamma: discount factor (0.99).
        critic_tau: soft target update rate of the critic (0.005).
        policy_tau: Polyak rate of the acting policy (0.005).
        behavior_steps: gradient steps of the behaviour warm-up (paper/QGPO scale: 600k).
        critic_steps: gradient steps of the critic phase (1M).
        policy_steps: gradient steps of the QIPO refinement (100k).
        behavior_batch_size: minibatch size of the behaviour warm-up.
        critic_batch_size: minibatch size of the critic phase.
        policy_batch_size: (state, support action) pairs per refinement minibatch.
        behavior_learning_rate: Adam step size of the behaviour warm-up (1e-4).
        behavior_during_critic: (beyond the paper) every critic step also takes a behaviour
            warm-up step, so the behaviour model trains for ``behavior_steps + critic_steps``
            steps within the same schedule (one step updates each network once, as IQL and TD3+BC
            count a step); the critic does not read the actor, so it learns as it does alone (False).
        critic_learning_rate: Adam step size of the critic (3e-4).
        policy_learning_rate: Adam step size of the refinement (1e-4).
        distill_steps: gradient steps of the one-step distillation after the refinement (0: none).
            Loading a trained agent with ``distill_steps=N`` and calling ``learn()`` distils it
            without repeating the earlier phases.
        distill_batch_size: (state, noise) pairs per distillation step.
        distill_learning_rate: Adam step size of the one-step policy.
        extraction_alpha: Q-guided extraction (beyond the paper): the one-step policy minimises
            ``extraction_alpha * ||g(s, z) - teacher(s, z)||^2 - Q(s, g(s, z)) / mean|Q|``
            instead of copying its teacher, so it acts higher on the critic while staying near the
            refined policy; smaller values trust the critic more, a large one gives the plain copy
            back (:mod:`qipo_agents.qipo.distillation`). None (the default): the plain copy, the
            paper's policy. Needs ``distill_steps > 0``.
        extraction_trust_limit: guard of the Q-guided extraction: before it starts, the critic's
            promise is measured (the mean Q gain, in units of mean ``|Q|``, at the per-state
            optimum of the extraction objective on 2048 dataset states); above this limit the
            critic is not trusted and the phase is a plain copy. None: no check. Needs
            ``extraction_alpha``.
        extraction_trust_concentration: (beyond the paper) a promise above
            ``extraction_trust_limit`` is still trusted while it is spread over the states: its
            mean over its median per-state gain at most this value. A critic that extrapolates
            promises its gain at a few states (88-140 on HalfCheetah medium-expert); data with room
            to improve spreads it (2-8 on the other local datasets). None: the limit alone.
            Needs ``extraction_trust_limit``.
        extraction_critic: (beyond the paper) ``"frozen"`` (the default): the critic stays as its
            phase left it; ``"policy"``: while a trusted extraction runs, the critic also takes one
            step per extraction step toward ``r + gamma (1 - terminated) min Q̄(s', g(s', z'))``,
            the one-step policy's own next actions, as Flow Q-Learning and TD3+BC train theirs.
            Needs ``extraction_alpha``.
        extraction_acting: how ``predict(obs, deterministic=False)`` acts once the one-step policy
            is a Q-guided extraction its guard trusted (:attr:`acts_with_extraction`):
            ``"sampled"`` (the default) or ``"deterministic"``, as ``deterministic=True`` acts
            (beyond the paper: an extraction has climbed the critic, and its central action scored
            above its sampled ones in 14 of 17 runs on seven local datasets, but stalled on some
            seeds). A plain copy, the sampler and the behaviour model keep sampling.
        one_step_acting: once the distillation has run, act with the one-step policy (one
            network evaluation); False acts with the multi-step sampler it was distilled from.
        n_sampling_steps: solver steps for acting and support sampling (None: the path default).
        solver: sampler name (None: the path default).
        best_of_n: at predict time draw N actions per state and act with the best by Q (1 = off).
        acting_temperature: standard deviation of the noise a sampled action starts from, in units
            of the training noise's (1: sample the policy, as the paper acts; 0: the zero-noise
            action of ``deterministic=True``). Values between shrink the sampled spread around the
            zero-noise action (under the OT path a Gaussian policy's standard deviation scales by
            it exactly) while keeping some of the policy's stochasticity. Acting only: support
            actions and the critic's next actions are always drawn at temperature 1.
        deterministic_action: what ``predict(obs, deterministic=True)`` acts with: ``"zero_noise"``
            (the default: the policy's action at zero noise) or ``"mean"`` (the mean of
            ``mean_action_samples`` actions from fixed noises, the policy's mean action).
        mean_action_samples: actions averaged per state by ``deterministic_action="mean"``.
        normalize_observations: standardise observations with dataset statistics (saved).
        reward_scaling: ``"locomotion"`` (QGPO: ``r * 1000 / (max return - min return)``),
            ``"antmaze"`` (``r - 1``) or ``"none"``.
        sampling_chunk_size: (state, action) pairs per batched sampling call.
        precision: ``"fp32"`` (the default), or ``"bf16-mixed"``: the gradient steps' matrix
            products in bfloat16 (1.1-1.7x the float32 step rate on a CPU with AVX512-BF16),
            each network's output layer, the losses, weights and optimiser state in float32;
            sampling and acting stay float32 (:mod:`qipo_agents.common.precision`).
        policy_kwargs: actor/critic shapes: ``hidden_dims`` (512, 256, 128), ``architecture``
            (``"unet"`` or ``"mlp"``), ``embed_dim`` (128), ``critic_hidden_dims`` (256, 256, 256),
            ``n_critics`` (2: twin Q-networks; every use of Q takes the minimum over them),
            ``critic_layer_norm`` (False; True: layer normalisation in the Q-networks, ReBRAC's critic),
            and, with ``distill_steps > 0``, the one-step policy's: ``one_step_architecture``
            (``"field"``: a copy of the actor read once at the noise end and started from it, the
            default; ``"mlp"``: a plain MLP of ``one_step_hidden_dims``, (256, 256, 256), from scratch).
        path_kwargs: probability-path options (e.g. ``sigma_min`` for flows, ``beta_0``/``beta_1`` for VP).
        verbose: 0 silent, 1 training logs to stdout.
        seed: seed of Python, NumPy and torch (as in Stable-Baselines3).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:1"``...
        tensorboard_log: folder of TensorBoard logs (None: none), as in Stable-Baselines3.
    """

    config_class = QIPOConfig

    def __init__(
        self,
        policy: str = "MlpPolicy",
        dataset: Any = None,
        verbose: int = 0,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        _init_setup_model: bool = True,
        **hyperparameters: Any,
    ):
        self.schedule: PhaseSchedule | None = None
        self.policy: QIPOPolicy | None = None
        self.data: DeviceBuffer | None = None
        self._phase: Phase | None = None
        self._schedule_position = 0
        self._saved_phase: tuple[str, dict[str, Any]] | None = None
        self._phase_started = time.perf_counter()
        self.extraction_trusted = False  # the distillation's guard kept its Q-guided extraction
        super().__init__(policy, dataset, verbose, seed, device, tensorboard_log, _init_setup_model, **hyperparameters)

    # ------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        config = self.config
        obs_dim, action_dim = self.observation_space.shape[0], self.action_space.shape[0]
        self.path: ProbabilityPath = make_path(config.path_name, **config.path_kwargs)
        self.observation_normalizer = ObservationNormalizer(enabled=config.normalize_observations)
        self.reward_scaler = RewardScaler(config.reward_scaling)
        if self.buffer is not None:
            if config.normalize_observations:
                self.observation_normalizer.fit(self.buffer)
            self.reward_scaler.fit(self.buffer)
        kwargs = dict(config.policy_kwargs)
        one_step_architecture = kwargs.pop("one_step_architecture", "field")
        self.policy = QIPOPolicy(
            obs_dim,
            action_dim,
            guidance_max=config.guidance_max,
            use_value_network=config.critic_type == "expectile",
            actor_learning_rate=config.behavior_learning_rate,
            critic_learning_rate=config.critic_learning_rate,
            one_step_architecture=one_step_architecture if config.distill_steps > 0 else None,
            one_step_noise_time=self.path.noise_time,
            one_step_guidance=config.beta,
            one_step_learning_rate=config.distill_learning_rate,
            **kwargs,
        ).to(self.device)
        self.sampler = SamplerConfig(self.path, config.n_sampling_steps, config.solver)
        self.action_low = torch.as_tensor(self.action_space.low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(self.action_space.high, dtype=torch.float32, device=self.device)
        self._on_dataset_attached()

    def _on_dataset_attached(self) -> None:
        self.data = None
        self._phase = None
        if self.buffer is not None:
            self.data = DeviceBuffer(self.buffer, self.observation_normalizer, self.reward_scaler, self.device)

    def _make_phase(self, name: str) -> Phase:
        """The phase ``name`` of the schedule, on the agent's networks, data, sampler and config."""
        inputs = (self.policy, self.data, self.sampler, self.config, self.generator, self.action_low, self.action_high)
        interruptible = {"check_interrupt": self._raise_pending_interrupt}
        if name == BEHAVIOR:
            return BehaviorWarmup(*inputs)
        if name == CRITIC:
            if self.config.critic_type == "expectile":
                critic = ExpectileQLearning(*inputs)
            else:
                critic = InSupportSoftmaxQLearning(
                    *inputs, n_support_transitions=self.critic_support_transitions, **interruptible
                )
            if self.config.behavior_during_critic:
                return CriticWithBehaviorSteps(critic, BehaviorWarmup(*inputs))
            return critic
        if name == DISTILL:
            return OneStepDistillation(*inputs)
        return QWeightedRefinement(
            *inputs,
            renew_interval=self.scheduled_renew_interval,
            n_support_states=self.support_states_per_renewal,
            **interruptible,
        )

    # ------------------------------------------------------------------ training
    def _setup_learn(self, total_timesteps: int | None, reset_num_timesteps: bool) -> int:
        # the first call fixes the schedule; later calls continue it (a refined agent keeps
        # refining), whatever reset_num_timesteps does to the logged step counter
        if self.schedule is None:
            config = self.config
            configured = PhaseSchedule(
                config.behavior_steps, config.critic_steps, config.policy_steps, config.distill_steps
            )
            self.schedule = configured if total_timesteps is None else configured.scaled_to(int(total_timesteps))
        if reset_num_timesteps:
            self.num_timesteps = 0
        if total_timesteps is None:
            total_timesteps = max(self.schedule.total - self._schedule_position, 0)
        return self.num_timesteps + int(total_timesteps)

    def _train_step(self):
        name = self.schedule.phase_at(self._schedule_position)
        if self._phase is None or self._phase.name != name:
            self._start_phase(name)
        losses = self._phase.train_step()
        self._schedule_position += 1
        return losses

    def _start_phase(self, name: str) -> None:
        if self.verbose:
            print(f"QIPO: starting the {name} phase at step {self._schedule_position}")
        started = time.perf_counter()
        phase = self._make_phase(name)
        saved = self._saved_phase
        if saved is not None and saved[0] == name:
            phase.load_state_dict(saved[1])  # resume mid-phase: no second support draw
        else:
            # a TrainingSignal between two of its sampling chunks leaves from here: the agent keeps
            # the phase of the step before (the actor learning rate the new phase set is harmless:
            # every phase that trains the actor sets its own)
            phase.start()
        if isinstance(phase, OneStepDistillation):
            self.extraction_trusted = phase.critic_trusted
        self._phase, self._saved_phase, self._phase_started = phase, None, started

    def _record_extra_logs(self) -> None:
        if self._phase is not None:
            self.logger.record("time/phase", PHASES.index(self._phase.name))
            self.logger.record("time/phase_name", self._phase.name, exclude=("tensorboard", "csv"))
            self.logger.record("time/phase_seconds", time.perf_counter() - self._phase_started)
            if isinstance(self._phase, QWeightedRefinement):
                self.logger.record("train/support_renewals", self._phase.n_renewals)

    @property
    def scheduled_renew_interval(self) -> int:
        """Steps between support renewals: ``renew_interval`` scaled like the refinement phase, so
        ``learn(total_timesteps)`` keeps the configured number of renewals (``policy_steps /
        renew_interval``), but never scaled below ``1 / policy_tau`` steps (nor below
        ``renew_interval``, where that is configured shorter): a short run renews fewer times.

        The support is drawn from ``actor_ema``, which follows the trained actor with a lag of about
        ``1 / policy_tau`` steps (200 at the default rate). A renewal sooner than that draws again
        from mostly the policy that drew the previous support: it pays for the samples without
        moving the target ``mu exp((l + 1) beta Q)`` on.
        """
        config = self.config
        if self.schedule is None or config.policy_steps == 0:
            return config.renew_interval
        scaled = round(config.renew_interval * self.schedule.policy_steps / config.policy_steps)
        closest = min(config.renew_interval, max(1, round(1 / config.policy_tau)))
        return max(scaled, closest)

    @property
    def support_states_per_renewal(self) -> int | None:
        """States whose support one renewal draws, a random subset of the dataset when fewer than it
        holds (None: every state): ``n_support_states``, or, in a run shorter than configured, no more
        than the minibatches can use before the next renewal.

        Between two renewals the refinement trains on ``policy_batch_size`` (state, support action)
        pairs per step for ``min(scheduled_renew_interval, refinement steps)`` steps, and a state
        brings ``K`` pairs (``n_support_actions``, plus the dataset action), so a shortened run's
        renewal draws for at most ``ceil(steps * policy_batch_size / K)`` states: its sampling costs
        at most one solver run (NFE network evaluations) per pair a gradient step trains on, however
        large the dataset, and the run samples in proportion to its steps (steps past the end of its
        schedule keep the size). With the constructor's settings squeezed into ``learn(600)``, 37
        refinement steps: 8915 states, where every state of the dataset would be drawn unbounded.

        A run of the configured length (or longer) draws what it is configured to: its support size
        was chosen for that length, and documented runs whose renewals draw more than their
        minibatches use (on CPU, 10000 states every 250 steps, or 40000 every 1000) have seeded
        results to reproduce.
        """
        config = self.config
        if self.schedule is None or self.schedule.policy_steps >= config.policy_steps:
            return config.n_support_states
        # a renewal serves the steps up to the next one, or to the end of the shortened refinement
        steps_served = max(1, min(self.scheduled_renew_interval, self.schedule.policy_steps))
        group_size = config.n_support_actions + int(config.include_dataset_action)
        usable = math.ceil(steps_served * config.policy_batch_size / group_size)
        return usable if config.n_support_states is None else min(config.n_support_states, usable)

    @property
    def critic_support_transitions(self) -> int | None:
        """Transitions whose next state the in-support critic draws ``n_support_actions`` actions
        for, a random subset of the dataset when fewer than it holds (None: every transition, as a
        run of the configured length draws). In a run shorter than configured: no more than its
        minibatches can read over the phase, ``critic_steps x critic_batch_size``; they then come from
        these transitions only, and the one-off draw costs in proportion to the phase's steps.
        """
        if self.schedule is None or self.schedule.critic_steps >= self.config.critic_steps:
            return None
        return self.schedule.critic_steps * self.config.critic_batch_size

    @property
    def acts_in_one_step(self) -> bool:
        """Whether ``predict`` uses the distilled one-step policy: ``one_step_acting`` is on and the
        distillation phase has run to the end of the schedule (before that, the sampler acts)."""
        return (
            self.config.one_step_acting
            and self.policy.one_step is not None
            and self.schedule is not None
            and self.schedule.distill_steps > 0
            and self._schedule_position >= self.schedule.total
        )

    @property
    def acts_with_extraction(self) -> bool:
        """Whether ``predict`` acts with a Q-guided extraction its guard trusted: the one-step policy
        acts (:attr:`acts_in_one_step`) and its distillation climbed the critic, not a plain copy."""
        return self.acts_in_one_step and self.extraction_trusted

    def acts_deterministically(self, deterministic: bool = False) -> bool:
        """Whether ``predict(obs, deterministic)`` acts deterministically: when asked to, or when
        ``extraction_acting="deterministic"`` and the agent :attr:`acts_with_extraction`."""
        return deterministic or (self.config.extraction_acting == "deterministic" and self.acts_with_extraction)

    @property
    def current_phase(self) -> str | None:
        """Name of the phase being trained (``"behavior"``, ``"critic"``, ``"policy"``) or None."""
        return None if self._phase is None else self._phase.name

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        guidance_scale: float | None = None,
    ) -> tuple[np.ndarray, None]:
        """Actions for one observation ``(obs_dim,)`` or a batch ``(n, obs_dim)`` (SB3 signature).

        ``deterministic=True`` integrates from zero noise (plus fixed noises for the other
        ``best_of_n`` candidates), so the same observation always gives the same action: the
        policy's central action. With ``deterministic_action="mean"`` it is instead the mean of
        ``mean_action_samples`` actions drawn from fixed noises, an estimate of the policy's mean
        action ``E[a | s]`` (what SB3's deterministic Gaussian policies and a regression BC act
        with); it costs ``mean_action_samples`` times the network evaluations, batched. For a
        strongly multimodal policy either can fall between modes; use ``best_of_n > 1`` or
        stochastic actions there. A trusted Q-guided extraction acts deterministically with
        either value when ``extraction_acting="deterministic"`` (:meth:`acts_deterministically`).
        ``guidance_scale`` picks ``beta`` for a guidance-conditioned agent (``guidance_max`` set).
        """
        return super().predict(observation, state, episode_start, deterministic, guidance_scale=guidance_scale)

    @torch.inference_mode()
    def _predict(self, observations: np.ndarray, deterministic: bool, guidance_scale: float | None = None):
        config = self.config
        if guidance_scale is not None:
            if config.guidance_max is None:
                raise ValueError("guidance_scale needs an agent trained with guidance_max (beta as an input)")
            if not 0.0 <= guidance_scale <= config.guidance_max:
                raise ValueError(f"guidance_scale must lie in [0, {config.guidance_max}], got {guidance_scale}")
        obs = torch.as_tensor(self.observation_normalizer.transform(observations), device=self.device)
        deterministic = self.acts_deterministically(deterministic)
        mean_action = deterministic and config.deterministic_action == "mean"
        n_candidates = config.mean_action_samples if mean_action else config.best_of_n
        n, action_dim = obs.shape[0], self.action_space.shape[0]
        if deterministic:
            # zero noise (the noise distribution's mode) maps to the policy's central action;
            # further best-of-N candidates, or the mean's samples, use fixed noises
            fixed = torch.Generator(device=self.device).manual_seed(0)
            noise = torch.randn(n_candidates, action_dim, device=self.device, generator=fixed)
            if not mean_action:
                noise[0] = 0.0
            noise = noise.repeat(n, 1)
        else:
            noise = torch.randn(n * n_candidates, action_dim, device=self.device, generator=self.generator)
            noise *= config.acting_temperature
        repeated = obs.repeat_interleave(n_candidates, dim=0) if n_candidates > 1 else obs
        guidance = config.beta if guidance_scale is None else float(guidance_scale)
        if self.acts_in_one_step:
            if guidance_scale is not None and guidance_scale != config.beta:
                raise ValueError(
                    f"the one-step policy was distilled at beta={config.beta}; set one_step_acting=False "
                    "to act at another guidance_scale"
                )
            actions = self.policy.one_step(repeated, noise)
        else:
            actions = self.sampler.sample(self.policy.actor_ema, repeated, noise, guidance=guidance)
        if mean_action:
            actions = clip_actions(actions, self.action_low, self.action_high)  # as each action would be acted
            actions = actions.view(n, n_candidates, action_dim).mean(dim=1)
        elif n_candidates > 1:
            actions = clip_actions(actions, self.action_low, self.action_high)
            q = self.policy.critic.min_q(repeated, actions).view(n, n_candidates)
            best = q.argmax(dim=1)
            actions = actions.view(n, n_candidates, action_dim)[torch.arange(n, device=self.device), best]
        return actions.cpu().numpy()

    def export(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write the acting policy for deployment: ``"onnx"`` (onnxruntime) or ``"torchscript"``,
        by default the format the suffix names (``policy.onnx``, ``policy.pt``).

        The file holds the observation normalisation, the solver unrolled at its fixed steps and
        the action clipping (:class:`~qipo_agents.qipo.export.ActingPolicy`): inputs
        ``observation (batch, obs_dim)`` and ``noise (batch, action_dim)``, output ``action``;
        zero noise gives ``predict(obs, deterministic=True)``, standard normal noise a sampled action
        (an agent that :meth:`acts_deterministically` acts as zero noise does).
        """
        from qipo_agents.qipo.export import export_policy

        return export_policy(self, path, format)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, path, *args, **kwargs):
        """Load a saved agent (:meth:`OfflineAlgorithm.load <qipo_agents.common.base.OfflineAlgorithm.load>`).

        An agent saved before its refinement started (at the end of its critic phase) also takes
        new lengths for the phases still ahead, ``policy_steps`` and ``distill_steps``: its schedule
        then runs them instead of the saved ones (``policy_steps=0`` distils the behaviour model
        itself).
        """
        agent = super().load(path, *args, **kwargs)
        ahead = {name: kwargs[name] for name in ("policy_steps", "distill_steps") if name in kwargs}
        if ahead and agent.schedule is not None and agent._schedule_position <= agent.schedule.refinement_start:
            agent.schedule = dataclasses.replace(agent.schedule, **ahead)
        return agent

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        json_state = {
            "observation_normalizer": self.observation_normalizer.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict(),
            "extraction_trusted": self.extraction_trusted,
        }
        tensors = {"policy": self.policy.state_dict()}
        tensors.update({f"policy.{name}": opt.state_dict() for name, opt in self.policy.optimizers().items()})
        return json_state, tensors

    def _training_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._phase is None and self._saved_phase is not None:
            # loaded, and stopped before a step started its phase: save the loaded phase again
            name, phase_state = self._saved_phase
        else:
            name, phase_state = self.current_phase, None if self._phase is None else self._phase.state_dict()
        json_state = {
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
            "schedule_position": self._schedule_position,
            "phase": name,
        }
        return json_state, ({} if phase_state is None else {"phase": phase_state})

    def _load_training_state(self, json_state: dict[str, Any], tensor_state: dict[str, Any]) -> None:
        schedule = json_state.get("schedule")
        self.schedule = None if schedule is None else PhaseSchedule(**schedule)
        if self.schedule is not None and self.schedule.distill_steps == 0 and self.config.distill_steps > 0:
            # an agent trained without distillation, loaded with distill_steps: distil it next
            self.schedule = dataclasses.replace(self.schedule, distill_steps=self.config.distill_steps)
        self._schedule_position = int(json_state.get("schedule_position", self.num_timesteps))
        if json_state.get("phase") is not None and "phase" in tensor_state:
            self._saved_phase = (json_state["phase"], tensor_state["phase"])

    def _continues_training(self) -> bool:
        return self.schedule is None or self._schedule_position < self.schedule.total

    def _load_state(self, json_state: dict[str, Any], tensor_state: dict[str, Any]) -> None:
        self.observation_normalizer.load_state_dict(json_state["observation_normalizer"])
        self.reward_scaler.load_state_dict(json_state["reward_scaler"])
        if "extraction_trusted" in json_state:
            self.extraction_trusted = bool(json_state["extraction_trusted"])
        else:  # saved before the agent recorded the verdict: the distillation phase's own state holds it
            phase = tensor_state.get("training_state", {}).get("phase", {})
            in_distillation = json_state.get("training_state", {}).get("phase") == DISTILL
            self.extraction_trusted = in_distillation and bool(phase.get("critic_trusted", False))
        self._load_parameters(tensor_state)

    def _load_parameters(self, params: dict[str, dict]) -> None:
        params = dict(params)
        if "policy" in params:
            state = params["policy"]
            if self.policy.one_step is not None and not any(key.startswith("one_step.") for key in state):
                # trained without distillation, loaded with distill_steps > 0: the one-step policy starts fresh
                state = {**state, **{f"one_step.{k}": v for k, v in self.policy.one_step.state_dict().items()}}
            self.policy.load_state_dict(state)
        for name, optimizer in self.policy.optimizers().items():
            if f"policy.{name}" in params:
                optimizer.load_state_dict(params[f"policy.{name}"])
