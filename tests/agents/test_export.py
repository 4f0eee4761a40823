"""Exported policies act as the agent does: ONNX (onnxruntime) and TorchScript files equal
``predict(deterministic=True)`` at zero noise and the agent's own sampler at any noise."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from qipo_agents.qipo.export import ExportError

from .conftest import TINY


@pytest.fixture(scope="module")
def normalised_agent(agent_class, bandit_data):
    """A trained agent that standardises observations, so the export must carry the statistics."""
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", normalize_observations=True, **TINY)
    return agent.learn()


def _observations(agent, n: int = 33) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(-1.5, 1.5, size=(n, agent.observation_space.shape[0])).astype(np.float32)


def _run(path, fmt: str, observation: np.ndarray, noise: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path))
        assert [i.name for i in session.get_inputs()] == ["observation", "noise"]
        assert [o.name for o in session.get_outputs()] == ["action"]
        return session.run(None, {"observation": observation, "noise": noise})[0]
    module = torch.jit.load(str(path))
    return module(torch.from_numpy(observation), torch.from_numpy(noise)).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_policy_equals_predict(normalised_agent, fmt, tmp_path):
    agent = normalised_agent
    path = agent.export(tmp_path / f"policy.{fmt}", format=fmt)
    observation = _observations(agent)
    action_dim = agent.action_space.shape[0]
    exported = _run(path, fmt, observation, np.zeros((len(observation), action_dim), np.float32))
    expected, _ = agent.predict(observation, deterministic=True)
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    # any noise: the action the agent's sampler draws from that noise, clipped (batch size differs from the trace's)
    noise = np.random.default_rng(2).standard_normal((5, action_dim)).astype(np.float32)
    with torch.no_grad():
        obs = torch.as_tensor(agent.observation_normalizer.transform(observation[:5]))
        sampled = agent.sampler.sample(agent.policy.actor_ema, obs, torch.from_numpy(noise), guidance=agent.beta)
    reference = np.clip(sampled.numpy(), agent.action_space.low, agent.action_space.high)
    np.testing.assert_allclose(_run(path, fmt, observation[:5], noise), reference, atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_policy_carries_the_acting_temperature(normalised_agent, fmt, tmp_path):
    """Standard normal noise gives the action ``predict`` samples: the file scales it by the temperature."""
    agent = normalised_agent
    observation = _observations(agent, 5)
    noise = np.random.default_rng(3).standard_normal((5, agent.action_space.shape[0])).astype(np.float32)
    at_one = _run(agent.export(tmp_path / f"one.{fmt}", format=fmt), fmt, observation, 0.25 * noise)
    agent.acting_temperature = 0.25
    try:
        at_quarter = _run(agent.export(tmp_path / f"quarter.{fmt}", format=fmt), fmt, observation, noise)
    finally:
        agent.acting_temperature = 1.0
    np.testing.assert_allclose(at_quarter, at_one, atol=1e-5)


def test_bad_export_requests_are_clear_errors(tiny_agent, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'tflite'; choose one of onnx, torchscript"):
        tiny_agent.export(tmp_path / "p.tflite", format="tflite")
    with pytest.raises(ExportError, match="is a folder; give the file to write"):
        tiny_agent.export(tmp_path, format="onnx")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot create the folder of"):
        tiny_agent.export(blocker / "policy.onnx", format="onnx")
    tiny_agent.best_of_n = 4
    try:
        with pytest.raises(ExportError, match="best of 4 sampled actions by its critic"):
            tiny_agent.export(tmp_path / "p.onnx")
    finally:
        tiny_agent.best_of_n = 1
    assert not (tmp_path / "p.onnx").exists()


def test_the_format_follows_the_file_name(tiny_agent, tmp_path):
    torch.jit.load(tiny_agent.export(tmp_path / "policy.pt"))  # a .pt name writes TorchScript
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(str(tiny_agent.export(tmp_path / "policy.onnx")))
    with pytest.raises(ExportError, match="cannot tell the export format from 'policy.txt'"):
        tiny_agent.export(tmp_path / "policy.txt")
    with pytest.raises(ExportError, match="'policy.pt' names a torchscript file but the format is onnx"):
        tiny_agent.export(tmp_path / "policy.pt", format="onnx")
