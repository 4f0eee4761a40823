"""Phase 1 — behaviour warm-up (K1): fit the policy to the dataset's actions with the plain loss.

With ``behavior_during_critic`` (beyond the paper) the warm-up also goes on through the critic
phase: each of its steps updates the critic and then the behaviour model, one minibatch each, as
IQL and TD3+BC count one step for an update of every network. Neither critic reads the actor while
it trains (the in-support critic draws its support actions once, at the phase's start), so the
critic learns as it does alone (from other minibatches: the two share the run's generator), and the
behaviour model gets ``behavior_steps + critic_steps`` updates within the same step budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from qipo_agents.common.precision import training_autocast
from qipo_agents.generative.losses import energy_weighted_loss
from qipo_agents.qipo.critic import CriticLoss
from qipo_agents.qipo.phase import Phase


@dataclass(frozen=True)
class BehaviorLoss:
    behavior_loss: torch.Tensor


class BehaviorWarmup(Phase):
    """Unweighted conditional flow-matching / denoising on dataset ``(s, a)`` pairs: ``mu(a|s)``.

    Trains ``actor`` on ``behavior_batch_size`` transitions per step at ``behavior_learning_rate``;
    ``actor_ema`` tracks it at ``policy_tau`` (the :class:`~qipo_agents.qipo.phase.Phase` arguments).
    """

    name = "behavior"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy.set_actor_learning_rate(self.config.behavior_learning_rate)

    def train_step(self) -> BehaviorLoss:
        batch_size = self.config.behavior_batch_size
        batch = self.data.sample(batch_size, self.generator)
        guidance = None
        guidance_max = self.policy.actor.guidance_max
        if guidance_max is not None:  # unweighted at every label: the warm-up gives mu at every beta
            guidance = guidance_max * torch.rand(batch_size, device=batch.actions.device, generator=self.generator)
        with training_autocast(self.config.precision, batch.actions.device):
            loss = energy_weighted_loss(
                self.policy.actor,
                self.sampler.path,
                batch.actions,
                condition=batch.observations,
                guidance=guidance,
                generator=self.generator,
            )
        self.policy.update_actor(loss, self.config.policy_tau)
        return BehaviorLoss(loss.detach())


@dataclass(frozen=True)
class CriticAndBehaviorLoss(CriticLoss):
    behavior_loss: torch.Tensor


class CriticWithBehaviorSteps(Phase):
    """The critic phase ``critic`` with one :class:`BehaviorWarmup` step after each of its steps.

    Starts, saves and resumes as ``critic`` (the behaviour model's state is in the networks and the
    generator); its losses are the critic's with ``behavior_loss`` added.
    """

    def __init__(self, critic: Phase, behavior: BehaviorWarmup):
        self.critic, self.behavior, self.name = critic, behavior, critic.name

    def start(self) -> None:
        self.critic.start()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.critic.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.critic.load_state_dict(state)

    def train_step(self) -> CriticAndBehaviorLoss:
        critic_loss = self.critic.train_step()
        behavior_loss = self.behavior.train_step().behavior_loss
        return CriticAndBehaviorLoss(**asdict(critic_loss), behavior_loss=behavior_loss)
