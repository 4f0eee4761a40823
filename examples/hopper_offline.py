"""Train a QIPO agent on a Hopper Minari dataset and evaluate it, with the Python API.

    python examples/hopper_offline.py --algo flow

Defaults: the Hopper dataset shipped with the package (232 episodes of a D4RL-recipe medium
dataset, no download) and a small budget that runs on a laptop CPU in minutes (the zoo's CPU
recipe trains longer: ``qipo-zoo train hopper-medium-mini``). Online,
``--dataset mujoco/hopper/medium-v0`` downloads Minari's own dataset.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

from qipo_agents import QIPODiffusion, QIPOFlow
from qipo_agents.common.callbacks import EvalCallback
from qipo_agents.common.evaluation import evaluate, reference_scores
from qipo_agents.zoo.sources import BUILTIN_DIR

EMBEDDED_HOPPER = str(BUILTIN_DIR / "hopper-medium-mini")  # a Minari dataset folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=["flow", "diffusion"], default="flow")
    parser.add_argument("--dataset", nargs="+", default=[EMBEDDED_HOPPER], help="Minari id(s) or folder(s)")
    parser.add_argument("--steps", type=int, default=30_000, help="gradient steps over all phases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="hopper_qipo")
    args = parser.parse_args()

    agent_class = QIPOFlow if args.algo == "flow" else QIPODiffusion
    agent = agent_class(
        "MlpPolicy",
        args.dataset if len(args.dataset) > 1 else args.dataset[0],
        seed=args.seed,
        verbose=1,
        behavior_batch_size=256,
        policy_batch_size=256,
        n_support_actions=8,
        n_support_states=10_000,
        renew_interval=2_000,
        critic_type="expectile",
        policy_kwargs={"hidden_dims": (256, 256), "architecture": "mlp"},
    )
    env_id = agent.dataset_metadata.get("env_id") or "Hopper-v5"
    agent.learn(
        args.steps, callback=EvalCallback(env_id, eval_freq=args.steps // 3, n_eval_episodes=3), progress_bar=True
    )
    agent.save(args.save)
    # sampled actions, as the paper evaluates
    result = evaluate(
        agent, gym.make(env_id), n_episodes=10, deterministic=False, reference=reference_scores(agent.dataset_metadata)
    )
    print(f"{agent_class.__name__} on {args.dataset}: {result}")


if __name__ == "__main__":
    main()
