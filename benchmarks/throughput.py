"""Training throughput of QIPO's phases against dataset size: gradient steps/s of the behaviour warm-up, of
both critics and of the refinement, and the time to draw support sets.

For each dataset size (default 10^4, 10^5, 10^6 transitions) a dataset with the Hopper shapes is
synthesised (``--synthetic tile``: the real data, tiled with a small jitter on every copy after
the first; ``random``: Gaussian states, uniform actions) and an agent is constructed on it with
the hyperparameters of ``--qipo-config``. The package's own phase objects are built with
``agent._make_phase(name)`` and timed directly:

* ``behavior``, ``critic`` (in-support softmax, the default, and expectile), ``policy``
  (refinement): gradient steps per second, in blocks of ``--steps`` steps;
* ``renew``: one support renewal of the refinement (``min(n_support_states, N) x M`` actions,
  each NFE network forwards, plus the critic on every one);
* ``critic start``: the in-support critic's ``start()``, which draws M actions for **every** next
  state of the dataset (``N x M x NFE`` forwards).

From these the table derives rates that include the sampling (renewals amortised over
``renew_interval`` steps, the critic's start over ``critic_steps``) and the projected time of a
whole ``learn()`` of the profile.

Beside them, on the same data and in the same interleaved loop:

* ``iql``: one gradient step of d3rlpy's IQL (``benchmarks/setup.sh`` installs it; ``--no-iql``
  leaves it out) with the profile's critic widths for its actor, critics and value network and the
  profile's critic batch size, sampled from d3rlpy's own buffer as its ``fit()`` does. An IQL step
  updates the actor, both critics and V; a QIPO phase updates one of them, which is why each phase
  is reported as a ratio to IQL's step.
* the **floor** of every step: its matrix-product FLOPs (forward and backward, counted by
  ``torch.utils.flop_counter``) at the machine's measured matmul rate (``(256 x 256) @ (256 x 256)``
  float32 products, the networks' own shape, on the same threads). A step cannot run faster than
  its floor; the gap is the time spent outside matrix products (activations, optimiser, Python). Items are interleaved (rotated order in every repeat) and the
tables report medians; an item stops being repeated once it has used ``--item-budget`` seconds.

``--device cuda`` runs the agents and IQL on a GPU (the clock waits for the device's queued work);
``--compile [MODE]`` compiles the networks of every step with ``torch.compile`` first, to measure
whether compilation pays; ``--bf16`` also times every phase with ``precision="bf16-mixed"``
(bfloat16 matrix products) in the same interleaved loop, its floor at the bfloat16 matmul rate.

Example::

    MINARI_DATASETS_PATH=~/qipo-datasets python benchmarks/throughput.py --out results/throughput.json \\
        --plot results/throughput.png
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from typing import Any

import bench_utils as bu
import numpy as np
import torch

HOPPER_SHAPES = (11, 3)  # obs_dim, action_dim, for --synthetic random without a dataset
STEP_ITEMS = ("behavior", "critic_softmax", "critic_expectile", "policy")
BF16 = "_bf16"  # suffix of the step items timed with precision="bf16-mixed"
_FP32_LABELS = {
    "behavior": "behaviour",
    "critic_softmax": "critic (in-support softmax)",
    "critic_expectile": "critic (expectile)",
    "policy": "refinement",
}
LABELS = {
    **_FP32_LABELS,
    **{f"{name}{BF16}": f"{label}, bf16-mixed" for name, label in _FP32_LABELS.items()},
    "iql": "IQL step (d3rlpy)",
    "renew": "renew()",
    "critic_start": "critic start()",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=bu.HelpFormatter,
        epilog="Set MINARI_DATASETS_PATH to the folder scripts/make_local_datasets.py wrote, for the local datasets.",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="dataset sizes (default: 10^4 10^5 10^6)")
    parser.add_argument(
        "--synthetic", choices=("tile", "random"), default="tile", help="how datasets larger than the source are made"
    )
    parser.add_argument("--dataset", nargs="+", default=[bu.DEFAULT_DATASET], help="source data of --synthetic tile")
    parser.add_argument("--jitter", type=float, default=0.01, help="tile: noise std per copy, in feature std units")
    parser.add_argument(
        "--agents", nargs="+", default=None, choices=bu.AGENT_NAMES, help="agents to measure (default: both)"
    )
    parser.add_argument(
        "--qipo-config", default=bu.DEFAULT_QIPO_CONFIG, help="YAML/JSON of QIPO kwargs, or zoo:TASK[:PROFILE]"
    )
    parser.add_argument("--steps", type=int, default=None, help="gradient steps per timed block (default: 50)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default: 5)")
    parser.add_argument(
        "--item-budget",
        type=float,
        default=120.0,
        help="seconds after which an item is not repeated any more (it always gets one measurement)",
    )
    parser.add_argument(
        "--start-cap",
        type=int,
        default=None,
        help="time the critic's support sampling on at most this many next states and scale linearly to N "
        "(sampling runs in fixed-size chunks, so its cost is linear in N); default: exact, which takes "
        "N x M x NFE forwards (about 10^8 for 10^6 states)",
    )
    parser.add_argument("--no-iql", action="store_true", help="do not time d3rlpy's IQL beside the phases")
    parser.add_argument("--device", default="cpu", help="torch device of the agents and of IQL (cpu, cuda, cuda:1)")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        metavar="MODE",
        help="compile the agents' networks with torch.compile (nn.Module.compile) in this mode (default, "
        "reduce-overhead, max-autotune) before timing; the optimiser steps and the sampling code stay eager",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time every phase with precision='bf16-mixed' (bfloat16 matrix products), side by side",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--plot", default=None, help="write a PNG plot (rates and sampling times against N) here")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: sizes 2000 and 5000, flow only, 3-step blocks, 2 repeats"
    )
    args = parser.parse_args(argv)
    defaults = {
        "sizes": [2_000, 5_000] if args.quick else [10_000, 100_000, 1_000_000],
        "steps": 3 if args.quick else 50,
        "repeats": 2 if args.quick else 5,
        "agents": ["flow"] if args.quick else list(bu.AGENT_NAMES),
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ---------------------------------------------------------------------------------------------- data
def synthesize(source, size: int, mode: str, jitter: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``size`` transitions as a dict of arrays (``from_dict`` keys).

    ``tile``: the source's rows, repeated as often as needed; copy ``c > 0`` adds Gaussian noise of
    ``jitter`` feature standard deviations to states (the same noise on ``s_{t+1}`` as on the next
    row's ``s``, so transitions stay chained) and clips jittered actions to the source's bounds;
    episode ids are offset per copy. ``random``: standard normal states, uniform actions in
    [-1, 1], rewards ``N(1, 0.1)``, 1000-step episodes ending in a truncation.
    """
    if mode == "random":
        obs_dim, action_dim = HOPPER_SHAPES if source is None else (source.obs_dim, source.action_dim)
        states = rng.standard_normal((size + 1, obs_dim)).astype(np.float32)
        episode_ids = np.arange(size) // 1000
        ends = np.append(episode_ids[1:] != episode_ids[:-1], True)
        return {
            "observations": states[:-1],
            "next_observations": states[1:],
            "actions": rng.uniform(-1, 1, (size, action_dim)).astype(np.float32),
            "rewards": rng.normal(1.0, 0.1, size).astype(np.float32),
            "terminations": np.zeros(size, bool),
            "truncations": ends,
            "episode_ids": episode_ids,
        }
    n_copies = math.ceil(size / len(source))
    obs_std = source.observations.std(0)
    low, high = source.action_space.low, source.action_space.high
    ids = source.episode_ids
    next_in_episode = np.append(ids[1:] == ids[:-1], False)
    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "observations",
            "next_observations",
            "actions",
            "rewards",
            "terminations",
            "truncations",
            "episode_ids",
        )
    }
    for copy_index in range(n_copies):
        obs, next_obs, actions = source.observations, source.next_observations, source.actions
        if copy_index > 0 and jitter > 0:
            noise = (jitter * obs_std * rng.standard_normal(obs.shape)).astype(np.float32)
            next_noise = np.where(
                next_in_episode[:, None],
                np.roll(noise, -1, axis=0),
                (jitter * obs_std * rng.standard_normal(obs.shape)).astype(np.float32),
            )
            obs, next_obs = obs + noise, next_obs + next_noise
            actions = np.clip(actions + jitter * rng.standard_normal(actions.shape), low, high).astype(np.float32)
        parts["observations"].append(obs)
        parts["next_observations"].append(next_obs)
        parts["actions"].append(actions)
        parts["rewards"].append(source.rewards)
        parts["terminations"].append(source.terminations)
        parts["truncations"].append(source.truncations)
        parts["episode_ids"].append(ids + copy_index * (int(ids.max()) + 1))
    return {k: np.concatenate(v)[:size] for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------- timing
class Phases:
    """The package's phase objects of one agent type on one dataset, ready to be timed."""

    def __init__(
        self,
        agent_class,
        data: dict[str, np.ndarray],
        kwargs: dict[str, Any],
        start_cap: int | None,
        with_iql: bool = True,
        device: str = "cpu",
        compile_mode: str | None = None,
        with_bf16: bool = False,
    ):
        # both critics are timed whichever the profile uses; the projection uses the profile's
        self.critic_type = kwargs.get("critic_type", "in_support_softmax")
        softmax_kwargs = {**kwargs, "critic_type": "in_support_softmax"}
        self.agent = agent_class("MlpPolicy", data, seed=0, device=device, **softmax_kwargs)
        expectile_kwargs = {**kwargs, "critic_type": "expectile"}
        self.agent_expectile = agent_class("MlpPolicy", data, seed=0, device=device, **expectile_kwargs)
        if compile_mode:
            for agent in (self.agent, self.agent_expectile):
                compile_policy(agent.policy, compile_mode)
        self.n, self.start_cap = len(self.agent.data), start_cap
        self.first: dict[str, float] = {}
        self.behavior = self.agent._make_phase("behavior")
        self.behavior.start()
        self.critic_softmax = self.agent._make_phase("critic")
        self.first["critic_start"] = self.time_critic_start(setup=True)
        self.critic_expectile = self.agent_expectile._make_phase("critic")
        self.critic_expectile.start()
        self.policy = self.agent._make_phase("policy")
        start = time.perf_counter()
        self.policy.start()  # = renew()
        self.first["renew"] = time.perf_counter() - start
        self.policy.renew_interval = 10**12  # no renewal inside a timed block: renewals are timed on their own
        self.steps = {
            "behavior": self.behavior,
            "critic_softmax": self.critic_softmax,
            "critic_expectile": self.critic_expectile,
            "policy": self.policy,
        }
        if with_bf16:  # the same phase objects (networks, data, support) stepping in bf16-mixed
            for name in STEP_ITEMS:
                variant = copy.copy(self.steps[name])
                variant.config = variant.config.replace(precision="bf16-mixed")
                self.steps[f"{name}{BF16}"] = variant
        if with_iql:
            self.steps["iql"] = IQLStep(self.agent.buffer, kwargs, device)
        self.step_items = list(self.steps)
        for name in self.step_items:  # warm-up
            self.phase(name).train_step()
        self.flops = {name: step_flops(self.phase(name).train_step) for name in self.step_items}

    def phase(self, name: str):
        return self.steps[name]

    def time_steps(self, name: str, n_steps: int) -> float:
        phase = self.phase(name)
        return bu.seconds_per_call(phase.train_step, n_steps)

    def time_renew(self) -> float:
        start = time.perf_counter()
        self.policy.renew()
        return time.perf_counter() - start

    def time_critic_start(self, setup: bool = False) -> float:
        """Seconds of the critic's ``start()`` (all next states), or its linear extrapolation
        from the first ``start_cap`` next states."""
        critic = self.critic_softmax
        if not self.start_cap or self.n <= self.start_cap:
            start = time.perf_counter()
            critic.start()
            return time.perf_counter() - start
        start = time.perf_counter()
        critic.sample_next_support(critic.data.next_observations[: self.start_cap])
        elapsed = (time.perf_counter() - start) * self.n / self.start_cap
        if setup:  # the critic's steps need a support set of the right shape; its values do not matter
            shape = (self.n, critic.config.n_support_actions, self.agent.action_space.shape[0])
            critic.next_support = torch.zeros(shape, device=self.agent.device)
        return elapsed


class IQLStep:
    """One gradient step of d3rlpy's IQL (actor, twin critics and V) at the profile's critic widths
    and batch size, on the same transitions; ``train_step`` samples the minibatch from d3rlpy's
    buffer and updates, as one iteration of its ``fit()`` does."""

    def __init__(self, buffer, kwargs: dict[str, Any], device: str = "cpu"):
        import quality

        d3rlpy = quality.import_d3rlpy()
        self.dataset = quality.to_mdp_dataset(buffer)
        widths = list(kwargs.get("policy_kwargs", {}).get("critic_hidden_dims", (256, 256)))
        self.batch_size = int(kwargs.get("critic_batch_size", 256))
        encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=widths)
        config = d3rlpy.algos.IQLConfig(
            batch_size=self.batch_size,
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            value_encoder_factory=encoder,
        )
        torch_device = torch.device(device)
        self.algo = config.create(device=f"{torch_device.type}:{torch_device.index or 0}")
        self.algo.build_with_dataset(self.dataset)

    def train_step(self) -> None:
        self.algo.update(self.dataset.sample_transition_batch(self.batch_size))


def compile_policy(policy, mode: str) -> None:
    """Compile, in place, the forward of every network a training step evaluates (the field
    network and its Polyak average, the critic ensemble and its target, ``V``, the one-step policy)."""
    for name in ("actor", "actor_ema", "critic", "critic_target", "value", "one_step"):
        network = getattr(policy, name, None)
        if network is not None:
            network.compile(mode=None if mode == "default" else mode)


def step_flops(train_step) -> int:
    """Matrix-product FLOPs (forward and backward) of one call of ``train_step``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        train_step()
    return counter.get_total_flops()


def matmul_flops_per_s(
    device: str = "cpu", dtype: torch.dtype = torch.float32, repeats: int = 5, n_calls: int = 200
) -> float:
    """Median FLOP/s of ``(256 x 256) @ (256 x 256)`` products of ``dtype`` on ``device`` (the CPU: on
    the current threads)."""
    a, b = torch.randn(256, 256, device=device, dtype=dtype), torch.randn(256, 256, device=device, dtype=dtype)
    bu.seconds_per_call(lambda: a @ b, 20)
    return bu.median([2 * 256**3 / bu.seconds_per_call(lambda: a @ b, n_calls) for _ in range(repeats)])


def measure(args, phases: Phases) -> dict[str, list[float]]:
    """Interleaved repeats: seconds per step (step items) or per call (renew, critic_start)."""
    samples = {name: [] for name in (*phases.step_items, "renew", "critic_start")}
    samples["renew"].append(phases.first["renew"])
    samples["critic_start"].append(phases.first["critic_start"])
    spent = {name: sum(values) for name, values in samples.items()}
    items = list(samples)
    for repeat in range(args.repeats):
        for name in bu.rotated(items, repeat):
            if len(samples[name]) > repeat or (samples[name] and spent[name] >= args.item_budget):
                continue  # renew / critic_start got their first sample at setup
            start = time.perf_counter()
            if name == "renew":
                value = phases.time_renew()
            elif name == "critic_start":
                value = phases.time_critic_start()
            else:
                value = phases.time_steps(name, args.steps)
            samples[name].append(value)
            spent[name] += time.perf_counter() - start
    return samples


def summarise(agent_name: str, size: int, phases: Phases, samples, matmul_rate: dict[str, float]) -> dict[str, Any]:
    """One row of the report: rates, floors (``matmul_rate``: FLOP/s by ``"fp32"`` / ``"bf16"``),
    sampling times and the projected ``learn()`` of the profile."""
    agent = phases.agent
    nfe = bu.count_nfe(agent, np.zeros(agent.observation_space.shape, np.float32))
    med = {name: bu.median(values) for name, values in samples.items()}
    rate = {name: 1.0 / med[name] for name in phases.step_items}
    renew_states = min(agent.n_support_states or size, size)
    n_renewals = math.ceil(agent.policy_steps / agent.renew_interval) if agent.policy_steps else 0
    softmax_critic_s = agent.critic_steps * med["critic_softmax"] + med["critic_start"]
    expectile_critic_s = agent.critic_steps * med["critic_expectile"]
    projected = {
        "behavior": agent.behavior_steps * med["behavior"],
        "critic": expectile_critic_s if phases.critic_type == "expectile" else softmax_critic_s,
        "policy": agent.policy_steps * med["policy"] + n_renewals * med["renew"],
    }
    return {
        "agent": agent_name,
        "size": size,
        "nfe": nfe,
        "n_support_actions": agent.n_support_actions,
        "renew_states": renew_states,
        "steps_per_s": rate,
        "flops_per_step": phases.flops,
        "floor_steps_per_s": {
            name: matmul_rate["bf16" if name.endswith(BF16) else "fp32"] / flops for name, flops in phases.flops.items()
        },
        "matmul_flops_per_s": matmul_rate,
        "renew_s": med["renew"],
        "critic_start_s": med["critic_start"],
        "critic_start_extrapolated": bool(phases.start_cap and size > phases.start_cap),
        "support_actions_per_s": {
            "renew": renew_states * agent.n_support_actions / med["renew"],
            "critic_start": size * agent.n_support_actions / med["critic_start"],
        },
        "critic_type": phases.critic_type,
        "amortised_steps_per_s": {
            "critic_softmax": agent.critic_steps / softmax_critic_s if agent.critic_steps else None,
            "policy": agent.policy_steps / projected["policy"] if agent.policy_steps else None,
        },
        "projected_learn_s": {**projected, "total": sum(projected.values())},
        "schedule": {
            "behavior_steps": agent.behavior_steps,
            "critic_steps": agent.critic_steps,
            "policy_steps": agent.policy_steps,
            "renew_interval": agent.renew_interval,
            "n_renewals": n_renewals,
        },
        "n_samples": {name: len(values) for name, values in samples.items()},
        "samples_s": samples,
    }


# ---------------------------------------------------------------------------------------------- report
def print_report(args, rows) -> None:
    print("\n## Gradient steps per second by phase\n")
    headers = ["agent", "N", *[LABELS[n] for n in STEP_ITEMS], "critic incl. start()", "refinement incl. renewals"]
    table = [
        [
            r["agent"],
            f"{r['size']:,}",
            *[bu.fmt_sig(r["steps_per_s"][n]) for n in STEP_ITEMS],
            bu.fmt_sig(r["amortised_steps_per_s"]["critic_softmax"]),
            bu.fmt_sig(r["amortised_steps_per_s"]["policy"]),
        ]
        for r in rows
    ]
    print(bu.markdown_table(headers, table))
    print("\n## Every step against the floor (and d3rlpy's IQL)\n")
    headers = ["agent", "N", "phase", "steps/s", "x IQL's step", "MFLOP per step", "floor steps/s", "of the floor"]
    table = []
    for r in rows:
        iql = r["steps_per_s"].get("iql")
        for name in r["steps_per_s"]:
            steps, floor = r["steps_per_s"][name], r["floor_steps_per_s"][name]
            table.append(
                [
                    r["agent"],
                    f"{r['size']:,}",
                    LABELS[name],
                    bu.fmt_sig(steps),
                    "" if iql is None else f"{steps / iql:.2f}",
                    bu.fmt_sig(r["flops_per_step"][name] / 1e6),
                    bu.fmt_sig(floor),
                    f"{100 * steps / floor:.0f} %",
                ]
            )
    print(bu.markdown_table(headers, table))
    rates = rows[0]["matmul_flops_per_s"]
    print(
        f"\nMatmul rate: {rates['fp32'] / 1e9:.1f} GFLOP/s float32"
        + (f", {rates['bf16'] / 1e9:.1f} GFLOP/s bfloat16" if args.bf16 else "")
        + f" (256 x 256 products, {device_label(args.device)})."
    )
    print("\n## Support sampling and projected learn() time of the profile\n")
    headers = [
        "agent",
        "N",
        "NFE",
        "renew() [s]",
        "states x M renewed",
        "critic start() [s]",
        "states x M at start",
        "sampled actions/s",
        "projected learn() [min]",
        "of which critic start()",
    ]
    table = []
    for r in rows:
        start = bu.fmt_sig(r["critic_start_s"]) + (" (extrapolated)" if r["critic_start_extrapolated"] else "")
        total = r["projected_learn_s"]["total"]
        table.append(
            [
                r["agent"],
                f"{r['size']:,}",
                r["nfe"],
                bu.fmt_sig(r["renew_s"]),
                f"{r['renew_states']:,} x {r['n_support_actions']}",
                start,
                f"{r['size']:,} x {r['n_support_actions']}",
                bu.fmt_sig(r["support_actions_per_s"]["renew"]),
                bu.fmt(total / 60, 1),
                "not used (expectile critic)"
                if r["critic_type"] == "expectile"
                else f"{100 * r['critic_start_s'] / total:.0f} %",
            ]
        )
    print(bu.markdown_table(headers, table))
    schedule = rows[0]["schedule"] if rows else {}
    print(
        f"\nNotes: {args.synthetic} data"
        + (f" from {' + '.join(args.dataset)} (jitter {args.jitter} std per copy)" if args.synthetic == "tile" else "")
        + f"; {args.qipo_config}; medians over up to {args.repeats} interleaved repeats of {args.steps}-step blocks "
        f"(items stop repeating after {args.item_budget:.0f} s); {device_label(args.device)}"
        + (f", networks compiled (torch.compile, mode {args.compile})" if args.compile else "")
        + ". "
        "'incl.' rates spread the sampling over the phase: the critic's start() over critic_steps, one renew() every "
        f"renew_interval steps. Projected learn(): the profile's schedule {schedule} and its critic "
        f"({rows[0]['critic_type'] if rows else ''}) at these rates "
        "(sampled actions/s: renew(), which also runs the critic on every support action)."
    )


def device_label(device: str) -> str:
    """What the timings ran on, for the report: the GPU's name or the CPU's thread count."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU, {torch.get_num_threads()} torch thread(s)"


def plot(rows, path: str) -> None:
    plt = bu.pyplot()
    fig, (ax_rate, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    for agent in sorted({r["agent"] for r in rows}):
        mine = sorted((r for r in rows if r["agent"] == agent), key=lambda r: r["size"])
        sizes = [r["size"] for r in mine]
        for name in STEP_ITEMS:
            ax_rate.plot(sizes, [r["steps_per_s"][name] for r in mine], marker="o", label=f"{agent} {LABELS[name]}")
        ax_time.plot(sizes, [r["renew_s"] for r in mine], marker="o", label=f"{agent} renew()")
        ax_time.plot(sizes, [r["critic_start_s"] for r in mine], marker="s", label=f"{agent} critic start()")
    for ax in (ax_rate, ax_time):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("dataset size N (transitions)")
        ax.legend(fontsize=7)
    ax_rate.set_ylabel("gradient steps / s")
    ax_time.set_ylabel("seconds per call")
    bu.save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bu.set_threads(args.threads)
    config = bu.load_qipo_config(args.qipo_config)
    source = bu.load_buffer(args.dataset) if args.synthetic == "tile" else None
    classes = bu.agent_classes()
    rng = np.random.default_rng(0)
    matmul_rate = {"fp32": matmul_flops_per_s(args.device)}
    if args.bf16:
        matmul_rate["bf16"] = matmul_flops_per_s(args.device, torch.bfloat16)
    rows = []
    for size in args.sizes:
        data = synthesize(source, size, args.synthetic, args.jitter, rng)
        for agent_name in args.agents:
            started = time.perf_counter()
            phases = Phases(
                classes[agent_name],
                data,
                config[agent_name],
                args.start_cap,
                not args.no_iql,
                device=args.device,
                compile_mode=args.compile,
                with_bf16=args.bf16,
            )
            samples = measure(args, phases)
            row = summarise(agent_name, size, phases, samples, matmul_rate)
            rows.append(row)
            print(
                f"{agent_name} N={size:,}: "
                + ", ".join(f"{LABELS[n]} {row['steps_per_s'][n]:.1f}/s" for n in phases.step_items)
                + f", renew {row['renew_s']:.2f} s, critic start {row['critic_start_s']:.1f} s "
                f"({time.perf_counter() - started:.0f} s measuring)",
                flush=True,
            )
            del phases
    print_report(args, rows)
    payload = {
        "benchmark": "throughput",
        "environment": bu.environment_info(),
        "settings": {
            "sizes": args.sizes,
            "synthetic": args.synthetic,
            "source": args.dataset if args.synthetic == "tile" else None,
            "jitter": args.jitter,
            "qipo_config": args.qipo_config,
            "qipo_kwargs": {name: config[name] for name in args.agents},
            "steps_per_block": args.steps,
            "repeats": args.repeats,
            "item_budget_s": args.item_budget,
            "start_cap": args.start_cap,
            "iql": not args.no_iql,
            "device": args.device,
            "compile": args.compile,
            "bf16": args.bf16,
        },
        "rows": rows,
    }
    if args.out:
        bu.write_json(args.out, payload)
    if args.plot:
        plot(rows, args.plot)
    return payload


if __name__ == "__main__":
    main()
