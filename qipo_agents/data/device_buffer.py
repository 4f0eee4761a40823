"""Transitions as tensors on the training device, sampled in minibatches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.data.scalers import ObservationNormalizer, RewardScaler


@dataclass(frozen=True)
class TransitionBatch:
    """A minibatch of ``B`` transitions; observations are normalised, rewards scaled.

    ``observations (B, obs_dim)``, ``actions (B, action_dim)``, ``rewards (B,)``,
    ``next_observations (B, obs_dim)``, ``not_terminated (B,)`` (1.0 unless the environment
    terminated: truncations bootstrap), ``indices (B,)`` (rows in the buffer).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    not_terminated: torch.Tensor
    indices: torch.Tensor


class DeviceBuffer:
    """An :class:`OfflineBuffer` moved once to ``device`` with the agent's scalers applied.

    Args:
        buffer: the dataset.
        observation_normalizer: applied to observations and next observations.
        reward_scaler: applied to rewards.
        device: where the tensors live (every minibatch is drawn there, no host copies).
    """

    def __init__(
        self,
        buffer: OfflineBuffer,
        observation_normalizer: ObservationNormalizer,
        reward_scaler: RewardScaler,
        device: torch.device,
    ):
        def tensor(array):
            return torch.as_tensor(array, dtype=torch.float32, device=device)

        self.observations = tensor(observation_normalizer.transform(buffer.observations))
        self.next_observations = tensor(observation_normalizer.transform(buffer.next_observations))
        self.actions = tensor(buffer.actions)
        self.rewards = tensor(reward_scaler.transform(buffer.rewards))
        self.not_terminated = tensor(~buffer.terminations)
        self.device = device

    def __len__(self) -> int:
        return self.observations.shape[0]

    def sample_indices(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` row indices drawn uniformly with replacement."""
        return torch.randint(len(self), (batch_size,), device=self.device, generator=generator)

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        return self.gather(self.sample_indices(batch_size, generator))

    def gather(self, indices: torch.Tensor) -> TransitionBatch:
        """The transitions at rows ``indices (B,)``."""
        return TransitionBatch(
            self.observations[indices],
            self.actions[indices],
            self.rewards[indices],
            self.next_observations[indices],
            self.not_terminated[indices],
            indices,
        )
