"""Minari -> OfflineBuffer: T+1 observations per episode become T aligned transitions."""

from __future__ import annotations

import socket
import time

import gymnasium as gym
import huggingface_hub.constants
import minari
import numpy as np
import pytest

from qipo_agents.data import load_minari, make_buffer, minari_loader
from qipo_agents.errors import DatasetNotFoundError, SpaceMismatchError

DATASET_ID = "test/hopper/random-v0"  # the id conftest's minari_dataset fixture writes


def test_counts_and_episode_boundaries(minari_dataset, hopper_episodes):
    assert minari_dataset.id == DATASET_ID
    buffer = load_minari(DATASET_ID)
    lengths = [len(episode) for episode in hopper_episodes]

    assert len(buffer) == sum(lengths)
    assert buffer.n_episodes == len(hopper_episodes)
    np.testing.assert_array_equal(buffer.episode_lengths(), lengths)
    np.testing.assert_array_equal(buffer.episode_ids, np.repeat(np.arange(len(lengths)), lengths))
    assert (buffer.obs_dim, buffer.action_dim) == (11, 3)


def test_transitions_match_the_stored_episodes(minari_dataset, hopper_episodes):
    buffer = load_minari(DATASET_ID)
    start = 0
    for episode in hopper_episodes:
        rows = slice(start, start + len(episode))
        np.testing.assert_allclose(buffer.observations[rows], episode.observations[:-1], rtol=1e-6)
        np.testing.assert_allclose(buffer.next_observations[rows], episode.observations[1:], rtol=1e-6)
        np.testing.assert_array_equal(buffer.actions[rows], episode.actions)
        np.testing.assert_allclose(buffer.rewards[rows], episode.rewards, rtol=1e-6)
        np.testing.assert_array_equal(buffer.terminations[rows], episode.terminations)
        np.testing.assert_array_equal(buffer.truncations[rows], episode.truncations)
        start += len(episode)
    np.testing.assert_allclose(
        buffer.episode_returns(), [episode.rewards.sum() for episode in hopper_episodes], rtol=1e-5
    )


def test_next_observation_is_the_following_observation_inside_an_episode(minari_dataset):
    buffer = load_minari(DATASET_ID)
    same_episode = buffer.episode_ids[1:] == buffer.episode_ids[:-1]

    assert same_episode.sum() == len(buffer) - buffer.n_episodes
    np.testing.assert_array_equal(buffer.next_observations[:-1][same_episode], buffer.observations[1:][same_episode])
    # Across a boundary the next observation is the episode's own final one, not the next reset state.
    boundary = np.flatnonzero(~same_episode)
    assert not np.allclose(buffer.next_observations[boundary], buffer.observations[boundary + 1])


def test_terminations_and_truncations_kept_apart(minari_dataset, hopper_episodes):
    buffer = load_minari(DATASET_ID)
    ends = np.cumsum([len(episode) for episode in hopper_episodes]) - 1

    flagged = np.flatnonzero(buffer.terminations | buffer.truncations)
    np.testing.assert_array_equal(flagged, ends)
    assert not (buffer.terminations & buffer.truncations).any()
    assert buffer.truncations[-1] and not buffer.terminations[-1]  # the episode cut short
    assert buffer.terminations.sum() == sum(bool(episode.terminations[-1]) for episode in hopper_episodes)


def test_metadata_and_spaces(minari_dataset):
    buffer = load_minari(DATASET_ID)

    assert buffer.metadata["dataset_ids"] == [DATASET_ID]
    assert buffer.metadata["env_id"] == "Hopper-v5"
    assert buffer.metadata["ref_min_score"] == -20.0
    assert buffer.metadata["ref_max_score"] == 3000.0
    assert buffer.observation_space.dtype == np.float32
    np.testing.assert_array_equal(buffer.action_space.low, -np.ones(3, dtype=np.float32))
    env = gym.make("Hopper-v5")
    buffer.check_compatible(env.observation_space, env.action_space)
    env.close()


def test_open_dataset_and_folder_give_the_same_buffer(minari_dataset, minari_root):
    by_id = load_minari(DATASET_ID)
    by_object = load_minari(minari_dataset)
    by_folder = make_buffer(minari_root / DATASET_ID)
    by_data_folder = make_buffer(str(minari_root / DATASET_ID / "data"))

    for other in (by_object, by_folder, by_data_folder):
        np.testing.assert_array_equal(other.observations, by_id.observations)
        np.testing.assert_array_equal(other.episode_ids, by_id.episode_ids)


def test_episode_selection_of_a_minari_dataset_is_honoured(minari_dataset, hopper_episodes):
    subset = minari.MinariDataset(minari_dataset.storage, episode_indices=np.array([1, 3]))
    buffer = load_minari(subset)

    assert buffer.n_episodes == 2
    assert len(buffer) == len(hopper_episodes[1]) + len(hopper_episodes[3])


def test_dataset_path_env_var_is_read_at_call_time(tmp_path, monkeypatch, hopper_episodes, create_minari_dataset):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "first"))
    create_minari_dataset(DATASET_ID, hopper_episodes[:1])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "second"))
    create_minari_dataset(DATASET_ID, hopper_episodes[:2])

    assert load_minari(DATASET_ID).n_episodes == 2
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "first"))
    assert load_minari(DATASET_ID).n_episodes == 1


def test_unknown_id_fails_fast_with_the_ways_out(minari_root):
    missing = "nowhere/hopper/missing-v0"
    started = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as raised:
        make_buffer(missing)
    assert time.monotonic() - started < 10.0

    message = str(raised.value)
    assert missing in message
    assert "collect" in message
    assert f"minari download {missing}" in message
    assert str(minari_root) in message and "MINARI_DATASETS_PATH" in message
    assert isinstance(raised.value, FileNotFoundError)
    assert not minari_root.exists()  # looking does not create the store


def test_no_download_when_disabled(minari_root, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("must not try to download")

    monkeypatch.setattr(minari_loader, "_probe_remote", forbidden)
    monkeypatch.setattr(minari, "load_dataset", forbidden)
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load_minari("nowhere/hopper/missing-v0", download=False)


def test_failed_download_becomes_dataset_not_found(minari_root, monkeypatch):
    def failing_download(dataset_id, download=False):
        raise ValueError(f"Couldn't find any version for dataset {dataset_id}")

    monkeypatch.setattr(minari_loader, "_probe_remote", lambda: None)  # pretend we are online
    monkeypatch.setattr(minari, "load_dataset", failing_download)
    with pytest.raises(DatasetNotFoundError, match="the download failed: ValueError"):
        load_minari("nowhere/hopper/missing-v0")


def test_online_download_goes_through_minari_load_dataset(minari_root, minari_dataset, monkeypatch):
    asked = []
    stored = minari_dataset

    def download(dataset_id, download=False):
        asked.append((dataset_id, download))
        return stored

    monkeypatch.setattr(minari_loader, "_probe_remote", lambda: None)  # pretend we are online
    monkeypatch.setattr(minari, "load_dataset", download)
    buffer = load_minari("mujoco/hopper/medium-v0")
    assert asked == [("mujoco/hopper/medium-v0", True)] and len(buffer) == stored.total_steps


def test_a_download_without_network_goes_through_minari_and_hugging_face_to_a_clear_error(minari_root, monkeypatch):
    """The probe lets the download start (a network that goes away, a proxy that accepts the
    connection): minari.load_dataset asks its Hugging Face remote through huggingface_hub
    (``minari[hf]``), whose requests fail as they do offline. The loader turns that into
    DatasetNotFoundError with the ways out, and writes nothing to the store."""
    looked_up = []

    def no_network(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(minari_loader, "_probe_remote", lambda: None)
    # whatever HF_HUB_OFFLINE and HF_ENDPOINT say here: the requests go out, to the public hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub's back-off between retries
    missing = "mujoco/hopper/medium-v0"
    with pytest.raises(DatasetNotFoundError) as raised:
        load_minari(missing)

    assert looked_up and set(looked_up) == {"huggingface.co"}, "minari never reached huggingface_hub"
    message = str(raised.value)
    assert f"Minari dataset {missing!r} is not in the local store {minari_root}" in message
    assert "the download failed" in message and "Name or service not known" in message
    assert f"`minari download {missing}`" in message and "qipo-zoo collect" in message
    assert not (minari_root / "mujoco").exists()


def test_hanging_network_probe_is_bounded(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise TimeoutError("the fake connection never completes")  # what a real one ends with

    monkeypatch.setattr(minari_loader, "PROBE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(minari_loader.socket, "create_connection", hang)
    started = time.monotonic()
    reason = minari_loader._probe_remote()
    assert time.monotonic() - started < 2.0
    assert "did not answer" in reason


@pytest.mark.filterwarnings("ignore::UserWarning")  # minari: no env spec given
def test_discrete_actions_are_rejected(minari_root):
    from minari.data_collector import EpisodeBuffer

    episode = EpisodeBuffer(
        observations=np.zeros((4, 2), dtype=np.float32),
        actions=np.array([0, 1, 0]),
        rewards=np.ones(3),
        terminations=np.array([False, False, True]),
        truncations=np.zeros(3, dtype=bool),
    )
    dataset = minari.create_dataset_from_buffers(
        "test/discrete/random-v0",
        [episode],
        observation_space=gym.spaces.Box(-1, 1, (2,), dtype=np.float32),
        action_space=gym.spaces.Discrete(2),
        algorithm_name="none",
        author="tests",
        author_email="none@example.com",
        code_permalink="tests",
        description="discrete",
    )
    with pytest.raises(SpaceMismatchError, match="continuous"):
        load_minari(dataset)
