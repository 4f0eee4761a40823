"""Which critic makes the best-of-N choice work: critic variants on one behaviour model, or swapped critics.

With the expectile (IQL) critic, the critic phase does not depend on the actor, so critics can be
compared on one fixed behaviour model, and critics trained in different runs can be swapped.

* ``--behavior AGENT.zip --hyperparams JSON [JSON ...]``: for each setting, a fresh agent with the
  saved agent's hyperparameters plus the JSON overrides (e.g. ``'{"expectile": 0.9}'``) takes the
  saved actor and observation normaliser, trains its critic phase for ``--steps`` gradient steps,
  and is scored every ``--eval-every`` steps with each ``--best-of`` N.
* ``--swap ACTOR.zip:CRITIC.zip [...]``: act with ACTOR's policy and sampler, choosing the best of
  N candidates by CRITIC's Q-networks (both agents trained on the same data and normaliser).

Scores: D4RL-normalised, ``--episodes`` episodes with sampled actions, episode ``i`` reset with
seed ``--seed + i`` (the same episodes for every row). Example::

    MINARI_DATASETS_PATH=~/qipo-datasets OMP_NUM_THREADS=1 python benchmarks/critics.py \\
        --behavior BEHAVIOR.zip --steps 150000 --eval-every 75000 --best-of 4 8 \\
        --hyperparams '{"expectile": 0.9}' '{"policy_kwargs": {"n_critics": 4}}'
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import bench_utils as bu

from qipo_agents.common.evaluation import evaluate, reference_scores
from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.schedule import PhaseSchedule


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--behavior", help="saved agent whose actor (behaviour model) every critic setting uses")
    mode.add_argument("--swap", nargs="+", metavar="ACTOR:CRITIC", help="pairs of saved agents to combine")
    parser.add_argument("--hyperparams", nargs="+", default=["{}"], help="one JSON object of overrides per setting")
    parser.add_argument("--steps", type=int, default=150_000, help="critic gradient steps per setting")
    parser.add_argument("--eval-every", type=int, default=75_000, help="critic steps between scores")
    parser.add_argument("--best-of", type=int, nargs="+", default=[4], help="best-of-N choices to score")
    parser.add_argument("--episodes", type=int, default=30, help="episodes per score")
    parser.add_argument("--seed", type=int, default=1000, help="episode i resets with seed + i")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    return parser.parse_args(argv)


def score(agent, env, args: argparse.Namespace) -> dict[str, list[float]]:
    """``{"best_of_N": [mean, std]}`` of the normalised score for each ``--best-of`` N."""
    reference = reference_scores(agent.dataset_metadata)
    scores = {}
    for n in args.best_of:
        agent.best_of_n = n
        result = evaluate(agent, env, args.episodes, deterministic=False, seed=args.seed, reference=reference)
        scores[f"best_of_{n}"] = [result.normalized_mean, result.normalized_std]
    return scores


def with_actor_of(source, overrides: dict[str, Any], buffer, critic_steps: int):
    """A new agent of ``source``'s class and hyperparameters plus ``overrides``, holding ``source``'s
    actor, at the start of a critic phase of ``critic_steps`` steps."""
    hyperparameters = {**dict(source.config), "verbose": source.verbose, "seed": source.seed}
    for name, value in overrides.items():  # dict overrides (policy_kwargs) update rather than replace
        current = hyperparameters.get(name)
        hyperparameters[name] = {**current, **value} if isinstance(current, dict) else value
    agent = type(source)("MlpPolicy", buffer, device="cpu", **hyperparameters)
    agent.observation_normalizer.load_state_dict(source.observation_normalizer.state_dict())
    agent.set_dataset(buffer)  # re-normalise the device copy with the source's statistics
    agent.policy.actor.load_state_dict(source.policy.actor.state_dict())
    agent.policy.actor_ema.load_state_dict(source.policy.actor_ema.state_dict())
    behavior_steps = source.schedule.behavior_steps if source.schedule else source.behavior_steps
    agent.schedule = PhaseSchedule(behavior_steps, critic_steps, 0)
    agent.num_timesteps = behavior_steps
    return agent


def train_critics(args: argparse.Namespace, env) -> list[dict[str, Any]]:
    source = QIPO.load(args.behavior, device="cpu")
    buffer = bu.load_buffer(source.dataset_metadata["dataset_ids"])
    results = []
    for text in args.hyperparams:
        overrides = json.loads(text)
        agent = with_actor_of(source, overrides, buffer, args.steps)
        done, train_s = 0, 0.0
        while done < args.steps:
            chunk = min(args.eval_every, args.steps - done)
            start = time.perf_counter()
            agent.learn(chunk, reset_num_timesteps=False)
            train_s += time.perf_counter() - start
            done += chunk
            record = {"setting": overrides, "critic_steps": done, "train_s": train_s, **score(agent, env, args)}
            print(json.dumps(record), flush=True)
            results.append(record)
    return results


def swap_critics(args: argparse.Namespace, env) -> list[dict[str, Any]]:
    results = []
    for pair in args.swap:
        actor_path, critic_path = pair.split(":")
        agent, critic_source = QIPO.load(actor_path, device="cpu"), QIPO.load(critic_path, device="cpu")
        agent.policy.critic.load_state_dict(critic_source.policy.critic.state_dict())
        record = {"actor": actor_path, "critic": critic_path, **score(agent, env, args)}
        print(json.dumps(record), flush=True)
        results.append(record)
    return results


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    columns = [f"best_of_{n}" for n in args.best_of]
    if args.swap:
        headers, keys = ["actor", "critic"], ["actor", "critic"]
    else:
        headers, keys = ["setting", "critic steps", "train [s]"], ["setting", "critic_steps", "train_s"]
    rows = []
    for record in results:
        cells = [json.dumps(record[k]) if k == "setting" else record[k] for k in keys]
        if "train_s" in record:
            cells[-1] = bu.fmt(record["train_s"], 0)
        rows.append(cells + [f"{bu.fmt(record[c][0])} ± {bu.fmt(record[c][1])}" for c in columns])
    return bu.markdown_table(headers + [c.replace("_", " ") for c in columns], rows)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    bu.set_threads(args.threads)
    from qipo_agents.zoo.envs import make_env

    first = args.behavior or args.swap[0].split(":")[0]
    env = make_env(bu.env_id_of(QIPO.load(first, device="cpu").dataset_metadata, None))
    results = swap_critics(args, env) if args.swap else train_critics(args, env)
    print(table(results, args))
    if args.out:
        bu.write_json(args.out, {"args": vars(args), "environment": bu.environment_info(), "results": results})
    return results


if __name__ == "__main__":
    main()
