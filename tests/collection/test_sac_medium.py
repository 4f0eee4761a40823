"""D4RL's medium / medium-replay recipe: the replay split, the stopping rule, resumable SAC training, the script."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl

from qipo_agents.collection import sac_medium
from qipo_agents.collection.rollouts import collect
from qipo_agents.collection.sac_medium import (
    ONE_THIRD_OF_EXPERT,
    SACRecipe,
    SACRun,
    StoppingRule,
    split_replay_buffer,
    train_sac_until_medium,
    write_replay_dataset,
)
from qipo_agents.data import make_buffer
from qipo_agents.errors import ConfigError, DatasetError

from ..zoo.conftest import invoke

OBSERVATION_SPACE = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
ACTION_SPACE = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)  # SAC stores actions scaled to [-1, 1]


def _replay_buffer(size: int, **kwargs) -> ReplayBuffer:
    return ReplayBuffer(size, OBSERVATION_SPACE, ACTION_SPACE, device="cpu", handle_timeout_termination=True, **kwargs)


def _add_episode(buffer: ReplayBuffer, episode: int, length: int, end: str | None) -> None:
    """``length`` steps whose observation is ``[episode, t]``; ``end``: ``"terminated"``,
    ``"time limit"`` or None (the episode goes on). Actions are 0.5 scaled, 1.0 in env units."""
    for t in range(length):
        last = t == length - 1
        done = last and end is not None
        info = {"TimeLimit.truncated": last and end == "time limit"}
        buffer.add(
            np.array([[episode, t]], np.float64),
            np.array([[episode, t + 1]], np.float64),
            np.array([[0.5]], np.float32),
            np.array([10 * episode + t], np.float32),
            np.array([done]),
            [info],
        )


def test_replay_split_recovers_episodes_and_tells_terminations_from_truncations():
    buffer = _replay_buffer(16)
    _add_episode(buffer, 0, 3, "terminated")
    _add_episode(buffer, 1, 2, "time limit")
    _add_episode(buffer, 2, 2, None)  # the training stopped in the middle of it
    episodes = split_replay_buffer(buffer, n_env_steps=7)
    assert [len(e["actions"]) for e in episodes] == [3, 2, 2]
    for index, episode in enumerate(episodes):
        length = len(episode["actions"])
        # T + 1 observations, next_obs[t] == obs[t + 1] inside the episode, the last next_obs kept
        expected = np.array([[index, t] for t in range(length + 1)], np.float64)
        np.testing.assert_array_equal(episode["observations"], expected)
        np.testing.assert_array_equal(episode["actions"], np.ones((length, 1), np.float32))
        assert episode["actions"].dtype == np.float32 and episode["rewards"].dtype == np.float64
        np.testing.assert_array_equal(episode["rewards"], 10 * index + np.arange(length))
        assert not episode["terminations"][:-1].any() and not episode["truncations"][:-1].any()
    ends = [(bool(e["terminations"][-1]), bool(e["truncations"][-1])) for e in episodes]
    assert ends == [(True, False), (False, True), (False, True)]
    # a buffer that ends with a finished episode holds no unfinished one
    finished = _replay_buffer(16)
    _add_episode(finished, 0, 3, "terminated")
    _add_episode(finished, 1, 2, "time limit")
    assert [len(e["actions"]) for e in split_replay_buffer(finished, 5)] == [3, 2]


def test_replay_split_refuses_buffers_it_cannot_split_and_says_why():
    wrapped = _replay_buffer(4)
    _add_episode(wrapped, 0, 6, "terminated")
    with pytest.raises(DatasetError, match="wrapped around: it holds 4 transitions of the 6 steps taken"):
        split_replay_buffer(wrapped, 6)
    short = _replay_buffer(8)
    _add_episode(short, 0, 3, None)
    with pytest.raises(DatasetError, match="holds 3 transitions, but 5 steps were taken"):
        split_replay_buffer(short, 5)
    shuffled = _replay_buffer(8)
    _add_episode(shuffled, 0, 2, None)
    _add_episode(shuffled, 1, 2, "terminated")  # a new episode with no done before it
    with pytest.raises(DatasetError, match="next observation of transition 1 is not the observation"):
        split_replay_buffer(shuffled, 4)
    no_timeouts = ReplayBuffer(8, OBSERVATION_SPACE, ACTION_SPACE, handle_timeout_termination=False)
    with pytest.raises(DatasetError, match="handle_timeout_termination=True"):
        split_replay_buffer(no_timeouts, 0)
    two_envs = ReplayBuffer(8, OBSERVATION_SPACE, ACTION_SPACE, n_envs=2)
    with pytest.raises(DatasetError, match="2 envs"):
        split_replay_buffer(two_envs, 0)
    with pytest.raises(DatasetError, match="empty"):
        split_replay_buffer(_replay_buffer(8), 0)


def test_stopping_rule_fires_when_the_window_mean_reaches_a_third_of_expert():
    rule = StoppingRule(window=3, max_steps=1_000_000)
    assert rule.threshold == pytest.approx(33.333, abs=1e-3) == ONE_THIRD_OF_EXPERT
    curve = [5.0, 90.0, 20.0, 30.0, 35.0, 40.0]  # one lucky evaluation at the second
    decisions = [rule.decide(curve[: i + 1], steps=10_000 * (i + 1)) for i in range(len(curve))]
    # means of the last three: 38.3 at the third evaluation (the spike), 46.7, 28.3, 35.0
    assert decisions == ["continue", "continue", "reached", "reached", "continue", "reached"]
    no_spike = [5.0, 20.0, 30.0, 33.0, 34.0, 36.0]
    decisions = [rule.decide(no_spike[: i + 1], steps=10_000 * (i + 1)) for i in range(len(no_spike))]
    assert decisions.index("reached") == 5  # mean(33, 34, 36) = 34.3; mean(30, 33, 34) = 32.3 does not
    assert StoppingRule(window=3).decide([99.0, 99.0], steps=20_000) == "continue"  # never before K evaluations


def test_stopping_rule_stops_at_the_step_cap():
    rule = StoppingRule(window=2, max_steps=30_000)
    assert rule.decide([10.0, 12.0], steps=20_000) == "continue"
    assert rule.decide([10.0, 12.0, 11.0], steps=30_000) == "cap"
    assert rule.decide([10.0, 40.0, 41.0], steps=30_000) == "reached"  # reaching it at the cap counts
    with pytest.raises(ConfigError, match="window must be at least 1"):
        StoppingRule(window=0)
    with pytest.raises(ConfigError, match="--max-steps must be at least 1"):
        StoppingRule(max_steps=0)
    with pytest.raises(ConfigError, match="sac_kwargs may not set buffer_size, seed"):
        SACRecipe("Hopper-v5", sac_kwargs={"seed": 3, "buffer_size": 10})


# tiny SAC on Pendulum (200-step episodes cut by the time limit): a few hundred steps in about a second
TINY_SAC = {"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16, 16]}}
PENDULUM_REFERENCE = (-1600.0, 0.0)


def _pendulum(threshold: float, max_steps: int, eval_freq: int, window: int = 1) -> SACRecipe:
    rule = StoppingRule(threshold=threshold, window=window, max_steps=max_steps)
    return SACRecipe("Pendulum-v1", seed=0, rule=rule, eval_freq=eval_freq, n_eval_episodes=1, sac_kwargs=TINY_SAC)


def _train(recipe: SACRecipe, runs) -> SACRun:
    return train_sac_until_medium(recipe, runs, reference=PENDULUM_REFERENCE, progress=False)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])  # Hopper: MuJoCo physics cut mid-episode
def test_interrupted_training_resumes_exactly_as_the_uninterrupted_run(tmp_path, monkeypatch, env_id):
    rule = StoppingRule(threshold=1e9, window=1, max_steps=300)  # never reached: runs to the cap
    recipe = SACRecipe(env_id, seed=0, rule=rule, eval_freq=150, n_eval_episodes=1, sac_kwargs=TINY_SAC)
    uninterrupted = _train(recipe, tmp_path / "uninterrupted")
    real_returns = sac_medium._stochastic_returns

    def interrupted_at_the_second_evaluation(model, *args):
        if model.num_timesteps == 300:
            raise KeyboardInterrupt
        return real_returns(model, *args)

    monkeypatch.setattr(sac_medium, "_stochastic_returns", interrupted_at_the_second_evaluation)
    with pytest.raises(KeyboardInterrupt):
        _train(recipe, tmp_path / "interrupted")
    files = sac_medium.SACRunFiles(tmp_path / "interrupted", env_id)
    assert files.latest_checkpoint() == files.checkpoint(150)
    saved = load_from_pkl(files.checkpoint(150) / "replay_buffer.pkl")
    assert saved.observations.shape[:2] == (150, 1)  # saved without the empty capacity

    monkeypatch.setattr(sac_medium, "_stochastic_returns", real_returns)
    run = _train(recipe, tmp_path / "interrupted")
    assert (run.reached, run.steps, run.policy) == (False, 300, None)
    assert run.evaluations == uninterrupted.evaluations  # the same returns, to the last bit
    assert [p.name for p in files.checkpoints.iterdir()] == ["step_300"]  # only the latest is kept
    buffer, expected = (load_from_pkl(r.checkpoint / "replay_buffer.pkl") for r in (run, uninterrupted))
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(buffer, name), getattr(expected, name), err_msg=name)
    weights, expected_weights = (
        SAC.load(r.checkpoint / "sac.zip", device="cpu").policy.state_dict() for r in (run, uninterrupted)
    )
    for name, value in expected_weights.items():
        assert torch.equal(weights[name], value), name

    # at the cap the run stops; a larger cap goes on from there, with a buffer grown to it
    assert _train(recipe, tmp_path / "interrupted").steps == 300
    longer = _train(
        SACRecipe(
            env_id, seed=0, rule=StoppingRule(1e9, 1, 450), eval_freq=150, n_eval_episodes=1, sac_kwargs=TINY_SAC
        ),
        tmp_path / "interrupted",
    )
    assert longer.steps == 450 and [e.step for e in longer.evaluations] == [150, 300, 450]
    assert load_from_pkl(longer.checkpoint / "replay_buffer.pkl").observations.shape[:2] == (450, 1)


def test_a_checkpoint_without_the_training_state_is_refused_and_says_what_to_do(tmp_path):
    recipe = _pendulum(threshold=1e9, max_steps=150, eval_freq=150)
    run = _train(recipe, tmp_path)
    (run.checkpoint / "training_state.pkl").unlink()
    bigger = _pendulum(threshold=1e9, max_steps=300, eval_freq=150)
    with pytest.raises(ConfigError, match="holds no training_state.pkl.*start the training in a new runs folder"):
        _train(bigger, tmp_path)


def test_same_seed_trains_the_same_replay_buffer(tmp_path):
    runs = [_train(_pendulum(threshold=1e9, max_steps=120, eval_freq=120), tmp_path / name) for name in "ab"]
    first, second = (load_from_pkl(run.checkpoint / "replay_buffer.pkl") for run in runs)
    np.testing.assert_array_equal(first.observations, second.observations)
    np.testing.assert_array_equal(first.actions, second.actions)
    assert first.actions[60:].std() > 0  # learnt actions, after the 50 random ones


def test_a_run_in_the_folder_from_other_settings_is_refused(tmp_path):
    _train(_pendulum(threshold=1e9, max_steps=100, eval_freq=100), tmp_path)
    other_seed = SACRecipe("Pendulum-v1", seed=1, eval_freq=100, n_eval_episodes=1, sac_kwargs=TINY_SAC)
    with pytest.raises(ConfigError, match="started with other settings \\(seed: 0 there, 1 now\\)"):
        _train(other_seed, tmp_path)


def test_stopped_run_gives_the_policy_its_record_and_the_medium_replay_dataset(tmp_path, minari_root):
    recipe = _pendulum(threshold=-1e9, max_steps=400, eval_freq=100)  # reached at the first evaluation
    run = _train(recipe, tmp_path)
    assert (run.reached, run.steps) == (True, 100) and run.policy == tmp_path / "sac-Pendulum-v1.zip"
    record = json.loads((tmp_path / "sac-Pendulum-v1.json").read_text())
    assert record["stopped_at_step"] == 100 and record["recipe"]["rule"]["max_steps"] == 400
    assert [e["step"] for e in record["evaluations"]] == [100]
    assert _train(recipe, tmp_path).steps == 100  # a stopped run is final: no further training

    done = write_replay_dataset(run, "Pendulum-v1", "test/pendulum/medium-replay-v0", reference=PENDULUM_REFERENCE)
    assert (done.n_steps, done.n_episodes, len(done.returns)) == (100, 1, 0)  # its one episode cut by the stop
    data = make_buffer("test/pendulum/medium-replay-v0", download=False)
    assert len(data) == 100 and data.truncations[-1] and not data.terminations.any()
    np.testing.assert_array_equal(data.next_observations[:-1], data.observations[1:])
    assert (data.metadata["ref_min_score"], data.metadata["ref_max_score"]) == PENDULUM_REFERENCE
    with pytest.raises(ConfigError, match="already exists"):
        write_replay_dataset(run, "Pendulum-v1", "test/pendulum/medium-replay-v0")

    # the sac-medium data: the existing collector rolls out the stopped policy
    rollouts = collect(run.policy, "Pendulum-v1", "test/pendulum/sac-medium-v0", 50, seed=1, progress=False)
    assert rollouts.n_steps == 50 and rollouts.algorithm == "stable-baselines3 SAC"

    # a stop on an episode's end (Pendulum's time limit is 200 steps): that episode counts in the average
    at_time_limit = _train(_pendulum(threshold=-1e9, max_steps=400, eval_freq=200), tmp_path / "at_limit")
    done = write_replay_dataset(at_time_limit, "Pendulum-v1", "test/pendulum/limit-v0", reference=PENDULUM_REFERENCE)
    assert (done.n_steps, done.n_episodes, len(done.returns)) == (200, 1, 1)

    shutil.rmtree(run.checkpoint)  # e.g. a folder that holds only the kept policy and its record
    with pytest.raises(ConfigError, match="replay_buffer.pkl not found: .*Train again with the recorded seed"):
        write_replay_dataset(run, "Pendulum-v1", "test/pendulum/other-v0")


def test_list_shows_the_medium_replay_data_and_its_average(minari_root, tmp_path):
    env = gym.make("Hopper-v5")
    buffer = ReplayBuffer(20, env.observation_space, env.action_space, handle_timeout_termination=True)
    observation = np.zeros((1, 11))
    for step in range(12):
        done = step == 4  # an episode of 5 steps (return 5.0), then an unfinished one of 7
        buffer.add(observation, observation, np.zeros((1, 3)), np.ones(1), np.array([done]), [{}])
    save_to_pkl(tmp_path / "replay_buffer.pkl", buffer)
    run = SACRun(True, 12, [], tmp_path, None)
    row = _row(invoke("list").output, "local-hopper-medium-replay")
    assert "local/hopper/medium-replay-v0" in row and "missing" in row
    write_replay_dataset(run, "Hopper-v5", "local/hopper/medium-replay-v0")
    row = _row(invoke("list").output, "local-hopper-medium-replay")
    assert "yes" in row and "2 episodes, 12 steps" in row and "mean return 5.0" in row


def _row(output: str, task: str) -> str:
    """The table row(s) of ``task`` (up to the next row separator)."""
    return output.split(f"│ {task} ", 1)[1].split("├", 1)[0]


def _script(monkeypatch):
    path = Path(__file__).resolve().parents[2] / "scripts" / "make_local_datasets.py"
    spec = importlib.util.spec_from_file_location("make_local_datasets", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_local_datasets", module)
    spec.loader.exec_module(module)
    return module


def test_script_rebuilds_both_datasets_from_a_finished_run_and_names_what_is_missing(
    tmp_path, minari_root, monkeypatch, capsys
):
    script = _script(monkeypatch)
    runs, store = tmp_path / "runs", tmp_path / "store"
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--sac", "--only", "hopper-medium"])
    assert exit_info.value.code == 2 and "unknown with --sac; choose among hopper" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--sac", "--no-train", "--runs", str(runs), "--out", str(store), "--only", "walker2d"])
    assert exit_info.value.code == 1 and "holds no stopped SAC run of Walker2d-v5" in capsys.readouterr().err

    # a finished Hopper run of a tiny SAC (reached at its first evaluation)
    tiny = SACRecipe(
        "Hopper-v5",
        rule=StoppingRule(threshold=-1e9, window=1, max_steps=100),
        eval_freq=100,
        n_eval_episodes=1,
        sac_kwargs=TINY_SAC,
    )
    train_sac_until_medium(tiny, runs, progress=False)
    script.main(["--sac", "--no-train", "--runs", str(runs), "--out", str(store), "--only", "hopper", "--steps", "60"])
    output = capsys.readouterr().out
    assert "| `local/hopper/medium-replay-v0` | SAC replay buffer, 100 steps | 100 |" in output
    assert "| `local/hopper/sac-medium-v0` | SAC `sac-Hopper-v5.zip`, stochastic | 60 |" in output
    replay = make_buffer(str(store / "local/hopper/medium-replay-v0"), download=False)
    assert len(replay) == 100 and replay.observations.shape == (100, 11) and replay.truncations[-1]
    assert replay.terminations.any()  # the hopper fell: a termination, recovered from the SAC buffer
    assert (replay.metadata["ref_min_score"], replay.metadata["ref_max_score"]) == (-20.272305, 3234.3)


KEPT_RUNS = Path(__file__).resolve().parents[2] / "scripts" / "sac-medium"


@pytest.mark.parametrize("record_file", sorted(KEPT_RUNS.glob("sac-*.json")), ids=lambda path: path.stem)
def test_kept_sac_policies_stopped_by_the_rule_and_load_in_their_env(record_file):
    record = json.loads(record_file.read_text())
    env_id = record["env_id"]
    rule = StoppingRule()
    assert record["recipe"] == SACRecipe(env_id).identity() | {"rule": dict(rule.__dict__)}
    scores = [e["normalized_score"] for e in record["evaluations"]]
    decisions = [rule.decide(scores[: i + 1], e["step"]) for i, e in enumerate(record["evaluations"])]
    assert decisions == ["continue"] * (len(scores) - 1) + ["reached"]  # stopped at the first window >= 1/3
    assert record["evaluations"][-1]["step"] == record["stopped_at_step"]
    env = gym.make(env_id)
    policy = SAC.load(record_file.with_suffix(".zip"), device="cpu")
    assert policy.num_timesteps == record["stopped_at_step"]
    assert policy.observation_space.shape == env.observation_space.shape
    assert policy.action_space.shape == env.action_space.shape


def test_script_rebuilds_sac_medium_from_the_kept_policies_without_training(tmp_path, minari_root, monkeypatch, capsys):
    script = _script(monkeypatch)
    env_id = json.loads(next(KEPT_RUNS.glob("sac-*.json")).read_text())["env_id"]
    env = next(name for name, kept_id in script.SAC_ENVS.items() if kept_id == env_id)
    store = tmp_path / "store"
    with pytest.raises(SystemExit) as exit_info:  # the replay buffer is not kept: medium-replay needs the run
        script.main(["--sac", "--no-train", "--out", str(store), "--only", env, "--steps", "50"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 1 and "replay_buffer.pkl not found" in captured.err
    assert f"| `local/{env}/sac-medium-v0` | SAC `sac-{env_id}.zip`, stochastic | 50 |" in captured.out
