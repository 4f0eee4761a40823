"""One-step policies ``g(s, z) -> a``: OneStepField (the teacher's field read once at the noise end)
and OneStepActor (a plain MLP)."""

from __future__ import annotations

import pytest
import torch

from qipo_agents.networks.field import FieldNetwork
from qipo_agents.networks.one_step import OneStepActor, OneStepField

OBS_DIM, ACTION_DIM, BATCH = 5, 3, 8
ARCHITECTURES = ("mlp", "unet")


def make_field(architecture: str = "unet", seed: int = 0, guidance_max: float | None = None) -> FieldNetwork:
    torch.manual_seed(seed)
    return FieldNetwork(
        ACTION_DIM,
        condition_dim=OBS_DIM,
        hidden_dims=(32, 16, 8),
        architecture=architecture,
        embed_dim=16,
        guidance_max=guidance_max,
    )


def observations_and_noise(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, OBS_DIM, generator=generator), torch.randn(BATCH, ACTION_DIM, generator=generator)


def assert_changes_every_row(before: torch.Tensor, after: torch.Tensor) -> None:
    assert not torch.isclose(before, after, rtol=0, atol=1e-6).all(dim=-1).any()


def assert_gradients_reach_every_parameter(policy: torch.nn.Module) -> None:
    observation, noise = observations_and_noise()
    policy(observation, noise).square().mean().backward()
    for name, parameter in policy.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# OneStepField


@pytest.mark.parametrize("noise_time", [0.0, 1.0], ids=["OT path", "VP path"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_step_field_after_initialise_from_is_noise_plus_the_teachers_field_at_the_noise_end(
    architecture, noise_time
):
    teacher = make_field(architecture, seed=0)
    student = OneStepField(make_field(architecture, seed=1), noise_time)
    observation, noise = observations_and_noise()
    t_noise = torch.full((BATCH,), noise_time)
    with torch.no_grad():
        expected = noise + teacher(noise, t_noise, condition=observation)
        assert not torch.allclose(student(observation, noise), expected)  # another field before
        student.initialise_from(teacher)
        action = student(observation, noise)
    assert action.shape == (BATCH, ACTION_DIM)
    torch.testing.assert_close(action, expected)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_step_field_feeds_its_guidance_to_a_guidance_conditioned_teacher(architecture):
    teacher = make_field(architecture, guidance_max=10.0)
    observation, noise = observations_and_noise()
    actions = {}
    for beta in (1.0, 8.0):
        student = OneStepField(teacher, noise_time=0.0, guidance=beta)
        with torch.no_grad():
            actions[beta] = student(observation, noise)
            expected = noise + teacher(
                noise, torch.zeros(BATCH), condition=observation, guidance=torch.full((BATCH,), beta)
            )
        torch.testing.assert_close(actions[beta], expected)
    assert_changes_every_row(actions[1.0], actions[8.0])


def test_one_step_field_ignores_guidance_when_the_teacher_takes_none():
    student = OneStepField(make_field(), noise_time=0.0, guidance=3.0)
    assert student.guidance is None
    observation, noise = observations_and_noise()
    assert student(observation, noise).shape == (BATCH, ACTION_DIM)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_step_field_depends_on_the_observation_and_the_noise(architecture):
    student = OneStepField(make_field(architecture), noise_time=0.0)
    observation, noise = observations_and_noise()
    with torch.no_grad():
        action = student(observation, noise)
        assert_changes_every_row(action, student(-observation, noise))
        assert_changes_every_row(action, student(observation, noise + 0.5))


@pytest.mark.parametrize("guidance_max", [None, 10.0], ids=["plain", "guidance-conditioned"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_step_field_gradients_reach_every_parameter_of_its_own_copy(architecture, guidance_max):
    teacher = make_field(architecture, guidance_max=guidance_max)
    student = OneStepField(teacher, noise_time=0.0, guidance=2.0)
    assert_gradients_reach_every_parameter(student)
    assert all(parameter.grad is None for parameter in teacher.parameters())


def test_training_the_one_step_field_leaves_the_teacher_unchanged():
    teacher = make_field()
    before = {name: value.clone() for name, value in teacher.state_dict().items()}
    student = OneStepField(teacher, noise_time=0.0)
    student.initialise_from(teacher)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    observation, noise = observations_and_noise()
    student(observation, noise).square().mean().backward()
    optimizer.step()
    assert any(not torch.equal(value, before[name]) for name, value in student.field.state_dict().items())
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, before[name]), name


# OneStepActor


def test_one_step_actor_maps_an_observation_and_a_noise_to_an_action():
    torch.manual_seed(0)
    actor = OneStepActor(OBS_DIM, ACTION_DIM, hidden_dims=(32, 32))
    observation, noise = observations_and_noise()
    with torch.no_grad():
        action = actor(observation, noise)
        assert action.shape == (BATCH, ACTION_DIM) and actor.action_dim == ACTION_DIM
        assert_changes_every_row(action, actor(-observation, noise))
        assert_changes_every_row(action, actor(observation, noise + 0.5))


def test_one_step_actor_gradients_reach_every_parameter():
    torch.manual_seed(0)
    assert_gradients_reach_every_parameter(OneStepActor(OBS_DIM, ACTION_DIM, hidden_dims=(32, 32)))


def test_one_step_actor_takes_nothing_from_the_teacher():
    torch.manual_seed(0)
    actor = OneStepActor(OBS_DIM, ACTION_DIM, hidden_dims=(32, 32))
    before = {name: value.clone() for name, value in actor.state_dict().items()}
    actor.initialise_from(make_field())
    for name, value in actor.state_dict().items():
        assert torch.equal(value, before[name]), name
