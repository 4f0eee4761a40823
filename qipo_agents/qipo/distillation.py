"""Phase 4 — one-step distillation (optional, ``distill_steps``): act with one network evaluation.

The refined policy acts by integrating its ODE (or running its diffusion sampler) from a noise
``z ~ N(0, I)``: a deterministic map ``z -> a`` per state, of ``NFE`` network evaluations. This
phase fits a network ``g(s, z)`` to that map by regression on the sampler's own output,
``|| g(s, z) - clip(solve(actor_ema, s, z)) ||^2``, as Flow Q-Learning distils its flow policy
into a one-step policy (Park et al., 2025). Every step draws fresh noise for its minibatch of
dataset states and asks the teacher for its actions (``NFE`` forwards of the teacher, no
backward), so over the phase ``g`` sees the map at many noises per state. Once trained, ``g``
acts in one evaluation and, fed standard normal noise, samples the same action distribution;
zero noise gives the same central action as ``predict(obs, deterministic=True)`` of the
multi-step policy.

The default student (:class:`~qipo_agents.networks.one_step.OneStepField`) is a copy of the
teacher read once at the noise end, copied from ``actor_ema`` when the phase starts. Each step's
pairs are fresh, so its loss before the update is a held-out error: ``distill_relative_error``
logs it as a fraction of the teacher's action variance in the minibatch (0: a perfect copy, 1: no
better than the mean action).

The teacher (``actor_ema``) is not changed, so the multi-step policy stays available
(``one_step_acting=False``).

**Q-guided extraction** (``extraction_alpha`` set; beyond the paper, after Flow Q-Learning and
TD3+BC): the student also climbs the critic,

    ``loss = extraction_alpha * || g(s, z) - teacher(s, z) ||^2 - Q(s, clip(g(s, z))) / mean_batch |Q|``

with ``Q`` the minimum over the critic ensemble. Dividing by the minibatch's mean ``|Q|`` (no
gradient), as TD3+BC does, makes the Q term scale-free, so one ``extraction_alpha`` serves tasks
whose returns differ by orders of magnitude; a large ``extraction_alpha`` gives the plain copy
back. By default the critic is frozen here (its weights get no gradient): only the student
moves. Without ``extraction_alpha`` the phase is the plain copy, and the agent acts as the
paper's refined policy.

``extraction_critic="policy"`` (beyond the paper, Flow Q-Learning's and TD3+BC's critic) goes on
training the critic while a trusted extraction runs: each step, before the student's, the critic
takes one step on a dataset minibatch (``critic_batch_size``) toward
``r + gamma (1 - terminated) min_k Q̄_k(s', clip(g(s', z')))``, ``z' ~ N(0, I)``: it evaluates the
student's own actions instead of the data's in-sample maximum, so the student climbs a critic of
what it does. ``"frozen"`` (the default) keeps the critic as its phase left it. A plain copy reads
no critic: the critic stays frozen there whatever the setting.

``extraction_trust_limit`` asks the critic, before the extraction starts, how much it promises: on
``TRUST_CHECK_STATES`` dataset states, one teacher action each is moved to the per-state optimum of
the same objective (gradient steps on the action itself, no network), and the mean Q gain found
there, in units of mean ``|Q|``, is the critic's promise. A critic fitted on dataset actions alone
has little evidence for large gains away from them: where it is right the optimum gains a few per
cent (Walker2d medium: 0.02 at ``extraction_alpha=0.1``), where it misleads it promises more
(HalfCheetah medium-expert: 0.15, 0.44 on its medium half; ``docs/benchmarks.md``). A promise
above the limit turns the Q term off for the whole phase: the student is the plain copy. The
check draws from a generator of its own, so a trusted extraction trains exactly as without it.

``extraction_trust_concentration`` tells two kinds of large promise apart by where they sit. A
critic that extrapolates promises much at a few states and little elsewhere; data with room to
improve (a replay buffer of a learning agent's early, mediocre actions) makes it promise a
moderate gain at most states. The promise's **concentration**, its mean over its median
per-state gain, measures that: 2 to 8 on every local dataset but one, 88 to 140 on HalfCheetah
medium-expert (``docs/benchmarks.md``). With the option set, a promise above the limit is still
trusted while its concentration is at most ``extraction_trust_concentration``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qipo_agents.common.precision import training_autocast
from qipo_agents.data.device_buffer import DeviceBuffer
from qipo_agents.qipo.critic import CriticLoss, fit_q
from qipo_agents.qipo.phase import Phase
from qipo_agents.qipo.policy import QIPOPolicy
from qipo_agents.qipo.support import SamplerConfig, clip_actions


@dataclass(frozen=True)
class DistillationLoss:
    """``distill_loss``: squared error to the teacher's actions; ``distill_relative_error``: the same
    as a fraction of the teacher's action variance."""

    distill_loss: torch.Tensor
    distill_relative_error: torch.Tensor


@dataclass(frozen=True)
class ExtractionLoss(DistillationLoss):
    """A Q-guided extraction's step: the copy's fields, and ``extraction_q_gain``: mean
    ``Q(s, g(s, z)) - Q(s, teacher(s, z))`` over the minibatch in units of its mean ``|Q|`` (how far
    the student has climbed the critic above the policy it copies; about 0 for a plain copy);
    ``extraction_critic_spread``: how much more the ensemble's Q-networks disagree at the student's
    actions than at the teacher's, the ratio of their mean ``max_k Q_k - min_k Q_k`` (1 for a plain
    copy; above 1 where the student leaves the data the critics agree on);
    ``extraction_promised_q_gain``: the critic's promise of the trust check (0 without one);
    ``extraction_promise_concentration``: its mean over median per-state gain (0 without a check);
    ``extraction_trusted``: 1 while the Q term is on, 0 where the trust check turned it off."""

    extraction_q_gain: torch.Tensor
    extraction_critic_spread: torch.Tensor
    extraction_promised_q_gain: torch.Tensor
    extraction_promise_concentration: torch.Tensor
    extraction_trusted: torch.Tensor


@dataclass(frozen=True)
class ExtractionWithCriticLoss(ExtractionLoss):
    """A step of an extraction with ``extraction_critic="policy"``: the extraction's fields, and the
    critic's step on the student's actions under the critic phase's names (``critic_loss``,
    ``q_mean``, ``target_mean``), so the critic's curves go on across the two phases."""

    critic_loss: torch.Tensor
    q_mean: torch.Tensor
    target_mean: torch.Tensor


#: Dataset states the trust check moves one teacher action of to the extraction objective's optimum.
TRUST_CHECK_STATES = 2048
#: Adam steps (learning rate 1e-2, in action units) of that per-state optimisation.
TRUST_CHECK_STEPS = 200


def extraction_optimum(
    policy: QIPOPolicy,
    observations: torch.Tensor,
    teacher_actions: torch.Tensor,
    extraction_alpha: float,
    action_low: torch.Tensor,
    action_high: torch.Tensor,
) -> torch.Tensor:
    """Each state's action at the optimum of the extraction objective, ``(n, action_dim)``, clipped.

    Each ``teacher_actions (n, action_dim)`` row ``t`` is moved, by ``TRUST_CHECK_STEPS`` Adam steps
    on the action itself (no network), to minimise
    ``extraction_alpha * ||a - t||^2 / action_dim - Q(s, a) / mean |Q(s, t)|``: the extraction loss
    of one sample, so the result bounds what a student extracted at ``extraction_alpha`` reaches.
    """
    with torch.no_grad():
        scale = policy.critic.min_q(observations, teacher_actions).abs().mean().clamp_min(1e-6)
    actions = teacher_actions.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([actions], lr=1e-2)
    for _ in range(TRUST_CHECK_STEPS):
        q = policy.critic.min_q(observations, clip_actions(actions, action_low, action_high))
        loss = (extraction_alpha * (actions - teacher_actions).pow(2).mean(dim=1) - q / scale).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return clip_actions(actions.detach(), action_low, action_high)


@torch.no_grad()
def per_state_q_gain(
    policy: QIPOPolicy, observations: torch.Tensor, teacher_actions: torch.Tensor, optimum: torch.Tensor
) -> torch.Tensor:
    """Each state's ``Q(s, optimum) - Q(s, teacher)`` in units of the states' mean ``|Q(s, teacher)|``, ``(n,)``."""
    start_q = policy.critic.min_q(observations, teacher_actions)
    return (policy.critic.min_q(observations, optimum) - start_q) / start_q.abs().mean().clamp_min(1e-6)


def promised_q_gain(
    policy: QIPOPolicy, observations: torch.Tensor, teacher_actions: torch.Tensor, optimum: torch.Tensor
) -> torch.Tensor:
    """The critic's promise: ``mean(Q(s, optimum) - Q(s, teacher)) / mean |Q(s, teacher)|`` (a scalar)."""
    return per_state_q_gain(policy, observations, teacher_actions, optimum).mean()


def promise_concentration(gains: torch.Tensor) -> torch.Tensor:
    """How few states carry the promise: the mean of per-state gains ``(n,)`` over their median, a
    scalar (``inf`` where the median is not positive: the promise sits at fewer than half the states)."""
    median = gains.median()
    if median <= 0:
        return torch.tensor(float("inf"), device=gains.device)
    return gains.mean() / median


def guard_trusts(
    promise: torch.Tensor, concentration: torch.Tensor, trust_limit: float, trust_concentration: float | None
) -> bool:
    """The guard's verdict: a promise at most ``trust_limit``, or (with ``trust_concentration``) one
    spread over the states, its concentration at most ``trust_concentration``."""
    if promise <= trust_limit:
        return True
    return trust_concentration is not None and bool(concentration <= trust_concentration)


def trust_check_gains(
    policy: QIPOPolicy,
    data: DeviceBuffer,
    sampler: SamplerConfig,
    beta: float,
    extraction_alpha: float,
    action_low: torch.Tensor,
    action_high: torch.Tensor,
) -> torch.Tensor:
    """The trust check's per-state Q gains, ``(TRUST_CHECK_STATES,)``: on random dataset states (drawn
    from a generator of its own, seeded 0, so the run's stream is left alone), one teacher action
    each, moved to the extraction objective's optimum (:func:`extraction_optimum`). Their mean is the
    critic's promise."""
    own = torch.Generator(device=data.device).manual_seed(0)
    indices = torch.randint(len(data), (TRUST_CHECK_STATES,), generator=own, device=data.device)
    observations = data.observations[indices]
    noise = torch.randn(len(indices), action_low.shape[0], generator=own, device=data.device)
    teacher = clip_actions(sampler.sample(policy.actor_ema, observations, noise, beta), action_low, action_high)
    teacher = teacher.clone()  # the sampler runs in inference mode; a clone is a plain tensor for autograd
    optimum = extraction_optimum(policy, observations, teacher, extraction_alpha, action_low, action_high)
    return per_state_q_gain(policy, observations, teacher, optimum)


class OneStepDistillation(Phase):
    """Regression of the one-step policy on the multi-step sampler's actions, optionally Q-guided.

    ``one_step`` is trained on ``distill_batch_size`` (state, noise) pairs per step; ``actor_ema``
    is the teacher, acting with the agent's own sampler at its ``beta`` (used only by a
    guidance-conditioned actor). ``extraction_alpha``, ``extraction_trust_limit`` and
    ``extraction_critic`` are those of the module docstring; ``extraction_alpha=None`` makes the
    phase a plain copy.
    """

    name = "distill"

    def __init__(self, *phase, **phase_keywords):
        super().__init__(*phase, **phase_keywords)
        if self.policy.one_step is None:
            raise ValueError("the policy has no one-step network: build it with distill_steps > 0")
        self.promised_q_gain = torch.zeros((), device=self.data.device)
        self.promise_concentration = torch.zeros((), device=self.data.device)
        self.critic_trusted = self.config.extraction_alpha is not None
        # the critic's own phase has ended: the student's gradients reach its actions only
        # (extraction_critic="policy" turns the critic's gradients on for its own steps alone)
        self.policy.critic.requires_grad_(False)

    def start(self) -> None:
        """Start the student from the teacher (the field student; the MLP starts from scratch) and,
        with a trust limit, ask the critic what it promises. Every step then asks the teacher for
        fresh (noise, action) pairs."""
        self.policy.one_step.initialise_from(self.policy.actor_ema)
        alpha, trust_limit = self.config.extraction_alpha, self.config.extraction_trust_limit
        if alpha is not None and trust_limit is not None:
            gains = trust_check_gains(
                self.policy, self.data, self.sampler, self.config.beta, alpha, self.action_low, self.action_high
            )
            self.promised_q_gain = gains.mean()
            self.promise_concentration = promise_concentration(gains)
            self.critic_trusted = guard_trusts(
                self.promised_q_gain,
                self.promise_concentration,
                trust_limit,
                self.config.extraction_trust_concentration,
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trust check's outcome; beyond it, the networks and the generator the agent saves: a
        resumed phase draws the pairs the uninterrupted one would have drawn."""
        return {
            "promised_q_gain": self.promised_q_gain,
            "promise_concentration": self.promise_concentration,
            "critic_trusted": torch.tensor(self.critic_trusted),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.promised_q_gain = state["promised_q_gain"].to(self.data.device)
        # files saved before the concentration was measured: it is unknown there, and was not used
        unknown = torch.tensor(float("nan"))
        self.promise_concentration = state.get("promise_concentration", unknown).to(self.data.device)
        self.critic_trusted = bool(state["critic_trusted"])

    def evaluate_student(self) -> CriticLoss:
        """One critic step toward ``r + gamma (1 - terminated) min_k Q̄_k(s', clip(g(s', z')))`` on a
        dataset minibatch of ``critic_batch_size`` transitions, ``z' (B, action_dim) ~ N(0, I)``."""
        config = self.config
        batch = self.data.sample(config.critic_batch_size, self.generator)
        noise = torch.randn(
            len(batch.rewards), self.policy.one_step.action_dim, device=batch.rewards.device, generator=self.generator
        )
        with torch.no_grad(), training_autocast(config.precision, batch.rewards.device):
            next_actions = clip_actions(
                self.policy.one_step(batch.next_observations, noise), self.action_low, self.action_high
            )
            next_q = self.policy.critic_target.min_q(batch.next_observations, next_actions).float()
            target = batch.rewards + config.gamma * batch.not_terminated * next_q
        self.policy.critic.requires_grad_(True)
        try:
            return fit_q(self.policy, batch, target, config.critic_tau, config.precision)
        finally:  # the student's step below sends gradients to its actions only
            self.policy.critic.requires_grad_(False)

    def train_step(self) -> DistillationLoss | ExtractionLoss:
        config = self.config
        critic_step = self.evaluate_student() if self.critic_trusted and config.extraction_critic == "policy" else None
        indices = self.data.sample_indices(config.distill_batch_size, self.generator)
        observations = self.data.observations[indices]  # (batch, obs_dim)
        noise = torch.randn(
            len(indices), self.policy.one_step.action_dim, device=observations.device, generator=self.generator
        )
        teacher = self.sampler.sample(self.policy.actor_ema, observations, noise, config.beta)
        # the sampler runs in inference mode; a clone is a plain tensor autograd may keep for backward
        target = clip_actions(teacher, self.action_low, self.action_high).clone()
        relative_error_scale = target.var(dim=0).mean().clamp_min(1e-12)
        if config.extraction_alpha is None:  # the plain copy: no critic in its step
            with training_autocast(config.precision, target.device):
                copy_loss = F.mse_loss(self.policy.one_step(observations, noise), target)
            self.policy.update_one_step(copy_loss)
            return DistillationLoss(copy_loss.detach(), copy_loss.detach() / relative_error_scale)
        with torch.no_grad():
            teacher_qs = self.policy.critic(observations, target)  # (n_critics, batch)
        teacher_q = teacher_qs.min(dim=0).values
        with training_autocast(config.precision, target.device):
            actions = self.policy.one_step(observations, noise)
            copy_loss = F.mse_loss(actions, target)
            qs = self.policy.critic(observations, clip_actions(actions, self.action_low, self.action_high)).float()
        q = qs.min(dim=0).values  # (batch,), the ensemble's minimum as every use of Q takes it
        q_scale = q.detach().abs().mean().clamp_min(1e-6)
        if self.critic_trusted:
            loss = config.extraction_alpha * copy_loss - q.mean() / q_scale
        else:
            loss = copy_loss
        self.policy.update_one_step(loss)
        with torch.no_grad():
            relative_error = copy_loss.detach() / relative_error_scale
            q_gain = (q.detach() - teacher_q).mean() / q_scale
            spread = (qs.max(dim=0).values - q).detach().mean()
            teacher_spread = (teacher_qs.max(dim=0).values - teacher_qs.min(dim=0).values).mean()
        extraction = (
            copy_loss.detach(),
            relative_error,
            q_gain,
            spread / teacher_spread.clamp_min(1e-12),
            self.promised_q_gain,
            self.promise_concentration,
            torch.tensor(float(self.critic_trusted)),
        )
        if critic_step is None:
            return ExtractionLoss(*extraction)
        return ExtractionWithCriticLoss(
            *extraction, critic_step.critic_loss, critic_step.q_mean, critic_step.target_mean
        )
