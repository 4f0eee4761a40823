"""Callbacks for offline training: periodic evaluation with normalised scores, a progress bar by
phase, and atomic checkpoints.

All are Stable-Baselines3 callbacks (the first two subclass SB3's own), so they mix with SB3's
callbacks in ``learn(callback=[...])``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.callbacks import EvalCallback as SB3EvalCallback
from stable_baselines3.common.callbacks import ProgressBarCallback as SB3ProgressBarCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from qipo_agents.common.evaluation import EvaluationResult, evaluate, reference_scores


class EvalCallback(SB3EvalCallback):
    """SB3's ``EvalCallback`` that also reports D4RL-normalised scores and runs episodes in parallel.

    Every ``eval_freq`` gradient steps of the schedule (so a resumed run evaluates at the same
    steps) it runs ``n_eval_episodes`` episodes with :func:`~qipo_agents.common.evaluation.evaluate`
    and logs ``eval/mean_reward``, ``eval/std_reward``, ``eval/mean_ep_length`` and, when reference
    scores are known (from the dataset or D4RL's table), ``eval/normalized_score``. As SB3's, it
    keeps ``best_mean_reward`` / ``last_mean_reward``, saves ``best_model.zip`` in
    ``best_model_save_path``, writes ``log_path/evaluations.npz`` (``timesteps``, ``results``,
    ``ep_lengths``: rl-baselines3-zoo's plotting scripts read it) and triggers
    ``callback_on_new_best`` / ``callback_after_eval`` (e.g. SB3's
    ``StopTrainingOnNoModelImprovement``). It also appends every evaluation with its normalised
    scores to ``log_path/evaluations.jsonl``.

    Args:
        eval_env: a Gymnasium env, an env id to ``gym.make``, or a ``DummyVecEnv`` of such envs
            (its envs run in parallel).
        eval_freq: gradient steps between evaluations.
        n_eval_episodes: episodes per evaluation (10 in the D4RL protocol).
        deterministic: act deterministically (default: sampled actions, as the paper evaluates).
        reference: ``(random, expert)`` returns; None reads them from the agent's dataset metadata.
        seed: the first episode's reset seed (episode ``i`` uses ``seed + i``).
        n_envs: episodes run in parallel with batched ``predict`` calls (copies of ``eval_env``).
    """

    def __init__(
        self,
        eval_env: gym.Env | DummyVecEnv | str,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 10,
        deterministic: bool = False,
        reference: tuple[float, float] | None = None,
        best_model_save_path: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        seed: int | None = 0,
        verbose: int = 0,
        n_envs: int = 1,
        callback_on_new_best: BaseCallback | None = None,
        callback_after_eval: BaseCallback | None = None,
    ):
        if isinstance(eval_env, str):
            eval_env = gym.make(eval_env)
        if isinstance(eval_env, VecEnv) and not isinstance(eval_env, DummyVecEnv):
            raise TypeError(
                f"EvalCallback steps the episodes' Gymnasium envs itself; pass a gym.Env or a DummyVecEnv, "
                f"not a {type(eval_env).__name__}"
            )
        super().__init__(
            eval_env,
            callback_on_new_best=callback_on_new_best,
            callback_after_eval=callback_after_eval,
            n_eval_episodes=n_eval_episodes,
            eval_freq=eval_freq,
            log_path=None if log_path is None else os.fspath(log_path),
            best_model_save_path=None if best_model_save_path is None else os.fspath(best_model_save_path),
            deterministic=deterministic,
            verbose=verbose,
        )
        self.reference, self.seed, self.n_envs = reference, seed, n_envs
        self.log_dir = None if log_path is None else Path(log_path)
        self.last_result: EvaluationResult | None = None

    def _init_callback(self) -> None:
        # SB3 warns when the eval env's type differs from the training env's; offline training
        # steps no env, so only the folders and the child callback need setting up.
        for folder in (self.best_model_save_path, self.log_dir):
            if folder is not None:
                Path(folder).mkdir(parents=True, exist_ok=True)
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.init_callback(self.model)

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.model.num_timesteps % self.eval_freq == 0:
            return self.run_evaluation()
        return True

    def run_evaluation(self) -> bool:
        """Evaluate now; returns False when ``callback_on_new_best`` or ``callback_after_eval``
        asks to stop training (the result is in :attr:`last_result`)."""
        reference = self.reference or reference_scores(self.model.dataset_metadata)
        envs = self.eval_env.envs if self.eval_env.num_envs > 1 else self.eval_env.envs[0]
        result = evaluate(
            self.model,
            envs,
            self.n_eval_episodes,
            self.deterministic,
            self.seed,
            reference=reference,
            n_envs=self.n_envs,
        )
        self.last_result = result
        self.last_mean_reward = result.mean_return
        self.logger.record("time/total_timesteps", self.model.num_timesteps, exclude="tensorboard")
        self.logger.record("eval/mean_reward", result.mean_return)
        self.logger.record("eval/std_reward", result.std_return)
        self.logger.record("eval/mean_ep_length", float(np.mean(result.lengths)))
        if result.normalized_mean is not None:
            self.logger.record("eval/normalized_score", result.normalized_mean)
        if self.verbose:
            print(f"step {self.model.num_timesteps}: {result}")
        if self.log_dir is not None:
            with open(self.log_dir / "evaluations.jsonl", "a") as f:
                f.write(json.dumps({"timesteps": self.model.num_timesteps, **result.to_dict()}) + "\n")
            self.evaluations_timesteps.append(self.model.num_timesteps)
            self.evaluations_results.append(result.returns)
            self.evaluations_length.append(result.lengths)
            np.savez(
                self.log_path,
                timesteps=self.evaluations_timesteps,
                results=self.evaluations_results,
                ep_lengths=self.evaluations_length,
            )
        self.logger.dump(self.model.num_timesteps)
        continue_training = True
        if result.mean_return > self.best_mean_reward:
            self.best_mean_reward = result.mean_return
            if self.best_model_save_path is not None:
                self.model.save(Path(self.best_model_save_path) / "best_model")
            if self.callback_on_new_best is not None:
                continue_training = self.callback_on_new_best.on_step()
        if self.callback is not None:
            continue_training = continue_training and self._on_event()
        return continue_training


class ProgressBarCallback(SB3ProgressBarCallback):
    """SB3's progress bar over gradient steps, labelled with the phase being trained
    (``learn(progress_bar=True)`` and ``qipo-zoo train`` use it).

    It counts the steps of the whole schedule (a resumed run starts where it stopped) and needs
    no environment: SB3's own bar advances by the training env's ``num_envs`` per step.

    Args:
        only_on_terminal: show no bar when stderr is not a terminal (log files, CI).
    """

    def __init__(self, only_on_terminal: bool = False):
        super().__init__()
        self.only_on_terminal = only_on_terminal
        self.phase: str | None = None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.pbar = tqdm(
            total=self.locals["total_timesteps"],
            initial=self.model.num_timesteps,
            unit="step",
            dynamic_ncols=True,
            disable=None if self.only_on_terminal else False,
        )
        self.phase = None

    def _on_step(self) -> bool:
        self.pbar.update(1)
        phase = getattr(self.model, "current_phase", None)
        if phase and phase != self.phase:
            self.phase = phase
            self.pbar.set_description(phase)
        return True


class CheckpointCallback(BaseCallback):
    """Save the agent every ``save_freq`` gradient steps, atomically, keeping the last ``keep`` files
    (None: every one, as SB3's callback does).

    Files are ``save_path/<name_prefix>_<steps>_steps.zip``; a run that is interrupted keeps its
    last complete checkpoint (:meth:`latest` finds it to resume). For a QIPO agent the agent at the
    end of its critic phase is saved too and never removed: a run of other refinement settings
    starts from it (``qipo-zoo train --start-from``).
    """

    def __init__(self, save_freq: int, save_path: str | os.PathLike, name_prefix: str = "qipo", keep: int | None = 2):
        super().__init__()
        self.save_freq, self.save_path, self.name_prefix, self.keep = save_freq, Path(save_path), name_prefix, keep
        self.kept_steps: set[int] = set()

    def _on_training_start(self) -> None:
        schedule = getattr(self.model, "schedule", None)
        self.kept_steps = {schedule.refinement_start} if schedule is not None else set()

    def _on_step(self) -> bool:
        step = self.model.num_timesteps
        if self.save_freq > 0 and (step % self.save_freq == 0 or step in self.kept_steps):
            self.save()
        return True

    def save(self) -> Path:
        path = self.model.save(self.save_path / f"{self.name_prefix}_{self.model.num_timesteps}_steps")
        older = self.checkpoints(self.save_path, self.name_prefix)[: -self.keep] if self.keep is not None else []
        for old in older:
            if self.step_of(old) not in self.kept_steps:
                old.unlink(missing_ok=True)
        return path

    @staticmethod
    def step_of(checkpoint: Path) -> int:
        """The gradient step a checkpoint file was saved at (from its name)."""
        return int(checkpoint.stem.split("_")[-2])

    @staticmethod
    def checkpoints(save_path: str | os.PathLike, name_prefix: str = "qipo") -> list[Path]:
        """Checkpoint files in ``save_path``, oldest first."""
        files = Path(save_path).glob(f"{name_prefix}_*_steps.zip")
        return sorted(files, key=CheckpointCallback.step_of)

    @classmethod
    def latest(cls, save_path: str | os.PathLike, name_prefix: str = "qipo") -> Path | None:
        found = cls.checkpoints(save_path, name_prefix)
        return found[-1] if found else None
