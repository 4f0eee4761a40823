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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=Path, help="folder of rl-zoo agents (default: the Hugging Face Hub)")
    parser.add_argument("--out", type=Path, help="Minari store to write to (default: the local store)")
    parser.add_argument("--steps", type=int, default=200_000, help="environment steps per dataset")
    parser.add_argument("--only", nargs="+", choices=[d.name for d in DATASETS], help="build only these")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        os.environ["MINARI_DATASETS_PATH"] = str(args.out.resolve())

    from qipo_agents.zoo.collect import collect

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
        complete = len(done.returns) > 0  # episodes that ended before the budget did
        mean_return = f"{done.returns.mean():.1f}" if complete else "n/a"
        normalized = f"{done.normalized.mean():.1f}" if complete and done.normalized is not None else "n/a"
        rows.append((spec.dataset_id, spec.agent, done.n_steps, done.n_episodes, mean_return, normalized))
    print("\n| dataset id | agent | transitions | episodes | mean return | D4RL-normalised |")
    print("|---|---|---:|---:|---:|---:|")
    for dataset_id, agent, steps, episodes, mean_return, normalized in rows:
        print(f"| `{dataset_id}` | {agent} | {steps} | {episodes} | {mean_return} | {normalized} |")


if __name__ == "__main__":
    main()
