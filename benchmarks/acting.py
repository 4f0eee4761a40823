"""Score of saved agents acting with sampled actions, the zero-noise (deterministic) action,
(``--temperatures T ...``) sampled actions from noise scaled by ``T`` (``acting_temperature``) and
(``--best-of-n N``) the best of N sampled actions by the agent's critic and (``--mean-of K``) the
mean of K sampled actions per state (``deterministic_action="mean"``: the policy's mean action, the
action a deterministic BC regresses to).

A flow or diffusion policy fitted to data from a stochastic behaviour policy reproduces that
policy's exploration noise when it samples; its zero-noise action is the central one, as a
deterministic BC policy acts. Every agent is evaluated both ways on the same episodes (episode
``i`` resets with seed ``i``), ``--n-envs`` episodes at a time::

    python benchmarks/acting.py --agents logs/flow/local-walker2d-medium_1/checkpoints/qipo_130000_steps.zip \\
        logs/flow/local-walker2d-medium_1/local-walker2d-medium.zip --episodes 10 --out results/acting.json
"""

from __future__ import annotations

import argparse
from typing import Any

import bench_utils as bu
import gymnasium as gym

from qipo_agents.common.evaluation import evaluate, reference_scores
from qipo_agents.qipo.algorithm import QIPO


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    parser.add_argument("--agents", nargs="+", required=True, help="saved agents (.zip): checkpoints or final models")
    parser.add_argument("--env", help="evaluation env id (default: each agent's dataset's)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per acting rule and agent")
    parser.add_argument("--n-envs", type=int, default=10, help="episodes run at once")
    parser.add_argument(
        "--best-of-n", type=int, default=None, help="also act with the best of N sampled actions by the critic's Q"
    )
    parser.add_argument("--mean-of", type=int, default=None, help="also act with the mean of K sampled actions")
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=[],
        help="also act with sampled actions at these acting temperatures (noise scales between 0 and 1)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    bu.set_threads(args.threads)
    # (name, deterministic, best_of_n, acting_temperature)
    rules = [("sampled", False, 1, 1.0), ("deterministic", True, 1, 1.0)]
    rules += [(f"temperature_{t:g}", False, 1, t) for t in args.temperatures]
    if args.best_of_n:
        rules.append((f"best_of_{args.best_of_n}", False, args.best_of_n, 1.0))
    rows, results = [], []
    for path in args.agents:
        agent = QIPO.load(path, device="cpu", extraction_acting="sampled")  # "sampled" samples every policy
        env_id = bu.env_id_of(agent.dataset_metadata, args.env)
        reference = reference_scores({**agent.dataset_metadata, "env_id": env_id})
        scores = {}
        for rule, deterministic, best_of_n, temperature in rules:
            agent.best_of_n, agent.acting_temperature = best_of_n, temperature
            result = evaluate(agent, gym.make(env_id), args.episodes, deterministic, 0, reference, n_envs=args.n_envs)
            scores[rule] = result.to_dict()
        if args.mean_of:
            agent.best_of_n, agent.acting_temperature = 1, 1.0
            agent.deterministic_action, agent.mean_action_samples = "mean", args.mean_of
            result = evaluate(agent, gym.make(env_id), args.episodes, True, 0, reference, n_envs=args.n_envs)
            scores[f"mean_of_{args.mean_of}"] = result.to_dict()
            agent.deterministic_action = "zero_noise"
        results.append({"agent": path, "env": env_id, "num_timesteps": agent.num_timesteps, **scores})
        rows.append(
            [
                path,
                agent.num_timesteps,
                *(f"{scores[rule]['normalized_mean']:.1f} ± {scores[rule]['normalized_std']:.1f}" for rule in scores),
            ]
        )
    print(f"\n## Acting rule: {args.episodes} episodes each, D4RL-normalised mean ± std over episodes\n")
    headers = ["agent", "gradient steps", "sampled", "deterministic (zero noise)"]
    headers += [f"sampled at temperature {t:g}" for t in args.temperatures]
    if args.best_of_n:
        headers.append(f"best of {args.best_of_n} sampled by Q")
    if args.mean_of:
        headers.append(f"mean of {args.mean_of} sampled")
    print(bu.markdown_table(headers, rows))
    payload = {"benchmark": "acting", "environment": bu.environment_info(), "args": vars(args), "results": results}
    if args.out:
        bu.write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
