"""Phase: what the four training phases share (the networks, the data, the sampler and the config)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from qipo_agents.data.device_buffer import DeviceBuffer
from qipo_agents.qipo.config import QIPOConfig
from qipo_agents.qipo.policy import QIPOPolicy
from qipo_agents.qipo.support import SamplerConfig


class Phase(ABC):
    """One phase of QIPO's schedule: :meth:`start` once (or :meth:`load_state_dict` when a saved
    run resumes inside it), then one :meth:`train_step` per gradient step.

    Args:
        policy: the agent's networks and optimisers.
        data: the dataset on the device.
        sampler: the probability path and solver the agent samples with (``sampler.path`` is the
            path the losses use).
        config: the agent's hyperparameters; each phase reads its own.
        generator: random source of minibatches, noise and support draws.
        action_low: lower action bounds ``(action_dim,)``; sampled actions are clipped as acting clips them.
        action_high: upper action bounds ``(action_dim,)``.
        check_interrupt: called between the sampling chunks of a long draw; the
            :class:`~qipo_agents.common.interrupts.TrainingSignal` it raises stops the draw, which
            then leaves the phase and ``generator`` as it found them.
    """

    name: ClassVar[str]

    def __init__(
        self,
        policy: QIPOPolicy,
        data: DeviceBuffer,
        sampler: SamplerConfig,
        config: QIPOConfig,
        generator: torch.Generator,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        check_interrupt: Callable[[], None] | None = None,
    ):
        self.policy, self.data, self.sampler, self.config = policy, data, sampler, config
        self.generator, self.action_low, self.action_high = generator, action_low, action_high
        self.check_interrupt = check_interrupt

    def start(self) -> None:
        """Prepare the phase's own data before its first step (nothing, by default)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a resumed phase needs beyond the networks and the generator (nothing, by default)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""

    @abstractmethod
    def train_step(self) -> Any:
        """One gradient step; returns its losses, a frozen dataclass the agent logs as ``train/<field>``."""
