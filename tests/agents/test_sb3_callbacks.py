"""Stable-Baselines3's own callbacks work unchanged in learn(callback=...), and load(env=...) as in SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    ProgressBarCallback,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from qipo_agents import QIPOFlow
from qipo_agents.common.callbacks import EvalCallback as QIPOEvalCallback
from qipo_agents.errors import SpaceMismatchError

from ..conftest import DATASET_ID
from .conftest import TINY


@pytest.fixture
def hopper_agent(minari_dataset):
    return QIPOFlow("MlpPolicy", DATASET_ID, **TINY)


def test_sb3_no_improvement_stop_ends_training_at_the_evaluation_it_chose(hopper_agent, tmp_path):
    """Evaluations at steps 30, 60, 90, 120 of a 140-step schedule, on an env whose returns never
    change: the first sets the best score, the second and third do not beat it, and SB3's
    StopTrainingOnNoModelImprovement (more than one evaluation without improvement after the first)
    stops training right after the third, at step 90, with the checkpoints and best model saved so far."""
    flat_hopper = Monitor(gym.wrappers.TransformReward(gym.make("Hopper-v5"), lambda reward: 0.0))
    stop = StopTrainingOnNoModelImprovement(max_no_improvement_evals=1, min_evals=1)
    evaluation = EvalCallback(
        flat_hopper,
        eval_freq=30,
        n_eval_episodes=1,
        best_model_save_path=str(tmp_path / "best"),
        log_path=str(tmp_path / "eval"),
        callback_after_eval=stop,
    )
    checkpoints = CheckpointCallback(save_freq=50, save_path=str(tmp_path / "checkpoints"), name_prefix="qipo")
    hopper_agent.learn(callback=CallbackList([evaluation, checkpoints, ProgressBarCallback()]))
    assert hopper_agent.schedule.total == 140
    assert hopper_agent.num_timesteps == evaluation.n_calls == 90
    assert stop.n_calls == 3 and stop.no_improvement_evals == 2
    evaluations = np.load(tmp_path / "eval" / "evaluations.npz")
    assert list(evaluations["timesteps"]) == [30, 60, 90] and (evaluations["results"] == 0.0).all()
    assert (tmp_path / "best" / "best_model.zip").is_file()
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"qipo_50_steps.zip"}
    assert isinstance(hopper_agent.get_env(), VecEnv) and hopper_agent.get_env().num_envs == 1


def test_a_plain_base_callback_sees_the_sb3_locals(hopper_agent):
    class Count(BaseCallback):
        def _on_step(self) -> bool:
            return self.n_calls < 25  # stops training after 25 gradient steps

    hopper_agent.learn(callback=Count())
    assert hopper_agent.num_timesteps == 25


def test_load_takes_an_env_and_evaluate_policy_runs(hopper_agent, tmp_path):
    path = hopper_agent.learn(total_timesteps=20).save(tmp_path / "agent")
    env = gym.make("Hopper-v5")
    loaded = QIPOFlow.load(path, env=env, device="cpu")
    assert loaded.get_env().envs[0] is env
    mean, _ = evaluate_policy(loaded, loaded.get_env(), n_eval_episodes=1)
    assert np.isfinite(mean)
    with pytest.raises(SpaceMismatchError, match="observations"):
        QIPOFlow.load(path, env=gym.make("Pendulum-v1"), device="cpu")


def test_custom_objects_replace_saved_entries_and_unknown_keys_say_so(hopper_agent, tmp_path):
    path = hopper_agent.save(tmp_path / "agent")
    loaded = QIPOFlow.load(path, custom_objects={"beta": 1.5}, device="cpu")
    assert loaded.beta == 1.5
    with pytest.raises(KeyError, match="custom_objects names lr_schedule, which"):
        QIPOFlow.load(path, custom_objects={"lr_schedule": None}, device="cpu")


def test_print_system_info_prints_both_systems(hopper_agent, tmp_path, capsys):
    QIPOFlow.load(hopper_agent.save(tmp_path / "agent"), print_system_info=True, device="cpu")
    out = capsys.readouterr().out
    assert "== saved on ==" in out and "== this system ==" in out and "PyTorch" in out


def test_the_package_eval_callback_is_sb3s_with_normalised_scores(hopper_agent, tmp_path):
    """qipo_agents' EvalCallback is an SB3 EvalCallback: its child callbacks see it as their
    parent and stop training, and it writes SB3's evaluations.npz beside the normalised scores."""
    new_best = []

    class RecordNewBest(BaseCallback):
        def _on_step(self) -> bool:
            new_best.append(self.parent.best_mean_reward)
            return True

    class StopAfterSecondEvaluation(BaseCallback):
        def _on_step(self) -> bool:
            return self.n_calls < 2

    evaluation = QIPOEvalCallback(
        "Hopper-v5",
        eval_freq=20,
        n_eval_episodes=2,
        n_envs=2,
        log_path=tmp_path / "eval",
        callback_on_new_best=RecordNewBest(),
        callback_after_eval=StopAfterSecondEvaluation(),
    )
    assert isinstance(evaluation, EvalCallback)
    hopper_agent.learn(callback=evaluation)
    assert hopper_agent.num_timesteps == 40
    npz = np.load(tmp_path / "eval" / "evaluations.npz")
    assert list(npz["timesteps"]) == [20, 40] and npz["results"].shape == (2, 2)
    assert new_best[0] == pytest.approx(npz["results"][0].mean())
    assert evaluation.best_mean_reward == pytest.approx(npz["results"].mean(axis=1).max())
    assert evaluation.last_mean_reward == pytest.approx(npz["results"][1].mean())
    assert evaluation.last_result.normalized_mean is not None
    assert len((tmp_path / "eval" / "evaluations.jsonl").read_text().splitlines()) == 2
