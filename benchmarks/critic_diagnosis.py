"""Does a trained critic rank actions the way the data's returns do? A diagnosis of one saved agent.

For a saved agent (best: its checkpoint at the end of the critic phase) and the datasets it trained
on, taken one at a time (medium and expert of a medium-expert task apart), on ``--states`` random
states of each dataset:

* **Q against the return**: the Spearman correlation of ``Q(s, a)`` with the discounted return-to-go
  of the dataset action (the agent's ``gamma``, rewards scaled as the critic saw them) and the
  mean of ``Q - G``: a critic that over-values one dataset's actions shows a larger bias there. An
  episode a time limit cut (no termination) goes on, past the cut, at the mean reward of its last
  ``--tail-steps`` steps: the critic bootstraps through a time limit, so a sum cut at the limit
  would rank late steps below early ones for a reason no critic can see (at ``gamma = 0.995`` the
  cut still weighs 8 % of the return 500 steps before it). The same along each of ``--episodes``
  random episodes, averaged: whether ``Q`` rises and falls with the return within an episode,
  where the better policy's states of a mixed dataset cannot outrank the worse one's.
* **Q against saturation**: the behaviour model's ``--candidates`` sampled actions per state, scored
  by the critic: the share of each action's components at the bounds (``|a| >= 0.99``) of the
  critic's best candidate against an average candidate's and the data's, and the rank of the
  dataset action among the candidates (0 = below every candidate, 1 = above all).
* **Where Q-guided extraction would go**: for each ``--alphas`` value, each state's first candidate
  ``t`` moved to the optimum of the extraction objective ``alpha ||a - t||^2 / action_dim -
  Q(s, a) / mean |Q(s, t)|`` (``qipo_agents.qipo.distillation.extraction_optimum``): the Q gain in
  units of mean ``|Q|`` (the critic's promise, which ``extraction_trust_limit`` checks), the
  root-mean-square move per component and the saturation there.

Example::

    MINARI_DATASETS_PATH=~/qipo-datasets python benchmarks/critic_diagnosis.py \\
        --agent logs/flow/local-halfcheetah-medium-expert_1/checkpoints/qipo_130000_steps.zip \\
        --datasets local/halfcheetah/medium-v0 local/halfcheetah/expert-v0 --out diagnosis.json
"""

from __future__ import annotations

import argparse

import bench_utils as bu
import numpy as np
import torch

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.distillation import extraction_optimum, promised_q_gain
from qipo_agents.qipo.support import clip_actions, sample_support_actions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    parser.add_argument("--agent", required=True, help="a saved QIPOFlow or QIPODiffusion agent (.zip)")
    parser.add_argument("--datasets", nargs="+", required=True, help="Minari ids, each diagnosed on its own")
    parser.add_argument("--states", type=int, default=2000, help="random states per dataset")
    parser.add_argument("--episodes", type=int, default=64, help="random episodes ranked along")
    parser.add_argument("--candidates", type=int, default=16, help="behaviour samples per state")
    parser.add_argument("--alphas", type=float, nargs="*", default=[1.0, 0.3, 0.1], help="extraction strengths")
    parser.add_argument(
        "--tail-steps", type=int, default=100, help="closing steps whose mean reward continues a cut episode"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the results as JSON")
    return parser.parse_args(argv)


def discounted_returns(buffer: OfflineBuffer, rewards: np.ndarray, gamma: float, tail_steps: int) -> np.ndarray:
    """Return-to-go ``G_t = sum_k gamma^k r_{t+k}`` within each episode, ``(N,)``; an episode that ends
    without a termination continues past its last step at the mean reward of its last ``tail_steps``
    steps (``gamma^(T - t) * mean_r / (1 - gamma)`` added to step ``t`` of a ``T``-step episode)."""
    returns = np.zeros(len(buffer), dtype=np.float64)
    lengths = buffer.episode_lengths()
    for end, length in zip(np.cumsum(lengths), lengths):
        start = end - length
        running = 0.0
        if not buffer.terminations[end - 1] and gamma < 1:
            running = float(np.mean(rewards[max(start, end - tail_steps) : end])) / (1 - gamma)
        for t in range(end - 1, start - 1, -1):
            running = rewards[t] + gamma * running
            returns[t] = running
    return returns


def within_episode_spearman(
    agent: QIPO, buffer: OfflineBuffer, returns: np.ndarray, n_episodes: int, rng: np.random.Generator
) -> float:
    """Mean over ``n_episodes`` random episodes of the Spearman correlation, along the episode, of
    ``Q(s_t, a_t)`` with ``returns (N,)``; episodes shorter than 20 steps are left out."""
    lengths = buffer.episode_lengths()
    ends = np.cumsum(lengths)
    starts = ends - lengths
    long_enough = np.flatnonzero(lengths >= 20)
    correlations = []
    for episode in rng.choice(long_enough, min(n_episodes, len(long_enough)), replace=False):
        rows = np.arange(starts[episode], ends[episode])
        obs = torch.as_tensor(agent.observation_normalizer.transform(buffer.observations[rows]), device=agent.device)
        q = agent.policy.critic.min_q(obs, torch.as_tensor(buffer.actions[rows], device=agent.device))
        correlations.append(spearman(q.cpu().numpy(), returns[rows]))
    return float(np.nanmean(correlations))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def extraction_measures(agent: QIPO, obs: torch.Tensor, start: torch.Tensor, alpha: float) -> dict[str, float]:
    """The critic's promise at ``alpha`` (the trust check's measure) and how far, and where to, the
    extraction objective's per-state optimum moves the actions ``start (n, action_dim)``."""
    optimum = extraction_optimum(agent.policy, obs, start, alpha, agent.action_low, agent.action_high)
    return {
        f"alpha_{alpha:g}_q_gain": float(promised_q_gain(agent.policy, obs, start, optimum)),
        f"alpha_{alpha:g}_move_rms": float((optimum - start).pow(2).mean().sqrt()),
        f"alpha_{alpha:g}_saturation": float((optimum.abs() >= 0.99).float().mean()),
    }


@torch.no_grad()
def diagnose(agent: QIPO, buffer: OfflineBuffer, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    rewards = agent.reward_scaler.transform(buffer.rewards.astype(np.float32))
    returns = discounted_returns(buffer, rewards, agent.gamma, args.tail_steps)
    rows = rng.choice(len(buffer), args.states, replace=False)
    obs = torch.as_tensor(agent.observation_normalizer.transform(buffer.observations[rows]), device=agent.device)
    data_actions = torch.as_tensor(buffer.actions[rows], device=agent.device)
    q_data = agent.policy.critic.min_q(obs, data_actions).cpu().numpy()
    generator = torch.Generator(device=agent.device).manual_seed(args.seed)
    candidates = sample_support_actions(
        agent.policy.actor_ema, agent.sampler, obs, args.candidates, generator, guidance=0.0
    )
    candidates = clip_actions(candidates, agent.action_low, agent.action_high)  # (n, K, A)
    n, k, a = candidates.shape
    q_candidates = agent.policy.critic.min_q(obs.repeat_interleave(k, dim=0), candidates.reshape(n * k, a)).view(n, k)
    saturation = (candidates.abs() >= 0.99).float().mean(dim=-1)  # (n, K)
    best = q_candidates.argmax(dim=1)
    rank_of_data = (q_candidates < torch.as_tensor(q_data, device=agent.device)[:, None]).float().mean(dim=1)
    extraction = {}
    with torch.enable_grad():
        for alpha in args.alphas:
            extraction.update(extraction_measures(agent, obs, candidates[:, 0], alpha))
    return {
        "q_return_spearman": spearman(q_data, returns[rows]),
        "q_return_spearman_within_episode": within_episode_spearman(agent, buffer, returns, args.episodes, rng),
        "q_minus_return_mean": float(np.mean(q_data - returns[rows])),
        "return_mean": float(np.mean(returns[rows])),
        "saturation_data": float((np.abs(buffer.actions[rows]) >= 0.99).mean()),
        "saturation_candidates": float(saturation.mean()),
        "saturation_best_by_q": float(saturation[torch.arange(n), best].mean()),
        "q_saturation_spearman_within_state": float(
            np.nanmean([spearman(q, s) for q, s in zip(q_candidates.cpu().numpy(), saturation.cpu().numpy())])
        ),
        "data_action_rank_among_candidates": float(rank_of_data.mean()),
        **extraction,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    bu.set_threads(args.threads)
    agent = QIPO.load(args.agent, device="cpu")
    results = {dataset: diagnose(agent, bu.load_buffer([dataset]), args) for dataset in args.datasets}
    # one row per measure, one column per dataset: the measures outnumber the datasets
    names = list(results)
    rows = [[measure, *(bu.fmt(results[name][measure], 3) for name in names)] for measure in results[names[0]]]
    print(bu.markdown_table(["measure", *names], rows))
    if args.out:
        bu.write_json(args.out, {"agent": args.agent, "args": vars(args), "results": results, **bu.environment_info()})


if __name__ == "__main__":
    main()
