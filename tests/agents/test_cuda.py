"""On a CUDA device: the agents learn the exact tilted target, saves move between CUDA and the CPU,
a resumed run equals the uninterrupted one, exported policies act as the agent does, and the
one-step policy distilled there copies the sampler.

Skipped where torch sees no CUDA device (the CPU suite covers the same behaviour on the CPU).
"""

import numpy as np
import pytest
import torch

from qipo_agents import QIPOFlow

from .conftest import AGENTS, TINY, bandit_reward, make_bandit, tilted_positive_mass
from .test_bandit import BANDIT_CONFIG, BETA
from .test_distillation import one_step_relative_error
from .test_export import _run
from .test_save_load import OBS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ON_CUDA = {**TINY, "device": "cuda"}


@pytest.fixture(
    scope="module",
    params=[(name, precision) for precision in ("fp32", "bf16-mixed") for name in sorted(AGENTS)],
    ids="-".join,
)
def trained_on_cuda(request):
    name, precision = request.param
    return AGENTS[name](
        "MlpPolicy", make_bandit(), **{**BANDIT_CONFIG, "device": "cuda", "precision": precision}
    ).learn()


def test_agent_trains_on_the_gpu_and_matches_the_tilted_target(trained_on_cuda):
    assert all(p.device.type == "cuda" for p in trained_on_cuda.policy.parameters())
    assert trained_on_cuda.data.observations.device.type == "cuda"
    rng = np.random.default_rng(1)
    states = rng.uniform(-1, 1, size=(2000, 1)).astype(np.float32)
    actions, _ = trained_on_cuda.predict(states)
    assert isinstance(actions, np.ndarray) and actions.shape == (2000, 1)
    assert bandit_reward(states, actions).mean() > 0.08  # the behaviour policy earns 0
    for state in (-0.6, 0.7):
        actions, _ = trained_on_cuda.predict(np.full((3000, 1), state, dtype=np.float32))
        positive = float((actions[:, 0] > 0).mean())
        assert positive == pytest.approx(tilted_positive_mass(state, BETA), abs=0.08), state


@pytest.fixture(scope="module")
def tiny_on_cuda(agent_class, bandit_data):
    return agent_class("MlpPolicy", bandit_data, reward_scaling="none", normalize_observations=True, **ON_CUDA).learn()


def test_a_gpu_save_loads_on_the_cpu_and_back_with_the_same_actions(tiny_on_cuda, tmp_path):
    path = tiny_on_cuda.save(tmp_path / "agent")
    expected = tiny_on_cuda.predict(OBS, deterministic=True)[0]
    on_cpu = type(tiny_on_cuda).load(path, device="cpu")
    assert all(p.device.type == "cpu" for p in on_cpu.policy.parameters())
    np.testing.assert_allclose(on_cpu.predict(OBS, deterministic=True)[0], expected, atol=1e-5)
    back_on_cuda = type(tiny_on_cuda).load(on_cpu.save(tmp_path / "from_cpu"), device="cuda")
    np.testing.assert_array_equal(back_on_cuda.predict(OBS, deterministic=True)[0], expected)


def test_resume_on_the_gpu_equals_the_uninterrupted_run(agent_class, bandit_data, tmp_path):
    uninterrupted = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **ON_CUDA).learn()
    first = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **ON_CUDA)
    first.learn(callback=lambda local_vars, _globals: local_vars["self"].num_timesteps < 110)  # mid-refinement
    resumed = agent_class.load(first.save(tmp_path / "checkpoint"), device="cuda", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert resumed.num_timesteps == uninterrupted.num_timesteps
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_a_gpu_agent_runs_on_the_cpu_and_equals_predict(tiny_on_cuda, fmt, tmp_path):
    path = tiny_on_cuda.export(tmp_path / f"policy.{'onnx' if fmt == 'onnx' else 'pt'}", format=fmt)
    observations = np.random.default_rng(1).uniform(-1.5, 1.5, size=(33, 1)).astype(np.float32)
    exported = _run(path, fmt, observations, np.zeros((33, 1), np.float32))
    expected = tiny_on_cuda.predict(observations, deterministic=True)[0]
    np.testing.assert_allclose(exported, expected, atol=1e-5)


def test_one_step_policy_distilled_on_the_gpu_copies_the_sampler_and_moves_to_the_cpu(tmp_path):
    distilled = QIPOFlow("MlpPolicy", make_bandit(), **{**BANDIT_CONFIG, "device": "cuda"}, distill_steps=1500)
    distilled.learn()
    assert distilled.acts_in_one_step
    assert one_step_relative_error(distilled) < 0.05
    states = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    expected = distilled.predict(states, deterministic=True)[0]
    on_cpu = QIPOFlow.load(distilled.save(tmp_path / "agent"), device="cpu")
    assert on_cpu.acts_in_one_step
    np.testing.assert_allclose(on_cpu.predict(states, deterministic=True)[0], expected, atol=1e-5)
    assert one_step_relative_error(on_cpu) < 0.05
