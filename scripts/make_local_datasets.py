"""Rebuild the local D4RL-recipe MuJoCo datasets that the zoo's ``local-*`` tasks train on.

Each dataset is a seeded rollout of a public rl-baselines3-zoo agent with stochastic actions in a
Gymnasium ``*-v5`` env, recorded by ``qipo-zoo collect`` (the D4RL recipe; the agents were trained
on the ``*-v3`` envs, whose spaces are the same). medium-expert is medium + expert concatenated at
training time, as D4RL built it, so it needs no dataset of its own.

| dataset id | agent | seed |
|---|---|---|
| ``local/hopper/medium-v0`` | SB3 SAC ``sac-Hopper-v3`` | 1 |
| ``local/hopper/expert-v0`` | sb3-contrib TQC ``tqc-Hopper-v3`` | 2 |
| ``local/halfcheetah/medium-v0`` | SB3 PPO ``ppo-HalfCheetah-v3`` (behind its VecNormalize statistics) | 1 |
| ``local/halfcheetah/expert-v0`` | sb3-contrib TQC ``tqc-HalfCheetah-v3`` | 2 |
| ``local/walker2d/medium-v0`` | sb3-contrib TRPO ``trpo-Walker2d-v3`` (behind its VecNormalize statistics) | 1 |
| ``local/walker2d/expert-v0`` | sb3-contrib TQC ``tqc-Walker2d-v3`` | 2 |

The agents come from a folder (``--agents DIR``: ``<algo>-<Env>-v3.zip`` files, each with its
rl-zoo folder or a ``<algo>-<Env>-v3-vecnormalize.pkl`` beside it) or, online, from the Hugging
Face Hub (``sb3/<algo>-<Env>-v3``). The datasets go to ``--out`` (default: the local Minari store,
``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)::

    pip install "qipo_agents[collect]"
    python scripts/make_local_datasets.py --out ~/qipo-datasets            # agents from the Hub
    python scripts/make_local_datasets.py --agents path/to/agents --only hopper-medium
    export MINARI_DATASETS_PATH=~/qipo-datasets                           # then: qipo-zoo train local-hopper-medium

The same agents, steps and seeds give the same datasets, transition for transition, on the same
software versions.

``--sac`` builds the rest of D4RL's recipe: for each env one SAC training (seed 0, one core,
:mod:`qipo_agents.collection.sac_medium`) stopped when the mean D4RL-normalised score of its last 3
evaluations (5 stochastic episodes each, every 10k steps) reaches 100/3, at most ``--max-steps``
steps; then

| dataset id | data |
|---|---|
| ``local/<env>/medium-replay-v0`` | the training's replay buffer up to the stop |
| ``local/<env>/sac-medium-v0`` | ``--steps`` steps of the stopped policy's stochastic rollouts, seed 1 |

for ``<env>`` in hopper, halfcheetah, walker2d (``--only`` picks some). The trainings write to
``--runs`` (default ``runs/sac-medium``): a checkpoint after every evaluation (the model, its
replay buffer and the evaluations, replacing the one before), and at the stop the policy
``sac-<Env>.zip`` (a few MB) with its record ``sac-<Env>.json`` (the evaluations, the stop
step, the software versions). Run the command again after an interruption: it resumes from the
checkpoint. ``--no-train`` rebuilds the datasets from finished runs without training; its
``--runs`` defaults to ``scripts/sac-medium/``, which holds the policies and records of the
trainings behind the local sets::

    python scripts/make_local_datasets.py --sac --out ~/qipo-datasets                  # hours per env
    python scripts/make_local_datasets.py --sac --only hopper --out ~/qipo-datasets    # one env
    python scripts/make_local_datasets.py --sac --no-train --out ~/qipo-datasets       # sac-medium, minutes

The policy and its record are the files kept under version control: with them alone
``--no-train`` rebuilds ``sac-medium``. The replay buffer (40-60 MB per 200k transitions) is
not: ``medium-replay`` needs the run's last checkpoint, or a training run again with the recorded
seed, which on the same software versions takes the same steps and so fills the same buffer
(an interrupted training resumes exactly, so it fills the same buffer too).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalDataset:
    name: str  # <env>-<kind>
    env_id: str
    agent: str  # <algo>-<Env>-v3, as rl-baselines3-zoo names it on the Hub
    seed: int

    @property
    def dataset_id(self) -> str:
        env, kind = self.name.split("-", 1)
        return f"local/{env}/{kind}-v0"


DATASETS = [
    LocalDataset("hopper-medium", "Hopper-v5", "sac-Hopper-v3", 1),
    LocalDataset("hopper-expert", "Hopper-v5", "tqc-Hopper-v3", 2),
    LocalDataset("halfcheetah-medium", "HalfCheetah-v5", "ppo-HalfCheetah-v3", 1),
    LocalDataset("halfcheetah-expert", "HalfCheetah-v5", "tqc-HalfCheetah-v3", 2),
    LocalDataset("walker2d-medium", "Walker2d-v5", "trpo-Walker2d-v3", 1),
    LocalDataset("walker2d-expert", "Walker2d-v5", "tqc-Walker2d-v3", 2),
]


def agent_files(spec: LocalDataset, agents: Path | None) -> tuple[Path, Path | None]:
    """``(model zip, VecNormalize file or None)`` from ``agents`` or, when it is None, the Hub."""
    if agents is None:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(f"sb3/{spec.agent}", allow_patterns=["*.zip", "*.pkl", "*.yml"]))
        return folder / f"{spec.agent}.zip", None  # the Hub's layout is found by collect itself
    model = agents / f"{spec.agent}.zip"
    if not model.is_file():
        sys.exit(f"{model} not found: --agents must hold {spec.agent}.zip (or leave it out to use the Hub)")
    flat = agents / f"{spec.agent}-vecnormalize.pkl"
    return model, flat if flat.is_file() else None


SAC_ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
SAC_TRAINING_SEED = 0
SAC_ROLLOUT_SEED = 1  # as the other medium sets
TRAINING_RUNS = Path("runs/sac-medium")
KEPT_RUNS = Path(__file__).resolve().parent / "sac-medium"  # the policies behind the local sets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=Path, help="folder of rl-zoo agents (default: the Hugging Face Hub)")
    parser.add_argument("--out", type=Path, help="Minari store to write to (default: the local store)")
    parser.add_argument("--steps", type=int, default=200_000, help="environment steps per rollout dataset")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"build only these: {', '.join(d.name for d in DATASETS)}; with --sac: {', '.join(SAC_ENVS)}",
    )
    parser.add_argument("--sac", action="store_true", help="train SAC per env and write medium-replay and sac-medium")
    parser.add_argument(
        "--runs",
        type=Path,
        help=f"--sac: the trainings' folder (default: {TRAINING_RUNS}; with --no-train the kept scripts/{KEPT_RUNS.name}/)",
    )
    parser.add_argument("--max-steps", type=int, default=1_000_000, help="--sac: cap on each training's env steps")
    parser.add_argument("--no-train", action="store_true", help="--sac: only rebuild from finished trainings")
    args = parser.parse_args(argv)
    names = list(SAC_ENVS) if args.sac else [d.name for d in DATASETS]
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        parser.error(
            f"--only {' '.join(unknown)}: unknown{' with --sac' if args.sac else ''}; choose among {', '.join(names)}"
        )
    if not args.sac and (args.no_train or args.runs is not None or args.max_steps != parser.get_default("max_steps")):
        parser.error("--no-train, --runs and --max-steps belong to --sac")
    if args.runs is None:
        args.runs = KEPT_RUNS if args.no_train else TRAINING_RUNS
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        os.environ["MINARI_DATASETS_PATH"] = str(args.out.resolve())

    if args.sac:
        rows, problems = build_sac_datasets(args, [env for env in SAC_ENVS if not args.only or env in args.only])
    else:
        rows, problems = build_rollout_datasets(args), []
    print("\n| dataset id | source | transitions | episodes | mean return | D4RL-normalised |")
    print("|---|---|---:|---:|---:|---:|")
    for dataset_id, source, steps, episodes, mean_return, normalized in rows:
        print(f"| `{dataset_id}` | {source} | {steps} | {episodes} | {mean_return} | {normalized} |")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)


def build_rollout_datasets(args: argparse.Namespace) -> list[tuple]:
    from qipo_agents.collection import collect

    rows = []
    for spec in DATASETS:
        if args.only and spec.name not in args.only:
            continue
        model, vecnormalize = agent_files(spec, args.agents)
        print(f"{spec.dataset_id}: {args.steps} steps of {spec.agent} in {spec.env_id}, seed {spec.seed}", flush=True)
        done = collect(
            model,
            spec.env_id,
            spec.dataset_id,
            args.steps,
            stochastic=True,
            seed=spec.seed,
            vecnormalize=vecnormalize,
            description=f"D4RL-recipe rollout of the rl-baselines3-zoo agent {spec.agent} (stochastic actions)",
        )
        rows.append(summary_row(done, spec.agent))
    return rows


def build_sac_datasets(args: argparse.Namespace, envs: list[str]) -> tuple[list[tuple], list[str]]:
    """Train (or resume, or with --no-train only read) each env's SAC, then write its two datasets;
    problems that concern one env or dataset are returned, so the others are still built."""
    import torch

    from qipo_agents.collection import (
        SACRecipe,
        StoppingRule,
        collect,
        stopped_run,
        train_sac_until_medium,
        write_replay_dataset,
    )
    from qipo_agents.errors import ConfigError

    torch.set_num_threads(1)  # one core per training, as D4RL's were run side by side
    rows, problems = [], []
    for env in envs:
        env_id = SAC_ENVS[env]
        try:
            if args.no_train:
                run = stopped_run(args.runs, env_id)
            else:
                recipe = SACRecipe(env_id, seed=SAC_TRAINING_SEED, rule=StoppingRule(max_steps=args.max_steps))
                rule = recipe.rule
                print(
                    f"SAC in {env_id}, seed {recipe.seed}: until the mean normalised score of the last {rule.window} "
                    f"evaluations reaches {rule.threshold:.1f}, at most {rule.max_steps} steps; "
                    f"checkpoints in {args.runs / env_id}",
                    flush=True,
                )
                run = train_sac_until_medium(recipe, args.runs)
        except KeyboardInterrupt:
            sys.exit(
                f"interrupted: run the same command again to resume from the latest checkpoint in {args.runs / env_id}"
            )
        except ConfigError as error:
            problems.append(str(error))
            continue
        if not run.reached:
            scores = ", ".join(f"{e.normalized_score:.1f}" for e in run.evaluations[-3:])
            problems.append(
                f"SAC in {env_id} did not reach the stopping score within {run.steps} steps (last evaluations: "
                f"{scores}); run again with a larger --max-steps to train on from its checkpoint"
            )
            continue
        print(f"{env_id}: stopped at step {run.steps}; policy {run.policy}", flush=True)
        try:
            replay = write_replay_dataset(run, env_id, f"local/{env}/medium-replay-v0")
            rows.append(summary_row(replay, f"SAC replay buffer, {run.steps} steps"))
        except ConfigError as error:
            problems.append(str(error))
        try:
            rollouts = collect(
                run.policy,
                env_id,
                f"local/{env}/sac-medium-v0",
                args.steps,
                stochastic=True,
                seed=SAC_ROLLOUT_SEED,
                description=f"D4RL-recipe rollout of a SAC policy stopped at a third of expert ({run.steps} steps)",
            )
            rows.append(summary_row(rollouts, f"SAC `{run.policy.name}`, stochastic"))
        except ConfigError as error:
            problems.append(str(error))
    return rows, problems


def summary_row(done, source: str) -> tuple:
    """One row of the printed table from a :class:`~qipo_agents.collection.Collected`."""
    complete = len(done.returns) > 0  # episodes that ended before the budget did
    mean_return = f"{done.returns.mean():.1f}" if complete else "n/a"
    normalized = f"{done.normalized.mean():.1f}" if complete and done.normalized is not None else "n/a"
    return done.dataset_id, source, done.n_steps, done.n_episodes, mean_return, normalized


if __name__ == "__main__":
    main()
