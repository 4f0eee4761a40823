"""The one-step policy: distilled from the multi-step sampler, it acts in one network evaluation
with the same action distribution, survives save/load, and exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qipo_agents import QIPOFlow
from qipo_agents.networks.one_step import OneStepField
from qipo_agents.qipo.algorithm import QIPO

from .conftest import TINY, bandit_reward, make_bandit, stop_at, tilted_positive_mass
from .test_bandit import BANDIT_CONFIG, BETA
from .test_export import _run

BANDIT_CONFIG_NFE = 2 * 3  # the flow's default sampler: 3 midpoint steps, 2 evaluations each


@pytest.fixture(scope="module")
def distilled():
    """The bandit agent of test_bandit (flow), then 1500 steps of distillation."""
    return QIPOFlow("MlpPolicy", make_bandit(), **BANDIT_CONFIG, distill_steps=1500).learn()


def _count_field_evaluations(agent: QIPO, observations: np.ndarray, deterministic: bool) -> int:
    calls = []
    handle = agent.policy.actor_ema.register_forward_hook(lambda *_: calls.append(1))
    try:
        agent.predict(observations, deterministic=deterministic)
    finally:
        handle.remove()
    return len(calls)


def test_one_step_policy_acts_without_the_sampler(distilled):
    states = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    assert distilled.acts_in_one_step
    assert _count_field_evaluations(distilled, states, deterministic=False) == 0
    distilled.one_step_acting = False
    try:
        assert not distilled.acts_in_one_step
        assert _count_field_evaluations(distilled, states, deterministic=False) == BANDIT_CONFIG_NFE
    finally:
        distilled.one_step_acting = True


@pytest.mark.parametrize("state", [-0.6, 0.3, 0.7])
def test_one_step_policy_matches_the_tilted_target(distilled, state):
    actions, _ = distilled.predict(np.full((3000, 1), state, dtype=np.float32))
    assert float((actions[:, 0] > 0).mean()) == pytest.approx(tilted_positive_mass(state, BETA), abs=0.08)
    # on the behaviour's modes, as the multi-step policy
    assert float((np.abs(np.abs(actions[:, 0]) - 0.5) < 0.3).mean()) > 0.9


def test_one_step_policy_earns_what_the_multi_step_policy_earns(distilled):
    states = np.random.default_rng(1).uniform(-1, 1, size=(4000, 1)).astype(np.float32)
    one_step = bandit_reward(states, distilled.predict(states)[0]).mean()
    distilled.one_step_acting = False
    try:
        multi_step = bandit_reward(states, distilled.predict(states)[0]).mean()
    finally:
        distilled.one_step_acting = True
    assert one_step == pytest.approx(multi_step, abs=0.02)


def one_step_relative_error(agent: QIPO, n_pairs: int = 2048) -> float:
    """The one-step policy's squared error against the sampler's action on the same fixed
    (bandit state, noise) pairs, as a fraction of the variance of the sampler's actions."""
    generator = torch.Generator().manual_seed(1)
    states = (torch.rand(n_pairs, 1, generator=generator) * 2 - 1).to(agent.device)
    noise = torch.randn(n_pairs, 1, generator=generator).to(agent.device)
    with torch.no_grad():
        teacher = agent.sampler.sample(agent.policy.actor_ema, states, noise, agent.beta).clamp(-1, 1)
        student = agent.policy.one_step(states, noise)
    return float(((student - teacher) ** 2).mean() / teacher.var())


def test_one_step_policy_reproduces_the_samplers_map(distilled):
    """Noise by noise, the student's action is the sampler's: its error is a small fraction of the
    spread of the sampler's actions (at zero error it is the sampled policy exactly)."""
    assert isinstance(distilled.policy.one_step, OneStepField)
    assert one_step_relative_error(distilled) < 0.05


def test_field_student_starts_as_the_teachers_one_euler_step(distilled):
    """The default student is the teacher read once at the noise end: copied from the teacher, it
    is one Euler step of the flow over [0, 1]."""
    teacher = distilled.policy.actor_ema
    student = OneStepField(teacher, noise_time=distilled.path.noise_time, guidance=distilled.beta)
    student.initialise_from(teacher)
    states, noise = torch.linspace(-1, 1, 32)[:, None], torch.randn(32, 1)
    with torch.no_grad():
        euler = distilled.path.sample(lambda x, t: teacher(x, t, condition=states), noise, n_steps=1, solver="euler")
        torch.testing.assert_close(student(states, noise), euler)


def test_unknown_one_step_architecture_is_a_clear_error(bandit_data):
    with pytest.raises(ValueError, match="unknown one_step_architecture 'resnet'"):
        QIPOFlow(
            "MlpPolicy",
            bandit_data,
            **{
                **TINY,
                "distill_steps": 10,
                "policy_kwargs": {**TINY["policy_kwargs"], "one_step_architecture": "resnet"},
            },
        )


def test_deterministic_one_step_action_is_the_zero_noise_action(distilled):
    states = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    first, _ = distilled.predict(states, deterministic=True)
    second, _ = distilled.predict(states, deterministic=True)
    np.testing.assert_array_equal(first, second)
    with torch.no_grad():
        obs = torch.as_tensor(distilled.observation_normalizer.transform(states))
        expected = distilled.policy.one_step(obs, torch.zeros(len(states), 1)).clamp(-1, 1).numpy()
    np.testing.assert_allclose(first, expected, atol=1e-6)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_distilled_agent_saves_loads_and_exports(distilled, fmt, tmp_path):
    states = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    expected, _ = distilled.predict(states, deterministic=True)
    loaded = QIPOFlow.load(distilled.save(tmp_path / "agent"), device="cpu")
    assert loaded.acts_in_one_step
    np.testing.assert_array_equal(loaded.predict(states, deterministic=True)[0], expected)
    path = loaded.export(tmp_path / f"policy.{fmt}", format=fmt)
    noise = np.zeros((len(states), 1), np.float32)
    exported = _run(path, fmt, states, noise)
    np.testing.assert_allclose(exported, expected, atol=1e-5)


def test_a_trained_agent_distils_after_loading(agent_class, bandit_data, tmp_path):
    """An agent trained without distillation (flow or diffusion) gets a one-step policy by
    loading it with ``distill_steps`` and training on: the earlier phases are not repeated."""
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY).learn()
    assert not agent.acts_in_one_step
    path = agent.save(tmp_path / "agent")
    loaded = agent_class.load(path, device="cpu", dataset=bandit_data, distill_steps=30)
    assert not loaded.acts_in_one_step  # not distilled yet: it still acts with the sampler
    before = {k: v.clone() for k, v in loaded.policy.actor_ema.state_dict().items()}
    loaded.learn(reset_num_timesteps=False)
    assert loaded.num_timesteps == agent.num_timesteps + 30
    assert loaded.acts_in_one_step
    for key, value in loaded.policy.actor_ema.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)  # the teacher is untouched


def test_distill_steps_must_not_be_negative(bandit_data):
    with pytest.raises(ValueError, match="distill_steps: must be >= 0, got -1"):
        QIPOFlow("MlpPolicy", bandit_data, **{**TINY, "distill_steps": -1})


def test_resume_mid_distillation_equals_the_uninterrupted_run(agent_class, bandit_data, tmp_path):
    config = {**TINY, "distill_steps": 30}  # distillation: steps 140-169

    uninterrupted = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **config).learn()
    first = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **config)
    first.learn(callback=stop_at(155))
    assert first.current_phase == "distill" and not first.acts_in_one_step
    resumed = agent_class.load(first.save(tmp_path / "checkpoint"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert resumed.acts_in_one_step
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
