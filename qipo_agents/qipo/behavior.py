"""Phase 1 — behaviour warm-up (K1): fit the policy to the dataset's actions with the plain loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qipo_agents.common.precision import training_autocast
from qipo_agents.generative.losses import energy_weighted_loss
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
