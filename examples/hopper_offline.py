"""Train a QIPO agent on a Hopper Minari dataset and evaluate it, with the Python API.

    MINARI_DATASETS_PATH=../shared/datasets python examples/hopper_offline.py --algo flow

Defaults: the local D4RL-recipe dataset ``local/hopper/medium-v0`` and a small budget that runs on
a laptop CPU in minutes (the zoo's CPU profiles are tuned further: ``qipo-zoo train``). Online,
``--dataset mujoco/hopper/medium-v0`` downloads Minari's own dataset.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

from qipo_agents import QIPODiffusion, QIPOFlow
from qipo_agents.common.callbacks import EvalCallback
from qipo_agents.common.evaluation import evaluate, reference_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=["flow", "diffusion"], default="flow")
    parser.add_argument("--dataset", nargs="+", default=["local/hopper/medium-v0"])
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
    result = evaluate(agent, gym.make(env_id), n_episodes=10, reference=reference_scores(agent.dataset_metadata))
    print(f"{agent_class.__name__} on {args.dataset}: {result}")


if __name__ == "__main__":
    main()
