"""What the QIPO refinement does to a trained agent, step by step: the diagnostic behind the CPU profiles.

Start from an agent saved at the end of its critic phase (``--agent``: a ``.zip`` of ``save()``
taken after ``behavior_steps + critic_steps``), override refinement hyperparameters
(``--hyperparams`` as JSON, e.g. ``'{"beta": 0, "n_sampling_steps": 10}'``), then run the refinement
in ``--chunks`` chunks of ``--chunk`` gradient steps. Before the first chunk and after each one the
script measures, on 1000 fixed dataset states with 32 sampled actions each:

* ``spread``: the per-state standard deviation of the sampled actions, averaged over states and
  action dimensions (a collapsing policy drives it down);
* ``at bounds``: the fraction of sampled actions within 1e-3 of an action bound (Hopper's data has
  about 9 % of its actions saturated, and a policy that loses them hops differently);
* ``Q(sampled) - Q(data)``: the critic's mean value of sampled actions minus that of the dataset
  actions (what the tilt buys in the critic's eyes);
* ``distance to data``: mean distance between a state's mean sampled action and its dataset action;
* the D4RL-normalised score over ``--episodes`` episodes with sampled actions and the agent's
  ``best_of_n`` (``--episodes 0`` skips it).

Several settings can be compared in one run (``--hyperparams`` takes one JSON object per setting);
each starts from the same saved agent, with the same evaluation seeds. Measurements leave the
agent's random generator as they found it, so from a checkpoint that ``qipo-zoo train`` wrote at
the end of the critic phase, the last chunk's agent is exactly the one the zoo run would have
trained with those settings, and with ``--seed 0`` its score is the run's final evaluation.

Example (the diagnosis of the local-hopper-medium CPU profile, docs/benchmarks.md)::

    MINARI_DATASETS_PATH=~/qipo-datasets OMP_NUM_THREADS=1 python benchmarks/refinement.py \\
        --agent runs/flow_after_critic.zip --chunk 1000 --chunks 3 --episodes 30 \\
        --hyperparams '{"beta": 0, "renew_interval": 1000}' '{"beta": 3, "renew_interval": 1000}'

To make the starting agent, train with the profile and save at the end of the critic phase, e.g.
``agent.schedule = PhaseSchedule(b, c, p); agent.learn(b + c, reset_num_timesteps=False);
agent.save(...)``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import bench_utils as bu
import torch

from qipo_agents.common.evaluation import evaluate, reference_scores
from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.support import SamplerConfig, clip_actions, sample_support_actions

N_PROBE_STATES = 1000
N_PROBE_ACTIONS = 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    parser.add_argument("--agent", required=True, help="agent .zip saved at the end of its critic phase")
    parser.add_argument(
        "--dataset", nargs="+", default=None, help="dataset id(s) to refine on (default: the agent's own)"
    )
    parser.add_argument(
        "--hyperparams", nargs="+", default=["{}"], help="one JSON object of QIPO overrides per setting"
    )
    parser.add_argument("--chunk", type=int, default=None, help="refinement steps between measurements (1000)")
    parser.add_argument("--chunks", type=int, default=None, help="number of chunks (3)")
    parser.add_argument(
        "--episodes", type=int, default=None, help="evaluation episodes per measurement, 0 for none (30)"
    )
    parser.add_argument("--env", default=None, help="evaluation env id (default: the dataset's, e.g. Hopper-v5)")
    parser.add_argument(
        "--n-envs", type=int, default=1, help="episodes evaluated in parallel (1: as qipo-zoo train evaluates)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe states and evaluations")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--save-dir", default=None, help="save each setting's refined agent here (setting_<i>.zip)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one chunk of 50 steps, 1 episode")
    args = parser.parse_args(argv)
    # --quick only changes what was not given explicitly
    defaults = {"chunk": 50, "chunks": 1, "episodes": 1} if args.quick else {"chunk": 1000, "chunks": 3, "episodes": 30}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


@torch.inference_mode()
def probe(agent, observations: torch.Tensor, dataset_actions: torch.Tensor, seed: int) -> dict[str, float]:
    """Statistics of the acting policy's samples at ``observations (N, obs_dim)`` (normalised)."""
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    sampler = SamplerConfig(agent.path, agent.n_sampling_steps, agent.solver)
    raw = sample_support_actions(
        agent.policy.actor_ema, sampler, observations, N_PROBE_ACTIONS, generator, guidance=agent.beta
    )
    actions = clip_actions(raw, agent.action_low, agent.action_high)
    n, k, action_dim = actions.shape
    q = agent.policy.critic.min_q(observations.repeat_interleave(k, dim=0), actions.reshape(-1, action_dim))
    q_data = agent.policy.critic.min_q(observations, dataset_actions)
    at_bounds = (actions - agent.action_low).abs().lt(1e-3) | (agent.action_high - actions).abs().lt(1e-3)
    return {
        "spread": actions.std(dim=1).mean().item(),
        "at_bounds": at_bounds.float().mean().item(),
        "q_gain": (q.mean() - q_data.mean()).item(),
        "distance_to_data": (actions.mean(dim=1) - dataset_actions).norm(dim=-1).mean().item(),
    }


def run_setting(args: argparse.Namespace, overrides: dict[str, Any], buffer, env) -> tuple[list[dict[str, Any]], QIPO]:
    """Reload the saved agent with ``overrides``, attach ``buffer`` and refine it chunk by chunk;
    returns the measurements and the refined agent."""
    agent = QIPO.load(args.agent, device="cpu", **overrides)  # QIPOFlow or QIPODiffusion, as saved
    agent.set_dataset(buffer)
    reference = reference_scores(agent.dataset_metadata)
    picker = torch.Generator().manual_seed(args.seed)
    rows = torch.randperm(len(agent.data), generator=picker)[:N_PROBE_STATES].to(agent.device)
    observations, dataset_actions = agent.data.observations[rows], agent.data.actions[rows]

    records = []
    start = time.perf_counter()
    for chunk in range(args.chunks + 1):
        if chunk:
            agent.learn(args.chunk, reset_num_timesteps=False)
        record = {"refinement_steps": chunk * args.chunk, "train_s": time.perf_counter() - start}
        # measuring must not draw from the agent's generator: the refinement then trains exactly as
        # a run with these settings resumed from the same checkpoint would
        generator_state = agent.generator.get_state()
        record.update(probe(agent, observations, dataset_actions, args.seed + chunk))
        record["renewals"] = getattr(agent._phase, "n_renewals", 0) if chunk else 0
        if args.episodes:
            result = evaluate(
                agent,
                env,
                args.episodes,
                deterministic=False,
                seed=1000 * args.seed,
                reference=reference,
                n_envs=args.n_envs,
            )
            record["score"], record["score_std"] = result.normalized_mean, result.normalized_std
            record["returns"] = result.returns
        agent.generator.set_state(generator_state)
        records.append(record)
        print(json.dumps({"setting": overrides, **record}), flush=True)
        start = time.perf_counter() - record["train_s"]  # evaluation time is not training time
    return records, agent


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bu.set_threads(args.threads)
    settings = [json.loads(text) for text in args.hyperparams]
    from qipo_agents.zoo.envs import make_env

    saved = QIPO.load(args.agent, device="cpu")  # read once for its dataset and env
    dataset_ids = args.dataset or saved.dataset_metadata.get("dataset_ids")
    if not dataset_ids:
        raise SystemExit(f"{args.agent} does not record its dataset: pass --dataset")
    buffer = bu.load_buffer(dataset_ids)  # shared by every setting
    env = make_env(bu.env_id_of(saved.dataset_metadata, args.env)) if args.episodes else None
    results = []
    for index, overrides in enumerate(settings):
        records, agent = run_setting(args, overrides, buffer, env)
        results.append({"setting": overrides, "records": records})
        if args.save_dir:
            results[-1]["saved_to"] = str(agent.save(Path(args.save_dir) / f"setting_{index}"))

    headers = [
        "setting",
        "refinement steps",
        "renewals",
        "spread",
        "at bounds",
        "Q(sampled) - Q(data)",
        "distance to data",
    ]
    if args.episodes:
        headers.append(f"score ({args.episodes} episodes)")
    table = []
    for result in results:
        for r in result["records"]:
            row = [
                json.dumps(result["setting"]),
                r["refinement_steps"],
                r["renewals"],
                f"{r['spread']:.3f}",
                f"{r['at_bounds']:.3f}",
                f"{r['q_gain']:+.3f}",
                f"{r['distance_to_data']:.3f}",
            ]
            if args.episodes:
                row.append(f"{r['score']:.1f} ± {r['score_std']:.1f}")
            table.append(row)
    print(f"\n## Refinement from {args.agent}\n")
    print(bu.markdown_table(headers, table))
    checkpoint = {
        "class": type(saved).__name__,
        "seed": saved.seed,
        "dataset_ids": dataset_ids,
        "num_timesteps": saved.num_timesteps,
    }
    payload = {
        "benchmark": "refinement",
        "environment": bu.environment_info(),
        "args": vars(args),
        "checkpoint": checkpoint,
        "results": results,
    }
    if args.out:
        bu.write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
