"""Phase 1 — behaviour warm-up (K1): fit the policy to the dataset's actions with the plain loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qipo_agents.common.precision import training_autocast
from qipo_agents.data.device_buffer import DeviceBuffer
from qipo_agents.generative.losses import energy_weighted_loss
from qipo_agents.generative.paths import ProbabilityPath
from qipo_agents.qipo.policy import QIPOPolicy


@dataclass(frozen=True)
class BehaviorLoss:
    behavior_loss: torch.Tensor


class BehaviorWarmup:
    """Unweighted conditional flow-matching / denoising on dataset ``(s, a)`` pairs: ``mu(a|s)``.

    Args:
        policy: the networks; ``actor`` is trained, ``actor_ema`` tracks it with rate ``tau``.
        data: the dataset on the device.
        path: the probability path.
        batch_size: transitions per step.
        tau: Polyak rate of ``actor_ema``.
        generator: random source for minibatches and noise.
        precision: ``"fp32"``, or ``"bf16-mixed"`` for bfloat16 matrix products in the step
            (:mod:`qipo_agents.common.precision`).
    """

    name = "behavior"

    def __init__(
        self,
        policy: QIPOPolicy,
        data: DeviceBuffer,
        path: ProbabilityPath,
        batch_size: int,
        tau: float,
        generator: torch.Generator,
        precision: str = "fp32",
    ):
        self.policy, self.data, self.path = policy, data, path
        self.batch_size, self.tau, self.generator = batch_size, tau, generator
        self.precision = precision

    def start(self) -> None:
        """Nothing to prepare: the warm-up reads the dataset directly."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Nothing beyond the networks: a resumed phase needs no state of its own."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""

    def train_step(self) -> BehaviorLoss:
        batch = self.data.sample(self.batch_size, self.generator)
        guidance = None
        guidance_max = self.policy.actor.guidance_max
        if guidance_max is not None:  # unweighted at every label: the warm-up gives mu at every beta
            guidance = guidance_max * torch.rand(self.batch_size, device=batch.actions.device, generator=self.generator)
        with training_autocast(self.precision, batch.actions.device):
            loss = energy_weighted_loss(
                self.policy.actor,
                self.path,
                batch.actions,
                condition=batch.observations,
                guidance=guidance,
                generator=self.generator,
            )
        self.policy.update_actor(loss, self.tau)
        return BehaviorLoss(loss.detach())
