"""save -> load gives the same actions; bad files give clear errors; saves are atomic."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from qipo_agents import QIPO, QIPODiffusion, QIPOFlow
from qipo_agents.common import save_format
from qipo_agents.errors import SaveFileError

from .conftest import TINY, stop_at

OBS = np.linspace(-1, 1, 7, dtype=np.float32).reshape(7, 1)


def test_save_load_gives_identical_actions(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")
    assert path.name == "agent.zip"
    loaded = type(tiny_agent).load(tmp_path / "agent", device="cpu")
    np.testing.assert_array_equal(
        loaded.predict(OBS, deterministic=True)[0], tiny_agent.predict(OBS, deterministic=True)[0]
    )
    assert loaded.num_timesteps == tiny_agent.num_timesteps
    for (name, a), (_, b) in zip(tiny_agent.policy.state_dict().items(), loaded.policy.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


def test_save_and_load_through_open_files_as_sb3_does(tiny_agent, tmp_path):
    buffer = io.BytesIO()
    assert tiny_agent.save(buffer) is buffer
    buffer.seek(0)
    from_memory = type(tiny_agent).load(buffer, device="cpu")
    with open(tmp_path / "agent.zip", "wb") as file:
        tiny_agent.save(file)
    with open(tmp_path / "agent.zip", "rb") as file:
        from_file = type(tiny_agent).load(file, device="cpu")
    expected = tiny_agent.predict(OBS, deterministic=True)[0]
    for loaded in (from_memory, from_file):
        np.testing.assert_array_equal(loaded.predict(OBS, deterministic=True)[0], expected)
    with pytest.raises(SaveFileError, match="the BytesIO passed is not a qipo_agents save file"):
        QIPOFlow.load(io.BytesIO(b"not a zip"))


def test_base_class_loads_either_agent_and_wrong_class_is_refused(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent.zip")
    assert type(QIPO.load(path, device="cpu")) is type(tiny_agent)
    other = QIPODiffusion if isinstance(tiny_agent, QIPOFlow) else QIPOFlow
    with pytest.raises(SaveFileError, match=f"{type(tiny_agent).__name__}.load"):
        other.load(path)


def test_save_file_layout(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        data = json.loads(archive.read("data.json"))
    assert {"data.json", "policy.pth", "policy.actor_optimizer.pth", "_version.txt"} <= names
    assert data["format"] == "qipo_agents" and data["format_version"] == save_format.FORMAT_VERSION
    assert data["config"] == tiny_agent.config.model_dump(mode="json")
    assert data["reward_scaler"]["mode"] == "none"


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(SaveFileError, match="not a qipo_agents save file"):
        QIPOFlow.load(path)


def test_foreign_zip_is_a_clear_error(tmp_path):
    path = tmp_path / "sb3_model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", "{}")
        archive.writestr("policy.pth", b"")
    with pytest.raises(SaveFileError, match="Stable-Baselines3"):
        QIPOFlow.load(path)


def rewrite_member(path, name, edit):
    """Replace member ``name`` of the zip at ``path`` by ``edit(old_bytes)``."""
    with zipfile.ZipFile(path) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    members[name] = edit(members[name])
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)


def test_newer_format_is_a_clear_error(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")

    def newer(raw):
        return json.dumps({**json.loads(raw), "format_version": save_format.FORMAT_VERSION + 1})

    rewrite_member(path, "data.json", newer)
    with pytest.raises(SaveFileError, match="upgrade qipo_agents"):
        QIPOFlow.load(path)


def test_an_older_development_format_is_refused_with_its_format_and_writer(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")

    def older(raw):
        data = json.loads(raw)
        return json.dumps({**data, "format_version": 1, "qipo_agents_version": "0.1.0.dev3"})

    rewrite_member(path, "data.json", older)
    with pytest.raises(SaveFileError, match="save format 1 by qipo_agents 0.1.0.dev3.*reads format 4 only"):
        QIPOFlow.load(path)


def test_hyperparameter_unknown_to_this_version_is_a_clear_error(tiny_agent, tmp_path):
    """A save from a version with a hyperparameter this one lacks names it, instead of "corrupt"."""
    path = tiny_agent.save(tmp_path / "agent")

    def with_future_option(raw):
        data = json.loads(raw)
        data["config"]["future_option"] = 0.5
        return json.dumps(data)

    rewrite_member(path, "data.json", with_future_option)
    with pytest.raises(SaveFileError, match="does not know: future_option.*version that wrote it"):
        type(tiny_agent).load(path)


def test_unknown_load_override_is_a_type_error(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")
    with pytest.raises(TypeError, match="unknown hyperparameters best_of_m"):
        type(tiny_agent).load(path, best_of_m=4)


def test_damaged_member_is_a_clear_error(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")
    rewrite_member(path, "policy.pth", lambda raw: raw[:100])
    with pytest.raises(SaveFileError, match="policy.pth"):
        type(tiny_agent).load(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved agent"):
        QIPOFlow.load(tmp_path / "nothing")


def test_interrupted_save_keeps_the_previous_file(tiny_agent, tmp_path, monkeypatch):
    path = tiny_agent.save(tmp_path / "agent")
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(save_format.torch, "save", fail)
    with pytest.raises(KeyboardInterrupt):
        tiny_agent.save(tmp_path / "agent")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["agent.zip"]  # no temporary file left behind


def test_a_save_gets_the_permissions_of_any_new_file(tiny_agent, tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = tiny_agent.save(tmp_path / "agent")
        assert path.stat().st_mode & 0o777 == 0o644  # readable by others, as open() would make it
        path.chmod(0o640)
        tiny_agent.save(path)
        assert path.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its permissions
    finally:
        os.umask(old_umask)


def test_get_and_set_parameters_round_trip(tiny_agent, agent_class, bandit_data):
    from .conftest import TINY

    fresh = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **{**TINY, "seed": 1})
    weight = "actor.head.weight"
    assert not torch.equal(fresh.policy.state_dict()[weight], tiny_agent.policy.state_dict()[weight])
    fresh.set_parameters(tiny_agent.get_parameters())
    torch.testing.assert_close(fresh.policy.state_dict()[weight], tiny_agent.policy.state_dict()[weight])
    np.testing.assert_array_equal(
        fresh.predict(OBS, deterministic=True)[0], tiny_agent.predict(OBS, deterministic=True)[0]
    )
    with pytest.raises(ValueError, match="missing"):
        fresh.set_parameters({"policy": tiny_agent.get_parameters()["policy"]})


def test_loaded_agent_resumes_learning(tiny_agent, bandit_data, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")
    loaded = type(tiny_agent).load(path, device="cpu")
    with pytest.raises(RuntimeError, match="no dataset"):
        loaded.learn(10, reset_num_timesteps=False)
    loaded.set_dataset(bandit_data)
    loaded.learn(15, reset_num_timesteps=False)
    assert loaded.num_timesteps == tiny_agent.num_timesteps + 15
    assert loaded.current_phase == "policy"


@pytest.fixture(scope="module")
def uninterrupted(agent_class, bandit_data):
    return agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY).learn()


# TINY: warm-up steps 0-59, in-support critic 60-99, refinement 100-139 with renewals at 100 and 120
@pytest.mark.parametrize(
    "stop",
    [30, 80, 100, 110, 120],
    ids=["mid-warm-up", "mid-critic", "phase-boundary", "between-renewals", "at-a-renewal"],
)
def test_resume_from_any_checkpoint_equals_the_uninterrupted_run(
    agent_class, bandit_data, uninterrupted, tmp_path, stop
):
    first = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    first.learn(callback=stop_at(stop))
    assert first.num_timesteps == stop
    resumed = agent_class.load(first.save(tmp_path / "checkpoint"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert resumed.num_timesteps == uninterrupted.num_timesteps
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def uninterrupted_in_70_steps(agent_class, bandit_data):
    return agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY).learn(70)


# TINY in 70 steps: warm-up 0-29; critic 30-49 on the support of 20 x 64 of the 4000 transitions (as
# many as its minibatches read); refinement 50-69 on one renewal of ceil(20 x 64 / 5) = 256 states
@pytest.mark.parametrize("stop", [40, 50, 60], ids=["mid-critic", "phase-boundary", "mid-refinement"])
def test_a_shortened_run_resumes_on_its_bounded_support_exactly(
    agent_class, bandit_data, uninterrupted_in_70_steps, tmp_path, stop
):
    first = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    first.learn(70, callback=stop_at(stop))
    if first.current_phase == "critic":
        assert first._phase.transitions.shape == (1280,) and first._phase.next_support.shape[:2] == (1280, 4)
    else:
        assert first._phase.support.state_indices.shape == (256,)
    resumed = agent_class.load(first.save(tmp_path / "checkpoint"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert resumed.num_timesteps == uninterrupted_in_70_steps.num_timesteps == 70
    for (name, a), (_, b) in zip(
        uninterrupted_in_70_steps.policy.state_dict().items(), resumed.policy.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def as_saved_on_cuda(path, n_bytes: int = 16) -> None:
    """Replace the saved sampling generator's state by a CUDA generator's (16 bytes: seed and
    offset), as a save written on a GPU holds."""

    def edit(raw):
        state = torch.load(io.BytesIO(raw), weights_only=True)
        state["generator"] = torch.arange(n_bytes, dtype=torch.uint8)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    rewrite_member(path, "training_state.pth", edit)


def test_a_save_from_another_device_type_loads_and_resumes_reproducibly(agent_class, bandit_data, tmp_path):
    first = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    first.learn(callback=stop_at(110))
    path = first.save(tmp_path / "checkpoint")
    as_saved_on_cuda(path)
    resumed = []
    for _ in range(2):
        with pytest.warns(UserWarning, match="another device type"):
            agent = agent_class.load(path, device="cpu", dataset=bandit_data)
        np.testing.assert_array_equal(
            agent.predict(OBS, deterministic=True)[0], first.predict(OBS, deterministic=True)[0]
        )
        resumed.append(agent.learn(reset_num_timesteps=False))
    for (name, a), (_, b) in zip(resumed[0].policy.state_dict().items(), resumed[1].policy.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_finished_agent_from_another_device_type_loads_without_a_warning(tiny_agent, tmp_path, recwarn):
    path = tiny_agent.save(tmp_path / "agent")
    as_saved_on_cuda(path)
    loaded = type(tiny_agent).load(path, device="cpu")
    assert not [w for w in recwarn if "device type" in str(w.message)]
    np.testing.assert_array_equal(
        loaded.predict(OBS, deterministic=True)[0], tiny_agent.predict(OBS, deterministic=True)[0]
    )


def test_a_generator_state_of_no_known_size_is_a_clear_error(tiny_agent, tmp_path):
    path = tiny_agent.save(tmp_path / "agent")
    as_saved_on_cuda(path, n_bytes=7)
    with pytest.raises(SaveFileError, match="corrupt or incomplete: its random generator state has 7 bytes"):
        type(tiny_agent).load(path, device="cpu")
