"""One-step acting: distil trained agents into a one-step policy, then score and time both policies.

For every saved agent the script loads it with ``distill_steps=N`` and its own dataset, trains the
distillation phase (the earlier phases are not repeated; an agent its own run already distilled,
with ``distill_steps > 0``, is taken as it is), and evaluates the multi-step sampler and
the one-step policy on the same episodes (episode ``i`` resets with seed ``i``), with sampled and
zero-noise actions. It then times ``predict`` at batch 1 and ``--batch-size`` for both policies,
in torch and, exported, in onnxruntime, beside the floor of one forward of the acting network
(interleaved repeats, medians), and counts the network evaluations per action with a forward hook::

    python benchmarks/one_step.py --agents logs/flow/local-hopper-medium_1/local-hopper-medium.zip \\
        --distill-steps 20000 --out results/one_step_hopper.json --save-dir results/one_step

How faithful the copy is, noise by noise: on ``--fidelity-pairs`` fixed (dataset state, noise)
pairs, the one-step policy's squared error against the sampler's action as a fraction of the
sampler's action variance, and the share of actions farther than 0.5 (Euclidean) from the
sampler's. ``--architecture`` picks the student of an agent this script distils; ``--episodes 0``
and ``--repeats 0`` leave out the scores and the timing, to compare students cheaply::

    python benchmarks/one_step.py --agents RUN/MODEL.zip --distill-steps 3000 --architecture mlp \\
        --episodes 0 --repeats 0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_utils as bu
import gymnasium as gym
import numpy as np
import onnxruntime
import torch

from qipo_agents.common.evaluation import evaluate, reference_scores
from qipo_agents.networks.one_step import ONE_STEP_ARCHITECTURES
from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.support import clip_actions

POLICIES = ("multi-step", "one-step")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=bu.HelpFormatter,
        epilog="Set MINARI_DATASETS_PATH to the folder scripts/make_local_datasets.py wrote, for the local datasets.",
    )
    parser.add_argument("--agents", nargs="+", required=True, help="saved agents (.zip) to distil")
    parser.add_argument(
        "--dataset", nargs="+", help="the agents' data (ids or paths; default: the ids each agent was trained on)"
    )
    parser.add_argument("--distill-steps", type=int, default=20_000, help="gradient steps of the distillation")
    parser.add_argument(
        "--architecture",
        choices=ONE_STEP_ARCHITECTURES,
        default="field",
        help="the one-step policy of the agents this script distils (policy_kwargs' one_step_architecture)",
    )
    parser.add_argument("--fidelity-pairs", type=int, default=2048, help="(state, noise) pairs of the fidelity check")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per policy and acting rule")
    parser.add_argument("--n-envs", type=int, default=10, help="episodes run at once")
    parser.add_argument("--batch-size", type=int, default=256, help="the large batch of the latency columns")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timing repeats (medians are reported)")
    parser.add_argument("--calls", type=int, default=50, help="predict calls per timing block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--save-dir", help="save each distilled agent here")
    parser.add_argument("--out", help="write the results as JSON here")
    return parser.parse_args(argv)


def onnx_runtime(agent: QIPO, folder: Path, name: str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(agent.export(folder / f"{name}.onnx")), options)


def latencies(agent: QIPO, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Median seconds per call of each (policy, runtime, batch), and of one acting-network forward."""
    rng = np.random.default_rng(0)
    obs_dim, action_dim = agent.observation_space.shape[0], agent.action_space.shape[0]
    batches = {"1": 1, str(args.batch_size): args.batch_size}
    inputs = {key: rng.standard_normal((n, obs_dim)).astype(np.float32) for key, n in batches.items()}
    noises = {key: np.zeros((n, action_dim), np.float32) for key, n in batches.items()}
    blocks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for policy in POLICIES:
            agent.one_step_acting = policy == "one-step"
            runtime = onnx_runtime(agent, Path(folder), policy)
            for key in batches:
                obs = inputs[key]

                def torch_predict(obs=obs, one_step=agent.one_step_acting):
                    agent.one_step_acting = one_step
                    agent.predict(obs, deterministic=True)

                blocks[f"{policy} torch b{key}"] = torch_predict
                blocks[f"{policy} onnxruntime b{key}"] = lambda runtime=runtime, obs=obs, noise=noises[key]: (
                    runtime.run(None, {"observation": obs, "noise": noise})
                )
                blocks[f"{policy} network forward b{key}"] = bu.forward_fn(agent, batches[key])
    samples: dict[str, list[float]] = {name: [] for name in blocks}
    names = list(blocks)
    for repeat in range(args.repeats):
        for name in bu.rotated(names, repeat):
            samples[name].append(bu.seconds_per_call(blocks[name], args.calls))
    agent.one_step_acting = True
    return {name: bu.median(values) for name, values in samples.items()}


@torch.inference_mode()
def fidelity(agent: QIPO, n_pairs: int) -> dict[str, float]:
    """The one-step policy against the sampler on ``n_pairs`` fixed (dataset state, standard
    normal noise) pairs: squared error over the sampler's action variance, and the share of
    actions farther than 0.5 from the sampler's."""
    generator = torch.Generator().manual_seed(0)  # the agents are loaded on the CPU
    states = agent.data.observations[agent.data.sample_indices(n_pairs, generator)]
    noise = torch.randn(n_pairs, agent.action_space.shape[0], generator=generator)
    teacher = clip_actions(
        agent.sampler.sample(agent.policy.actor_ema, states, noise, agent.beta), agent.action_low, agent.action_high
    )
    student = clip_actions(agent.policy.one_step(states, noise), agent.action_low, agent.action_high)
    distance = (student - teacher).norm(dim=1)
    return {
        "relative_error": float((distance**2).mean() / teacher.var(dim=0).sum()),
        "share_farther_than_0.5": float((distance > 0.5).float().mean()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bu.set_threads(args.threads)
    results, fidelity_rows, score_rows, latency_rows = [], [], [], []
    for path in args.agents:
        probe = QIPO.load(path, device="cpu")
        buffer = bu.load_buffer(args.dataset or probe.dataset_metadata["dataset_ids"])
        distilled = probe.acts_in_one_step  # distilled by its own run (trained with distill_steps > 0)
        overrides: dict[str, Any] = {}
        if not distilled:
            policy_kwargs = {**probe.policy_kwargs, "one_step_architecture": args.architecture}
            overrides = {"distill_steps": args.distill_steps, "custom_objects": {"policy_kwargs": policy_kwargs}}
        agent = QIPO.load(path, device="cpu", dataset=buffer, verbose=0, **overrides)
        distill_seconds = None
        if not distilled:
            started = time.perf_counter()
            agent.learn(reset_num_timesteps=False)
            distill_seconds = time.perf_counter() - started
            if args.save_dir:
                agent.save(Path(args.save_dir) / Path(path).stem)
        env_id = bu.env_id_of(agent.dataset_metadata, None)
        reference = reference_scores({**agent.dataset_metadata, "env_id": env_id})
        observations = buffer.observations[:4].astype(np.float32)
        architecture = type(agent.policy.one_step).__name__
        copy = fidelity(agent, args.fidelity_pairs)
        fidelity_rows.append(
            [path, architecture, agent.schedule.distill_steps, bu.fmt_sig(copy["relative_error"]),
             bu.fmt(100 * copy["share_farther_than_0.5"], 2)]
        )  # fmt: skip
        scores: dict[str, Any] = {}
        for policy in POLICIES:
            agent.one_step_acting = policy == "one-step"
            nfe = bu.count_nfe(agent, observations)
            for rule, deterministic in (("sampled", False), ("deterministic", True)):
                if args.episodes:
                    result = evaluate(
                        agent, gym.make(env_id), args.episodes, deterministic, 0, reference, n_envs=args.n_envs
                    )
                    scores[f"{policy} {rule}"] = {**result.to_dict(), "nfe": nfe}
        agent.one_step_acting = True
        timing = latencies(agent, args) if args.repeats else {}
        results.append(
            {
                "agent": path,
                "class": type(agent).__name__,
                "env": env_id,
                "one_step_policy": architecture,
                "distill_steps": agent.schedule.distill_steps,
                "distill_seconds": distill_seconds,
                "fidelity": copy,
                "scores": scores,
                "latency_s": timing,
            }
        )
        for policy in POLICIES:
            if scores:
                sampled, zero = scores[f"{policy} sampled"], scores[f"{policy} deterministic"]
                score_rows.append(
                    [
                        path,
                        policy,
                        sampled["nfe"],
                        f"{sampled['normalized_mean']:.1f} ± {sampled['normalized_std']:.1f}",
                        f"{zero['normalized_mean']:.1f} ± {zero['normalized_std']:.1f}",
                    ]
                )
            if timing:
                row = [path, policy]
                for key in ("1", str(args.batch_size)):
                    row += [
                        bu.fmt(1e3 * timing[f"{policy} torch b{key}"], 3),
                        bu.fmt(1e3 * timing[f"{policy} onnxruntime b{key}"], 3),
                        bu.fmt(1e3 * timing[f"{policy} network forward b{key}"], 3),
                    ]
                latency_rows.append(row)
    print(f"\n## Fidelity: the one-step policy against the sampler on {args.fidelity_pairs} (state, noise) pairs\n")
    headers = ["agent", "one-step policy", "distillation steps", "relative squared error", "% farther than 0.5"]
    print(bu.markdown_table(headers, fidelity_rows))
    if score_rows:
        print(f"\n## Score: {args.episodes} episodes each, D4RL-normalised mean ± std over episodes\n")
        print(bu.markdown_table(["agent", "policy", "NFE", "sampled", "zero noise"], score_rows))
    if latency_rows:
        print("\n## predict() latency [ms], medians of interleaved repeats\n")
        headers = ["agent", "policy"]
        for key in ("1", str(args.batch_size)):
            headers += [f"torch b{key}", f"onnxruntime b{key}", f"one forward b{key}"]
        print(bu.markdown_table(headers, latency_rows))
    payload = {"benchmark": "one_step", "environment": bu.environment_info(), "args": vars(args), "results": results}
    if args.out:
        bu.write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
