"""``qipo-zoo eval``: evaluate a run folder or a saved agent, optionally filming one episode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qipo_agents.common.callbacks import CheckpointCallback
from qipo_agents.common.evaluation import EvaluationResult, evaluate, reference_scores
from qipo_agents.errors import ConfigError
from qipo_agents.zoo.envs import check_video_path, make_env, use_offscreen_rendering, write_video
from qipo_agents.zoo.train import (
    CHECKPOINT_DIR,
    CHECKPOINT_PREFIX,
    evaluation_envs,
    evaluation_report,
    make_task_env,
    model_path,
    read_run_config,
    task_reference,
)


@dataclass
class Evaluated:
    model: Path
    env_id: str
    result: EvaluationResult
    video: Path | None
    report: dict[str, Any]
    """The evaluation as ``final_eval.json`` records it, with the ``model`` and whether it acted
    with the one-step policy (``one_step_acting``)."""


def locate_model(target: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """``(model zip, run config or None)`` for a run folder or a model file."""
    target = Path(target)
    if target.is_dir():
        config, _ = read_run_config(target)
        for candidate in (
            model_path(target, config.name),
            CheckpointCallback.latest(target / CHECKPOINT_DIR, CHECKPOINT_PREFIX),
        ):
            if candidate is not None and candidate.exists():
                return candidate, {"config": config}
        raise ConfigError(f"{target} holds no trained agent yet (no {config.name}.zip, no checkpoint)")
    if target.exists() or target.with_name(target.name + ".zip").exists():
        return target, None
    raise ConfigError(f"{target} is neither a run folder nor a saved agent")


def evaluate_target(
    target: str | Path,
    episodes: int | None = None,
    seed: int = 0,
    video: str | Path | None = None,
    env_id: str | None = None,
    device: str = "auto",
    deterministic: bool | None = None,
    best_of_n: int | None = None,
    sampler: bool = False,
    n_envs: int | None = None,
    extraction_acting: str | None = None,
    acting_temperature: float | None = None,
) -> Evaluated:
    """Evaluate the agent of a run folder (its config's env and reference scores) or of a model zip.

    Args:
        episodes: episodes to run (None: the run's ``n_final_eval_episodes``, else 10).
        video: write the first episode to this ``.gif`` / ``.mp4``.
        env_id: evaluation env for a bare model (default: the env recorded with its dataset).
        deterministic: None: the run's ``deterministic_eval`` (sampled actions for a bare model),
            and the agent's own ``extraction_acting``; False samples every action, an extraction's too.
        best_of_n: act with the best of N sampled actions by Q (None: the agent's own ``best_of_n``).
        sampler: act with the multi-step sampler even if the agent was distilled to one step.
        n_envs: episodes run at once, one batched ``predict`` per step (None: the run's
            ``n_eval_envs``, else 1). Deterministic returns do not depend on it; sampled ones
            draw their noise in a different order.
        extraction_acting: how a trusted Q-guided extraction acts under ``deterministic=False``
            (None: the agent's own ``extraction_acting``, or ``"sampled"`` when ``deterministic`` is False).
        acting_temperature: scale of the noise a sampled action starts from, in ``[0, 1]`` (None:
            the agent's own ``acting_temperature``).

    With ``env_id`` given, a run folder's agent is evaluated like a bare model (that env, its
    dataset's reference scores).
    """
    from qipo_agents.qipo.algorithm import QIPO

    if video is not None:
        check_video_path(video)
        use_offscreen_rendering()
    path, run = locate_model(target)
    config = run["config"] if run is not None and env_id is None else None  # None: evaluated as a bare model
    overrides = {} if best_of_n is None else {"best_of_n": best_of_n}  # validated by QIPO's constructor
    if extraction_acting is None and deterministic is False:
        extraction_acting = "sampled"  # asked for sampled actions: a deterministically acting extraction samples too
    if extraction_acting is not None:
        overrides["extraction_acting"] = extraction_acting
    if acting_temperature is not None:
        overrides["acting_temperature"] = acting_temperature
    if sampler:
        overrides["one_step_acting"] = False
    agent = QIPO.load(path, device=device, **overrides)
    if config is not None:
        envs = evaluation_envs(config, make_task_env(config, render=video is not None), n_envs)
        name = config.env
        reference = task_reference(config, agent.dataset_metadata)
        episodes = (config.n_final_eval_episodes or 10) if episodes is None else episodes
        deterministic = config.deterministic_eval if deterministic is None else deterministic
    else:
        name = env_id or agent.dataset_metadata.get("env_id")
        if not name:
            raise ConfigError(f"{path} records no environment; pass --env ENV_ID")
        envs = [make_env(name, render=video is not None)] + [make_env(name) for _ in range((n_envs or 1) - 1)]
        reference = reference_scores(agent.dataset_metadata)
        episodes = 10 if episodes is None else episodes
        deterministic = False if deterministic is None else deterministic
    frames: list | None = [] if video is not None else None
    try:
        result = evaluate(agent, envs, episodes, deterministic, seed, reference=reference, render_frames=frames)
    except Exception as error:
        if video is not None and _is_rendering_error(error):
            raise ConfigError(
                f"rendering failed ({error}); MuJoCo needs an OpenGL backend: MUJOCO_GL=egl (default here) "
                "or MUJOCO_GL=osmesa (software, needs libOSMesa)"
            ) from error
        raise
    written = None
    if video is not None:
        fps = envs[0].metadata.get("render_fps")
        written = write_video(frames, video, fps)
    for env in envs:
        env.close()
    report = evaluation_report(name, seed, len(envs), agent, deterministic, reference, result, config=config)
    report.update(model=str(path), one_step_acting=agent.acts_in_one_step)
    return Evaluated(Path(path), name, result, written, report)


def _is_rendering_error(error: Exception) -> bool:
    text = f"{type(error).__module__}.{type(error).__name__}: {error}"
    return any(marker in text for marker in ("OpenGL", "EGL", "GLFW", "OSMesa", "mujoco.FatalError", "glGetError"))
