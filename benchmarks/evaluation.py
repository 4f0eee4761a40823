"""Wall time of ``evaluate()`` for a saved agent: episodes one after another against ``n_envs`` at once.

Every action of a flow or diffusion policy is a multi-step solve; stepping ``n_envs`` episodes
together turns ``n_envs`` solves of one observation into one solve of a batch. The settings are
timed interleaved, ``--repeats`` times, and the medians reported::

    python benchmarks/evaluation.py --agent logs/flow/local-walker2d-medium_1/local-walker2d-medium.zip \\
        --episodes 10 --n-envs 1 5 10 --repeats 3 --out results/evaluation.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import bench_utils as bu
import gymnasium as gym
import numpy as np

from qipo_agents.common.evaluation import evaluate
from qipo_agents.qipo.algorithm import QIPO


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    parser.add_argument("--agent", required=True, help="a saved agent (.zip)")
    parser.add_argument("--env", help="evaluation env id (default: the agent's dataset's)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per evaluation")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 10], help="parallel envs to compare")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians are reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    bu.set_threads(args.threads)
    agent = QIPO.load(args.agent, device="cpu")
    env_id = bu.env_id_of(agent.dataset_metadata, args.env)
    seconds: dict[int, list[float]] = {n: [] for n in args.n_envs}
    steps: dict[int, int] = {}
    for repeat in range(args.repeats):
        for n_envs in bu.rotated(args.n_envs, repeat):
            start = time.perf_counter()
            result = evaluate(agent, gym.make(env_id), args.episodes, seed=0, n_envs=n_envs)
            seconds[n_envs].append(time.perf_counter() - start)
            steps[n_envs] = sum(result.lengths)
    baseline = float(np.median(seconds[args.n_envs[0]]))
    rows = [
        [
            n,
            f"{np.median(seconds[n]):.1f}",
            f"{steps[n] / np.median(seconds[n]):.0f}",
            f"{baseline / np.median(seconds[n]):.2f}x",
        ]
        for n in args.n_envs
    ]
    print(f"\n## evaluate(): {args.episodes} episodes of {env_id}, {type(agent).__name__}, {args.threads} thread(s)\n")
    print(
        bu.markdown_table(["n_envs", "seconds (median)", "env steps/s", f"speed-up over n_envs={args.n_envs[0]}"], rows)
    )
    payload = {
        "benchmark": "evaluation",
        "environment": bu.environment_info(),
        "args": vars(args),
        "seconds": {str(n): s for n, s in seconds.items()},
        "env_steps": {str(n): s for n, s in steps.items()},
    }
    if args.out:
        bu.write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
