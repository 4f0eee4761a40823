"""Observation normaliser and reward scaler: formulas, numpy/torch, JSON state round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qipo_agents.data import ObservationNormalizer, OfflineBuffer, RewardScaler, from_dict
from qipo_agents.errors import DatasetError, SpaceMismatchError


def buffer_with_returns(episode_rewards: list[list[float]], seed: int = 0) -> OfflineBuffer:
    """Episodes with the given per-step rewards; 3 random observation features, the last constant."""
    rng = np.random.default_rng(seed)
    rewards = np.concatenate([np.asarray(r, dtype=np.float64) for r in episode_rewards])
    n = len(rewards)
    observations = rng.normal(loc=[5.0, -2.0, 0.0], scale=[2.0, 0.5, 1.0], size=(n, 3))
    observations[:, -1] = 7.0
    ends = np.cumsum([len(r) for r in episode_rewards]) - 1
    terminations = np.zeros(n, dtype=bool)
    terminations[ends] = True
    return from_dict(
        {
            "observations": observations,
            "actions": np.zeros((n, 1)),
            "rewards": rewards,
            "next_observations": observations,
            "terminations": terminations,
        }
    )


def test_normalizer_standardises_features_and_floors_the_std():
    buffer = buffer_with_returns([[1.0] * 50, [2.0] * 50])
    normalizer = ObservationNormalizer().fit(buffer)

    normalized = normalizer.transform(buffer.observations)
    assert normalized.dtype == np.float32 and normalized.shape == buffer.observations.shape
    np.testing.assert_allclose(normalized[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized[:, :2].std(axis=0), 1.0, atol=1e-4)
    assert normalizer.std[2] == pytest.approx(1e-3)  # constant feature: floored, not zero
    np.testing.assert_allclose(normalized[:, 2], 0.0, atol=1e-4)
    np.testing.assert_allclose(normalizer.inverse_transform(normalized), buffer.observations, rtol=1e-5)


def test_normalizer_on_torch_tensors_keeps_dtype_and_matches_numpy():
    observations = np.random.default_rng(1).normal(size=(20, 4))
    normalizer = ObservationNormalizer().fit(observations)
    tensor = torch.as_tensor(observations, dtype=torch.float32)

    out = normalizer.transform(tensor)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), normalizer.transform(observations.astype(np.float32)), rtol=1e-5)
    batch = normalizer.transform(tensor.reshape(4, 5, 4))  # any leading shape
    assert batch.shape == (4, 5, 4)


def test_normalizer_state_dict_survives_json():
    normalizer = ObservationNormalizer(std_floor=1e-2).fit(np.random.default_rng(2).normal(size=(30, 3)))
    state = json.loads(json.dumps(normalizer.state_dict()))
    restored = ObservationNormalizer.from_state_dict(state)

    observations = np.random.default_rng(3).normal(size=(5, 3))
    np.testing.assert_allclose(restored.transform(observations), normalizer.transform(observations))
    assert restored.std_floor == 1e-2


def test_identity_normalizer_changes_nothing_and_serialises():
    identity = ObservationNormalizer.identity().fit(np.ones((4, 2)))
    observations = np.arange(6.0).reshape(3, 2)

    assert identity.is_identity and identity.transform(observations) is observations
    restored = ObservationNormalizer.from_state_dict(json.loads(json.dumps(identity.state_dict())))
    assert restored.is_identity


def test_normalizer_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        ObservationNormalizer().transform(np.zeros((2, 3)))
    normalizer = ObservationNormalizer().fit(np.ones((4, 3)))
    with pytest.raises(SpaceMismatchError, match="4 features"):
        normalizer.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="missing keys"):
        ObservationNormalizer().load_state_dict({"mean": [0.0]})


def test_locomotion_reward_scaling_uses_the_episode_return_range():
    # Returns: 10, 35, 60 -> range 50 -> scale 1000 / 50 = 20.
    buffer = buffer_with_returns([[5.0, 5.0], [10.0, 25.0], [20.0, 20.0, 20.0]])
    scaler = RewardScaler("locomotion").fit(buffer)

    assert scaler.scale == pytest.approx(1000.0 / 50.0)
    scaled = scaler.apply(buffer)
    np.testing.assert_allclose(scaled.rewards, buffer.rewards * 20.0)
    np.testing.assert_allclose(scaled.episode_returns(), [200.0, 700.0, 1200.0])
    assert buffer.rewards[0] == 5.0  # the input buffer is untouched
    assert scaled.metadata["reward_scaling"] == scaler.state_dict()


def test_antmaze_and_none_modes():
    rewards = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(RewardScaler("antmaze").transform(rewards), [-1.0, -1.0, 0.0])
    assert RewardScaler("none").transform(rewards) is rewards
    tensor = torch.tensor([0.0, 1.0])
    assert torch.equal(RewardScaler("antmaze").transform(tensor), torch.tensor([-1.0, 0.0]))


def test_reward_scaler_state_dict_survives_json():
    scaler = RewardScaler("locomotion").fit(buffer_with_returns([[1.0], [3.0, 4.0]]))
    restored = RewardScaler.from_state_dict(json.loads(json.dumps(scaler.state_dict())))

    assert restored.mode == "locomotion" and restored.scale == pytest.approx(1000.0 / 6.0)
    rewards = np.array([1.0, 2.0])
    np.testing.assert_allclose(restored.transform(rewards), scaler.transform(rewards))


def test_reward_scaler_errors():
    with pytest.raises(ValueError, match="unknown reward scaling mode"):
        RewardScaler("humanoid")
    with pytest.raises(RuntimeError, match="not fitted"):
        RewardScaler("locomotion").transform(np.ones(3))
    with pytest.raises(DatasetError, match="different returns"):
        RewardScaler("locomotion").fit(buffer_with_returns([[1.0, 1.0], [2.0]]))
