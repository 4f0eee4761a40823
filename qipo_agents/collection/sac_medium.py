"""D4RL's medium and medium-replay recipe: one SAC training per env, stopped at a third of expert.

D4RL built its locomotion ``medium`` and ``medium-replay`` datasets from one SAC training per env,
stopped when the policy reached about a third of the expert's return: ``medium`` is stochastic
rollouts of that policy, ``medium-replay`` the training's replay buffer up to that point. This
module does the same with Stable-Baselines3's SAC:

* :func:`train_sac_until_medium` trains SAC on one core, evaluates the stochastic policy every
  ``eval_freq`` env steps and stops by a :class:`StoppingRule` (the mean D4RL-normalised score of
  the last ``window`` evaluations reaches ``threshold``, 100/3 by default; at most ``max_steps``
  steps). After every evaluation it saves a checkpoint (the model, its replay buffer, the
  evaluations so far, and the training env mid-episode with every random generator), atomically,
  so an interrupted training resumes from it exactly: step for step the uninterrupted run. At the
  stop it writes the policy ``sac-<Env>.zip`` (a few MB, the file to keep under version control)
  and its record ``sac-<Env>.json``.
* :func:`split_replay_buffer` turns the replay buffer at the stop into episodes (T + 1
  observations, T actions), keeping terminations and time-limit truncations apart, and
  :func:`write_replay_dataset` writes them as a Minari dataset. The stochastic rollouts of the
  stopped policy are recorded by :func:`qipo_agents.collection.rollouts.collect`, as the other local
  datasets are.

The replay buffer is not meant for version control (40-60 MB per 200k MuJoCo transitions); the same
seed on the same software versions trains the same SAC and so rebuilds the same buffer.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.vec_env import DummyVecEnv

from qipo_agents.collection.rollouts import Collected, EpisodeWriter, new_dataset_target, write_return_statistics
from qipo_agents.common.atomic import atomic_write, write_text_atomic
from qipo_agents.common.evaluation import normalized_score, reference_scores
from qipo_agents.errors import ConfigError, DatasetError

# "about a third of the expert return" on D4RL's normalised scale (0 random, 100 expert)
ONE_THIRD_OF_EXPERT = 100.0 / 3.0

# SAC arguments the recipe sets itself: the buffer must hold every step, in order, of one env
_RESERVED_SAC_ARGUMENTS = {
    "policy",
    "env",
    "seed",
    "device",
    "buffer_size",
    "replay_buffer_class",
    "replay_buffer_kwargs",
    "optimize_memory_usage",
    "n_envs",
}
# the arrays of an SB3 ReplayBuffer, each (buffer_size, n_envs, ...)
_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


@dataclass(frozen=True)
class StoppingRule:
    """When a SAC training has reached the "medium" level.

    The training stops at the first evaluation where the mean of the last ``window`` evaluations'
    mean D4RL-normalised scores reaches ``threshold`` (so never before ``window`` evaluations), or
    when it has taken ``max_steps`` env steps, whichever comes first. Averaging several
    evaluations keeps one lucky evaluation from stopping it.

    Attributes:
        threshold: D4RL-normalised score, ``100 (R - R_random) / (R_expert - R_random)``.
        window: number of consecutive evaluations averaged (K).
        max_steps: cap on the env steps (also the replay buffer's capacity).
    """

    threshold: float = ONE_THIRD_OF_EXPERT
    window: int = 3
    max_steps: int = 1_000_000

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ConfigError(f"the stopping rule's window must be at least 1 evaluation, not {self.window}")
        if self.max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, not {self.max_steps}")

    def decide(self, scores: Sequence[float], steps: int) -> Literal["continue", "reached", "cap"]:
        """``"reached"`` when the last ``window`` of ``scores`` (one mean normalised score per
        evaluation, oldest first) average at least ``threshold``; else ``"cap"`` once ``steps``
        (env steps taken) reaches ``max_steps``; else ``"continue"``."""
        if len(scores) >= self.window and float(np.mean(scores[-self.window :])) >= self.threshold:
            return "reached"
        return "cap" if steps >= self.max_steps else "continue"

    def window_mean(self, scores: Sequence[float]) -> float | None:
        """The mean of the last ``window`` scores, None before ``window`` evaluations."""
        return float(np.mean(scores[-self.window :])) if len(scores) >= self.window else None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of the stochastic policy: ``returns`` of its episodes after ``step`` env steps."""

    step: int
    returns: list[float]
    normalized_score: float  # mean over the episodes


@dataclass(frozen=True)
class SACRecipe:
    """One env's SAC training for the medium / medium-replay data.

    Attributes:
        env_id: Gymnasium id, e.g. ``Hopper-v5``.
        seed: seeds SAC (torch, numpy, the env and its action space); evaluation ``j`` resets its
            episodes with seeds ``eval_seed + i``.
        rule: when to stop.
        eval_freq: env steps between evaluations, each followed by a checkpoint.
        n_eval_episodes: stochastic episodes per evaluation.
        eval_seed: first reset seed of the evaluation episodes.
        sac_kwargs: further ``stable_baselines3.SAC`` arguments. The default is rl-baselines3-zoo's
            for these envs (SB3's defaults, with 10k random steps before learning); the buffer's
            size, the seed and the device are the recipe's.
    """

    env_id: str
    seed: int = 0
    rule: StoppingRule = field(default_factory=StoppingRule)
    eval_freq: int = 10_000
    n_eval_episodes: int = 5
    eval_seed: int = 10_000
    sac_kwargs: Mapping[str, Any] = field(default_factory=lambda: {"learning_starts": 10_000})

    def __post_init__(self) -> None:
        if self.eval_freq < 1 or self.n_eval_episodes < 1:
            raise ConfigError(
                f"eval_freq ({self.eval_freq}) and n_eval_episodes ({self.n_eval_episodes}) must be at least 1"
            )
        reserved = sorted(_RESERVED_SAC_ARGUMENTS & set(self.sac_kwargs))
        if reserved:
            raise ConfigError(
                f"sac_kwargs may not set {', '.join(reserved)}: the recipe sets them (one env, a buffer of "
                "max_steps transitions that keeps every step in order, the recipe's seed, the CPU)"
            )

    def identity(self) -> dict[str, Any]:
        """The settings that shape the training's steps: all but the stopping rule, which may change
        on resume (a run that hit ``max_steps`` goes on with a larger one)."""
        settings = asdict(self)
        del settings["rule"]
        settings["sac_kwargs"] = dict(self.sac_kwargs)
        return json.loads(json.dumps(settings))  # as read back from JSON (tuples become lists)


@dataclass(frozen=True)
class SACRunFiles:
    """Where one env's SAC training keeps its files under the runs folder ``runs``.

    ``sac-<Env>.zip`` (the policy at the stop) and ``sac-<Env>.json`` (its record) are the files
    to keep; ``<Env>/`` holds the recipe and the latest checkpoint (the model, its replay buffer
    and the evaluations so far), which an interrupted training resumes from.
    """

    runs: Path
    env_id: str

    @property
    def policy(self) -> Path:
        return self.runs / f"sac-{self.env_id}.zip"

    @property
    def record(self) -> Path:
        return self.runs / f"sac-{self.env_id}.json"

    @property
    def recipe(self) -> Path:
        return self.runs / self.env_id / "recipe.json"

    @property
    def checkpoints(self) -> Path:
        return self.runs / self.env_id / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{step}"

    def latest_checkpoint(self) -> Path | None:
        """The complete checkpoint of the most steps (a half-written ``.tmp`` one is ignored)."""
        if not self.checkpoints.is_dir():
            return None
        steps = [int(p.name[5:]) for p in self.checkpoints.glob("step_*") if p.name[5:].isdigit()]
        return self.checkpoint(max(steps)) if steps else None


@dataclass(frozen=True)
class SACRun:
    """The outcome of :func:`train_sac_until_medium`.

    Attributes:
        reached: the stopping rule fired (False: the run hit ``max_steps`` first).
        steps: env steps taken.
        evaluations: every evaluation, oldest first.
        checkpoint: the checkpoint at ``steps`` (its ``replay_buffer.pkl`` is the medium-replay data).
        policy: ``sac-<Env>.zip`` when ``reached``, else None.
    """

    reached: bool
    steps: int
    evaluations: list[Evaluation]
    checkpoint: Path
    policy: Path | None


def train_sac_until_medium(
    recipe: SACRecipe,
    runs: str | Path,
    reference: tuple[float, float] | None = None,
    progress: bool = True,
) -> SACRun:
    """Train SAC on ``recipe.env_id`` until ``recipe.rule`` stops it; resume a run found in ``runs``.

    A run whose record ``sac-<Env>.json`` exists has stopped already and is returned as it is. A
    run with a checkpoint continues from it exactly: the model, its optimisers and replay buffer,
    the training env in the middle of its episode (the MuJoCo physics state, the time limit's
    count) and the random generators (torch's, numpy's, Python's, the env's and the action
    space's) are restored, so the resumed run takes the steps the uninterrupted one would have.

    Args:
        runs: the runs folder (see :class:`SACRunFiles`).
        reference: ``(random, expert)`` returns of the normalised score; None: D4RL's for the env
            family (hopper, halfcheetah, walker2d).
        progress: show a progress bar and one line per evaluation.

    Raises:
        ConfigError: no reference returns for the env, a run in ``runs`` that another recipe
            started, or a checkpoint without the training env's state.
    """
    files = SACRunFiles(Path(runs), recipe.env_id)
    if reference is None:
        reference = reference_scores({"env_id": recipe.env_id})
        if reference is None:
            raise ConfigError(f"no reference returns are known for {recipe.env_id}: pass reference=(random, expert)")
    _claim_runs_folder(files, recipe)
    if files.record.is_file() and files.policy.is_file():
        return _stopped_run(files)

    latest = files.latest_checkpoint()
    if latest is None:
        model = SAC(
            "MlpPolicy",
            gym.make(recipe.env_id),
            seed=recipe.seed,
            buffer_size=recipe.rule.max_steps,
            device="cpu",
            **copy.deepcopy(dict(recipe.sac_kwargs)),  # SB3 adds its defaults to policy_kwargs in place
        )
        evaluations: list[Evaluation] = []
    else:
        model = _resume(latest, recipe.rule.max_steps)
        evaluations = [Evaluation(**e) for e in json.loads((latest / "evaluations.json").read_text())]

    eval_env = gym.make(recipe.env_id)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=recipe.rule.max_steps,
            initial=model.num_timesteps,
            unit="step",
            desc=f"SAC {recipe.env_id}",
            dynamic_ncols=True,
        )
    try:
        scores = [e.normalized_score for e in evaluations]
        decision = recipe.rule.decide(scores, model.num_timesteps)
        while decision == "continue":
            to_next_evaluation = recipe.eval_freq - model.num_timesteps % recipe.eval_freq
            chunk = min(to_next_evaluation, recipe.rule.max_steps - model.num_timesteps)
            model.learn(chunk, reset_num_timesteps=False, log_interval=None, callback=_ProgressBar(bar))
            returns = _stochastic_returns(model, eval_env, recipe.n_eval_episodes, recipe.eval_seed)
            score = float(np.mean(normalized_score(np.asarray(returns), *reference)))
            evaluations.append(Evaluation(model.num_timesteps, returns, score))
            scores.append(score)
            _save_checkpoint(model, evaluations, files)
            decision = recipe.rule.decide(scores, model.num_timesteps)
            if bar is not None:
                window = recipe.rule.window_mean(scores)
                window_text = "n/a" if window is None else f"{window:.1f}"
                bar.write(
                    f"{recipe.env_id} step {model.num_timesteps}: return {np.mean(returns):.1f}, normalised "
                    f"{score:.1f}; mean of the last {recipe.rule.window}: {window_text} "
                    f"(stops at {recipe.rule.threshold:.1f})"
                )
    finally:
        if bar is not None:
            bar.close()
        eval_env.close()
    checkpoint = files.checkpoint(model.num_timesteps)
    if decision == "cap":
        return SACRun(False, model.num_timesteps, evaluations, checkpoint, None)
    with atomic_write(files.policy, binary=True) as file:
        model.save(file)
    record = {
        "env_id": recipe.env_id,
        "stopped_at_step": model.num_timesteps,
        "reference_scores": list(reference),
        "recipe": recipe.identity() | {"rule": asdict(recipe.rule)},
        "evaluations": [asdict(e) for e in evaluations],
        "versions": _versions(),
    }
    write_text_atomic(files.record, json.dumps(record, indent=1) + "\n")
    return SACRun(True, model.num_timesteps, evaluations, checkpoint, files.policy)


def _claim_runs_folder(files: SACRunFiles, recipe: SACRecipe) -> None:
    """Write the recipe beside a new run; refuse a run that another recipe started."""
    if files.recipe.is_file():
        started = json.loads(files.recipe.read_text())
        asked = recipe.identity()
        if started != asked:
            changed = sorted(key for key in started.keys() | asked.keys() if started.get(key) != asked.get(key))
            raise ConfigError(
                f"{files.runs / files.env_id} holds a SAC run started with other settings "
                f"({', '.join(f'{k}: {started.get(k)!r} there, {asked.get(k)!r} now' for k in changed)}); "
                "resume it with its own settings (only the stopping rule may change) or use another runs folder"
            )
        return
    if files.record.is_file() or files.latest_checkpoint() is not None:
        return  # a copied run without its recipe (e.g. only the kept policy and record)
    files.recipe.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(files.recipe, json.dumps(recipe.identity(), indent=1) + "\n")


def stopped_run(runs: str | Path, env_id: str) -> SACRun:
    """The finished SAC training of ``env_id`` in ``runs``, from its record (no training).

    Raises:
        ConfigError: ``runs`` holds no stopped run of ``env_id``.
    """
    files = SACRunFiles(Path(runs), env_id)
    if not (files.record.is_file() and files.policy.is_file()):
        raise ConfigError(
            f"{files.runs} holds no stopped SAC run of {env_id} ({files.policy.name} and {files.record.name}): "
            "train it first (without --no-train), or point --runs at the folder that holds them"
        )
    return _stopped_run(files)


def _stopped_run(files: SACRunFiles) -> SACRun:
    record = json.loads(files.record.read_text())
    step = record["stopped_at_step"]
    evaluations = [Evaluation(**e) for e in record["evaluations"]]
    return SACRun(True, step, evaluations, files.checkpoint(step), files.policy)


class _ProgressBar(BaseCallback):
    """Advances a tqdm bar (or nothing, when it is None) by one per env step."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(1)
        return True


def _stochastic_returns(model: SAC, env: gym.Env, n_episodes: int, first_seed: int) -> list[float]:
    """Undiscounted returns of ``n_episodes`` episodes of ``model`` sampling its actions."""
    returns = []
    for episode in range(n_episodes):
        observation, _ = env.reset(seed=first_seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(observation, deterministic=False)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def _save_checkpoint(model: SAC, evaluations: list[Evaluation], files: SACRunFiles) -> None:
    """Save model, replay buffer, evaluations and the training state outside the model (see
    :func:`_training_state`) as ``step_<n>/`` (renamed into place whole), then remove the older
    checkpoints."""
    final = files.checkpoint(model.num_timesteps)
    temporary = final.with_name(final.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    model.save(temporary / "sac.zip")
    save_to_pkl(temporary / "replay_buffer.pkl", _trimmed(model.replay_buffer))
    save_to_pkl(temporary / "training_state.pkl", _training_state(model))
    (temporary / "evaluations.json").write_text(json.dumps([asdict(e) for e in evaluations]) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    for older in files.checkpoints.iterdir():
        if older != final:
            shutil.rmtree(older, ignore_errors=True)


def _training_state(model: SAC) -> dict[str, Any]:
    """What an exact resume needs beyond ``model.save``: the training env as it is mid-episode
    and the random generators' states.

    The env (SB3's ``DummyVecEnv`` of ``Monitor``-wrapped Gymnasium envs) is pickled with its
    wrappers' counters; a MuJoCo env pickles only its constructor arguments, so its full physics
    state (``mjSTATE_INTEGRATION``: positions, velocities, time, the solver's warm start) is kept
    beside, and every env's own generator too.
    """
    env: DummyVecEnv = model.get_env()  # SB3 wraps the one gym env the recipe trains in
    envs = []
    for sub_env in env.envs:
        unwrapped = sub_env.unwrapped
        envs.append({"np_random": unwrapped.np_random.bit_generator.state, "mujoco": _mujoco_state(unwrapped)})
    return {
        "vec_env": env,
        "envs": envs,
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (SB3 samples its replay batches from the global one)
        "python": random.getstate(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }


def _resume(checkpoint: Path, max_steps: int) -> SAC:
    """The model of ``checkpoint`` with its replay buffer (grown to ``max_steps``), its training
    env and its random generators as they were when the checkpoint was saved."""
    state_file = checkpoint / "training_state.pkl"
    if not state_file.is_file():
        raise ConfigError(
            f"{checkpoint} holds no {state_file.name}, the training env's state an exact resume needs "
            "(a checkpoint of an earlier version): start the training in a new runs folder"
        )
    # without env=, SB3 keeps the observation the training env was at
    model = SAC.load(checkpoint / "sac.zip", device="cpu")
    state = load_from_pkl(state_file)
    vec_env: DummyVecEnv = state["vec_env"]
    for sub_env, saved in zip(vec_env.envs, state["envs"], strict=True):
        unwrapped = sub_env.unwrapped
        unwrapped.np_random.bit_generator.state = saved["np_random"]
        if saved["mujoco"] is not None:
            _set_mujoco_state(unwrapped, saved["mujoco"])
    model.set_env(vec_env, force_reset=False)
    model.load_replay_buffer(checkpoint / "replay_buffer.pkl")
    model.replay_buffer = _with_capacity(model.replay_buffer, max_steps)
    model.buffer_size = max_steps
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    return model


def _mujoco_state(env: gym.Env) -> np.ndarray | None:
    """A MuJoCo env's full integration state, None for other envs."""
    import mujoco

    if not isinstance(getattr(env, "data", None), mujoco.MjData):
        return None
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, state, spec)
    return state


def _set_mujoco_state(env: gym.Env, state: np.ndarray) -> None:
    import mujoco

    mujoco.mj_setState(env.model, env.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)


def _trimmed(buffer: ReplayBuffer) -> ReplayBuffer:
    """A copy of ``buffer`` that holds only its filled rows (a saved buffer's size then grows with
    the steps taken, not with the capacity); :func:`_with_capacity` restores the capacity."""
    stored = _stored_transitions(buffer)
    trimmed = copy.copy(buffer)
    for name in _BUFFER_ARRAYS:
        setattr(trimmed, name, getattr(buffer, name)[:stored])
    trimmed.buffer_size, trimmed.pos, trimmed.full = stored, stored, False
    return trimmed


def _with_capacity(buffer: ReplayBuffer, capacity: int) -> ReplayBuffer:
    """``buffer`` grown to hold ``capacity`` transitions, its stored ones first."""
    stored = _stored_transitions(buffer)
    if capacity < stored:
        raise ConfigError(
            f"--max-steps {capacity} is below the {stored} steps this run has taken already; "
            "give a larger --max-steps or use another runs folder"
        )
    for name in _BUFFER_ARRAYS:
        array = getattr(buffer, name)[:stored]
        grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
        grown[:stored] = array
        setattr(buffer, name, grown)
    buffer.buffer_size = capacity
    buffer.full = stored == capacity
    buffer.pos = 0 if buffer.full else stored
    return buffer


def _stored_transitions(buffer: ReplayBuffer) -> int:
    return buffer.buffer_size if buffer.full else buffer.pos


def _versions() -> dict[str, str]:
    import mujoco
    import stable_baselines3
    import torch

    return {
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "mujoco": mujoco.__version__,
        "numpy": np.__version__,
    }


def split_replay_buffer(buffer: ReplayBuffer, n_env_steps: int) -> list[dict[str, np.ndarray]]:
    """The transitions of an SB3 ``ReplayBuffer`` of one env, in order, as Minari episodes.

    An episode ends at a transition whose ``done`` is set: a termination, or a truncation when
    ``timeouts`` (SB3's ``handle_timeout_termination``, from ``infos["TimeLimit.truncated"]``) is
    set too. The transitions after the last ``done`` form an unfinished episode, stored as
    truncated. Actions are mapped back from SAC's ``[-1, 1]`` to the env's bounds (what the env
    received); rewards are SB3's float32 ones, widened to float64.

    Args:
        buffer: ``stable_baselines3.common.buffers.ReplayBuffer`` with ``n_envs == 1``,
            ``handle_timeout_termination=True`` and ``optimize_memory_usage=False``.
        n_env_steps: env steps the training took (``model.num_timesteps``); a buffer that holds
            fewer has wrapped around and lost its first episodes.

    Returns:
        One dict per episode: ``observations`` ``(T + 1, obs_dim)``, ``actions`` ``(T, act_dim)``,
        ``rewards`` ``(T,)`` float64, ``terminations`` and ``truncations`` ``(T,)`` bool, true at
        most at the last step.

    Raises:
        DatasetError: a buffer of several envs, without timeouts or next observations, that
            wrapped around, or whose steps inside an episode do not follow each other.
    """
    if buffer.n_envs != 1:
        raise DatasetError(f"the replay buffer holds {buffer.n_envs} envs' steps; only a buffer of one env splits")
    if buffer.optimize_memory_usage:
        raise DatasetError(
            "the replay buffer was made with optimize_memory_usage=True, which overwrites each episode's "
            "last observation; train with optimize_memory_usage=False"
        )
    if not buffer.handle_timeout_termination:
        raise DatasetError(
            "the replay buffer does not record time-limit truncations (handle_timeout_termination=False), "
            "so terminations cannot be told from truncations; train with handle_timeout_termination=True"
        )
    stored = _stored_transitions(buffer)
    if n_env_steps > stored and buffer.full:
        raise DatasetError(
            f"the replay buffer wrapped around: it holds {stored} transitions of the {n_env_steps} steps taken, "
            f"the first {n_env_steps - stored} are lost; train with buffer_size >= the steps taken"
        )
    if n_env_steps != stored:
        raise DatasetError(f"the replay buffer holds {stored} transitions, but {n_env_steps} steps were taken")
    if stored == 0:
        raise DatasetError("the replay buffer is empty")
    observations = buffer.observations[:stored, 0]
    next_observations = buffer.next_observations[:stored, 0]
    low, high = buffer.action_space.low, buffer.action_space.high
    scaled = buffer.actions[:stored, 0]
    actions = (low + 0.5 * (scaled + 1.0) * (high - low)).astype(buffer.action_space.dtype)  # SB3's unscale_action
    rewards = buffer.rewards[:stored, 0].astype(np.float64)
    dones = buffer.dones[:stored, 0].astype(bool)
    timeouts = buffer.timeouts[:stored, 0].astype(bool)
    ends = list(np.flatnonzero(dones))
    if not ends or ends[-1] != stored - 1:
        ends.append(stored - 1)  # the unfinished last episode
    episodes, start = [], 0
    for end in ends:
        jumps = np.flatnonzero(np.any(next_observations[start:end] != observations[start + 1 : end + 1], axis=-1))
        if len(jumps):
            raise DatasetError(
                f"transitions {start}..{end} form one episode by their done flags, but the next observation of "
                f"transition {start + jumps[0]} is not the observation of the one after it: the buffer is not "
                "one env's steps in order"
            )
        length = end - start + 1
        terminations, truncations = np.zeros(length, bool), np.zeros(length, bool)
        terminations[-1] = dones[end] and not timeouts[end]
        truncations[-1] = not terminations[-1]  # a time limit, an interruption, or the end of the data
        episodes.append(
            {
                "observations": np.concatenate([observations[start : end + 1], next_observations[end : end + 1]]),
                "actions": actions[start : end + 1],
                "rewards": rewards[start : end + 1],
                "terminations": terminations,
                "truncations": truncations,
            }
        )
        start = end + 1
    return episodes


def write_replay_dataset(
    run: SACRun,
    env_id: str,
    dataset_id: str,
    reference: tuple[float, float] | None = None,
    description: str | None = None,
) -> Collected:
    """Write the replay buffer of ``run``'s stop checkpoint as the Minari dataset ``dataset_id``.

    The dataset's metadata holds the mean return and normalised score of the episodes that ended
    in the buffer (all but the last one when the stop cut it), which ``qipo-zoo list`` shows.

    Raises:
        ConfigError: ``dataset_id`` is taken or not a Minari id, or the checkpoint's replay buffer
            is missing (say how to get it).
    """
    target = new_dataset_target(dataset_id)
    buffer_file = run.checkpoint / "replay_buffer.pkl"
    if not buffer_file.is_file():
        raise ConfigError(
            f"{buffer_file} not found: the medium-replay data is the replay buffer of the SAC training at its "
            f"stop (step {run.steps}), which is not kept with the policy. Train again with the recorded seed "
            "(same software versions give the same buffer) or copy the run's checkpoint folder there"
        )
    buffer = load_from_pkl(buffer_file)
    episodes = split_replay_buffer(buffer, run.steps)
    last_ended = bool(buffer.dones[run.steps - 1, 0])  # the stop can fall on an episode's end
    if reference is None:
        reference = reference_scores({"env_id": env_id})
    writer = EpisodeWriter(
        dataset_id,
        env_id,
        reference=reference,
        algorithm_name="stable-baselines3 SAC replay buffer",
        author="qipo_agents",
        author_email="none@example.com",
    )
    try:
        for episode in episodes:
            writer.write(episode)
    except BaseException:
        writer.discard()
        raise
    ended = episodes if last_ended else episodes[:-1]
    returns = np.array([episode["rewards"].sum() for episode in ended])
    stats: dict[str, Any] = {
        "collection": {"source": "SAC replay buffer", "steps": run.steps, "checkpoint": str(run.checkpoint)},
        "description": description
        or f"the replay buffer of a SAC training in {env_id} up to its stop at step {run.steps} (D4RL recipe)",
    }
    normalized = write_return_statistics(writer, stats, returns, reference)
    return Collected(dataset_id, target, len(episodes), run.steps, returns, normalized, "stable-baselines3 SAC")
