"""Sampling cost of ``predict()``: latency per action (batch 1) and throughput (batch 256) of QIPOFlow and
QIPODiffusion across solvers and step counts, against the floor of NFE network forwards.

For every (agent, solver, steps) the script times ``predict(obs, deterministic=True)`` on one
observation and on a batch of ``--batch-size`` observations, and one forward of the acting network
``policy.actor_ema`` under ``torch.inference_mode`` on a batch-1 (and a batch-256) input. The number
of network evaluations (NFE) of each setting is counted with a forward hook, and the table reports
``predict / (NFE x forward)``: how far ``predict`` is above the floor set by the network itself
(Python overhead of the solver loop, input checks, noise, clipping).

Measurements are interleaved: each repeat visits every setting (and the floors) once, in an order
rotated from repeat to repeat; the table holds medians over repeats (ratios are computed within a
repeat, then their median is taken). With trained agents (``--flow-model`` / ``--diffusion-model``,
``.zip`` files from ``save()``) the normalised score of every setting is measured too (sampled
actions, as the paper evaluates, with the agent's own ``best_of_n``); without
them the agents are randomly initialised on the dataset and only the timing columns are filled.

Example::

    MINARI_DATASETS_PATH=~/qipo-datasets python benchmarks/sampling.py \\
        --flow-model runs/flow.zip --diffusion-model runs/diffusion.zip --out results/sampling.json
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import bench_utils as bu
import numpy as np
import torch

from qipo_agents.common.evaluation import evaluate, reference_scores

DEFAULT_GRID = {
    "flow": {"solvers": ["euler", "midpoint", "rk4"], "steps": [1, 2, 5, 10, 20]},
    "diffusion": {"solvers": ["dpm_solver_2", "dpm_solver_3", "ddim"], "steps": [5, 10, 15, 25, 50]},
}
QUICK_GRID = {
    "flow": {"solvers": ["euler", "midpoint", "rk4"], "steps": [1, 5]},
    "diffusion": {"solvers": ["dpm_solver_2", "dpm_solver_3", "ddim"], "steps": [5, 15]},
}
FLOOR_CALLS_FACTOR = 10  # forwards per floor block = this x the predict calls of a block


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=bu.HelpFormatter,
        epilog="Set MINARI_DATASETS_PATH to the folder scripts/make_local_datasets.py wrote, for the local datasets.",
    )
    parser.add_argument("--flow-model", default=None, help="trained QIPOFlow .zip (enables the score column)")
    parser.add_argument("--diffusion-model", default=None, help="trained QIPODiffusion .zip (enables the score column)")
    parser.add_argument(
        "--agents", nargs="+", default=list(bu.AGENT_NAMES), choices=bu.AGENT_NAMES, help="agents to measure"
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=[bu.DEFAULT_DATASET],
        help="dataset(s) for the observations fed to predict and for the untrained agents",
    )
    parser.add_argument(
        "--qipo-config",
        default=bu.DEFAULT_QIPO_CONFIG,
        help="YAML/JSON with `flow:` / `diffusion:` QIPO kwargs (or zoo:TASK[:PROFILE]) of the untrained agents: "
        "their network shape and default solver",
    )
    parser.add_argument("--flow-solvers", nargs="+", default=None, help="default: euler midpoint rk4")
    parser.add_argument("--flow-steps", type=int, nargs="+", default=None, help="default: 1 2 5 10 20")
    parser.add_argument("--diffusion-solvers", nargs="+", default=None, help="default: dpm_solver_2 dpm_solver_3 ddim")
    parser.add_argument("--diffusion-steps", type=int, nargs="+", default=None, help="default: 5 10 15 25 50")
    parser.add_argument("--batch-size", type=int, default=256, help="batch of the throughput column")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default: 7)")
    parser.add_argument("--calls", type=int, default=None, help="batch-1 predict calls per timed block (default: 20)")
    parser.add_argument(
        "--batch-calls", type=int, default=None, help="batch predict calls per timed block (default: 3)"
    )
    parser.add_argument("--episodes", type=int, default=None, help="evaluation episodes per setting (default: 10)")
    parser.add_argument("--env", default=None, help="evaluation env id (default: the agent's dataset env)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    parser.add_argument(
        "--max-transitions", type=int, default=None, help="load only the first whole episodes of the dataset"
    )
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--plot", default=None, help="write a PNG plot (latency and score against NFE) here")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 step counts per solver, 2 repeats, short blocks, 1 episode"
    )
    args = parser.parse_args(argv)
    grid = QUICK_GRID if args.quick else DEFAULT_GRID
    defaults = {
        "flow_solvers": grid["flow"]["solvers"],
        "flow_steps": grid["flow"]["steps"],
        "diffusion_solvers": grid["diffusion"]["solvers"],
        "diffusion_steps": grid["diffusion"]["steps"],
        "repeats": 2 if args.quick else 7,
        "calls": 5 if args.quick else 20,
        "batch_calls": 1 if args.quick else 3,
        "episodes": 1 if args.quick else 10,
        "max_transitions": 5_000 if args.quick else None,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ---------------------------------------------------------------------------------------------- agents
def build_agents(args, buffer) -> dict[str, Any]:
    classes = bu.agent_classes()
    models = {"flow": args.flow_model, "diffusion": args.diffusion_model}
    config = None
    agents = {}
    for name in args.agents:
        if models[name]:
            agents[name] = classes[name].load(models[name], device="cpu")
        else:
            config = config or bu.load_qipo_config(args.qipo_config)
            agents[name] = classes[name]("MlpPolicy", buffer, seed=0, device="cpu", **config[name])
    return agents


def settings_of(args, agents: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (agent, solver, steps) to time; each agent's own default is always included and flagged.
    A distilled agent (one that acts in one step) adds its one-step policy as ``solver="one-step"``,
    its default."""
    grid = {
        "flow": (args.flow_solvers, args.flow_steps),
        "diffusion": (args.diffusion_solvers, args.diffusion_steps),
    }
    settings = []
    for name, agent in agents.items():
        one_step = getattr(agent, "acts_in_one_step", False)
        default = agent.path.check_solver(agent.sampler.solver, agent.sampler.n_steps)
        solvers, steps = grid[name]
        pairs = [(s, k) for s in solvers for k in steps]
        if default not in pairs:
            pairs.append(default)
        for solver, n_steps in pairs:
            agent.path.check_solver(solver, n_steps)
            is_default = (solver, n_steps) == default and not one_step
            settings.append(
                {"agent": name, "solver": solver, "steps": n_steps, "default": is_default, "one_step": False}
            )
        if one_step:
            settings.append({"agent": name, "solver": "one-step", "steps": 1, "default": True, "one_step": True})
    return settings


def act_as(agent, setting: dict[str, Any], sampler) -> None:
    """Make ``agent`` act as ``setting`` says: with its one-step policy, or with ``sampler`` at the
    setting's solver and steps."""
    if agent.policy.one_step is not None:
        agent.one_step_acting = setting["one_step"]
    if not setting["one_step"]:
        agent.sampler = dataclasses.replace(sampler, solver=setting["solver"], n_steps=setting["steps"])


# ---------------------------------------------------------------------------------------------- measurement
def measure(args, agents, settings, observations: np.ndarray) -> dict[str, Any]:
    """Interleaved timing; returns per-repeat seconds per call for every item."""
    one, batch = observations[:1][0], observations[: args.batch_size]
    samplers = {name: agent.sampler for name, agent in agents.items()}
    one_step_acting = {name: agent.one_step_acting for name, agent in agents.items()}
    networks = sorted({floor_key(setting) for setting in settings})
    items = [("setting", i) for i in range(len(settings))] + [("floor", key) for key in networks]
    samples: dict[tuple, dict[str, list[float]]] = {item: {"b1": [], "bN": []} for item in items}
    floors = {}
    for setting in settings:  # warm-up, NFE, and the forward of the network each setting acts with
        agent = agents[setting["agent"]]
        act_as(agent, setting, samplers[setting["agent"]])
        floors.setdefault(floor_key(setting), (bu.forward_fn(agent, 1), bu.forward_fn(agent, len(batch))))
        setting["nfe"] = bu.count_nfe(agent, one)
        agent.predict(batch, deterministic=True)
    for repeat in range(args.repeats):
        for kind, key in bu.rotated(items, repeat * 7):  # 7: a stride co-prime with most item counts
            if kind == "floor":
                f1, fN = floors[key]
                f1()
                # a forward is ~NFE times shorter than a predict: time more of them per block
                samples[(kind, key)]["b1"].append(bu.seconds_per_call(f1, FLOOR_CALLS_FACTOR * args.calls))
                samples[(kind, key)]["bN"].append(bu.seconds_per_call(fN, FLOOR_CALLS_FACTOR * args.batch_calls))
                continue
            setting = settings[key]
            agent = agents[setting["agent"]]
            act_as(agent, setting, samplers[setting["agent"]])
            agent.predict(one, deterministic=True)
            samples[(kind, key)]["b1"].append(
                bu.seconds_per_call(lambda a=agent: a.predict(one, deterministic=True), args.calls)
            )
            samples[(kind, key)]["bN"].append(
                bu.seconds_per_call(lambda a=agent: a.predict(batch, deterministic=True), args.batch_calls)
            )
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    for name, agent in agents.items():
        agent.sampler, agent.one_step_acting = samplers[name], one_step_acting[name]
    return samples


def floor_key(setting: dict[str, Any]) -> str:
    """The acting network a setting's floor is one forward of: ``flow``, ``flow one-step``..."""
    return setting["agent"] + (" one-step" if setting["one_step"] else "")


def summarise(args, agents, settings, samples) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = []
    n_batch = args.batch_size
    for index, setting in enumerate(settings):
        b1 = samples[("setting", index)]["b1"]
        bN = samples[("setting", index)]["bN"]
        f1 = samples[("floor", floor_key(setting))]["b1"]
        fN = samples[("floor", floor_key(setting))]["bN"]
        nfe = setting["nfe"]
        rows.append(
            {
                **setting,
                "latency_ms": 1e3 * bu.median(b1),
                "floor_ms": 1e3 * nfe * bu.median(f1),
                "ratio_to_floor": bu.median([p / (nfe * f) for p, f in zip(b1, f1)]),
                "throughput_per_s": bu.median([n_batch / t for t in bN]),
                "batch_ratio_to_floor": bu.median([p / (nfe * f) for p, f in zip(bN, fN)]),
                "latency_samples_s": b1,
                "batch_samples_s": bN,
            }
        )
    floors = {
        key: {
            "forward_b1_ms": 1e3 * bu.median(samples[("floor", key)]["b1"]),
            f"forward_b{n_batch}_ms": 1e3 * bu.median(samples[("floor", key)]["bN"]),
        }
        for kind, key in samples
        if kind == "floor"
    }
    comparison = {}
    defaults = {row["agent"]: i for i, row in enumerate(settings) if row["default"]}
    if "flow" in defaults and "diffusion" in defaults:
        flow, diff = samples[("setting", defaults["flow"])], samples[("setting", defaults["diffusion"])]
        comparison = {
            "diffusion_over_flow_latency": bu.median([d / f for d, f in zip(diff["b1"], flow["b1"])]),
            "diffusion_over_flow_batch_time": bu.median([d / f for d, f in zip(diff["bN"], flow["bN"])]),
        }
    return rows, {"floors": floors, "defaults": comparison}


def add_scores(args, agents, rows, buffer_metadata) -> None:
    from qipo_agents.zoo.envs import make_env

    models = {"flow": args.flow_model, "diffusion": args.diffusion_model}
    for name, agent in agents.items():
        if not models[name]:
            continue
        metadata = agent.dataset_metadata or buffer_metadata
        env_id = bu.env_id_of(metadata, args.env)
        reference = reference_scores({**metadata, "env_id": env_id})
        env = make_env(env_id)
        original, one_step_acting = agent.sampler, agent.one_step_acting
        for row in rows:
            if row["agent"] != name:
                continue
            act_as(agent, row, original)
            start = time.perf_counter()
            result = evaluate(agent, env, args.episodes, deterministic=False, seed=0, reference=reference)
            row.update(
                score=result.normalized_mean,
                score_std=result.normalized_std,
                mean_return=result.mean_return,
                eval_s=time.perf_counter() - start,
            )
            print(f"{name} {row['solver']} x{row['steps']}: {result}", flush=True)
        agent.sampler, agent.one_step_acting = original, one_step_acting
        env.close()


def print_report(args, rows, extra) -> None:
    n = args.batch_size
    headers = [
        "agent",
        "solver",
        "steps",
        "NFE",
        "latency b=1 [ms]",
        "floor NFE x fwd [ms]",
        "predict / floor",
        f"throughput b={n} [actions/s]",
        f"b={n} predict / floor",
        "normalised score",
    ]
    table = []
    for row in rows:
        score = row.get("score")
        table.append(
            [
                row["agent"],
                row["solver"] + (" (default)" if row["default"] else ""),
                row["steps"],
                row["nfe"],
                bu.fmt_sig(row["latency_ms"]),
                bu.fmt_sig(row["floor_ms"]),
                bu.fmt(row["ratio_to_floor"], 2),
                bu.fmt_sig(row["throughput_per_s"]),
                bu.fmt(row["batch_ratio_to_floor"], 2),
                "" if score is None else f"{score:.1f} ± {row['score_std']:.1f}",
            ]
        )
    print("\n## predict() cost against solver settings\n")
    print(bu.markdown_table(headers, table))
    floors = ", ".join(
        f"{name}: {f['forward_b1_ms']:.3f} ms (b=1), {f[f'forward_b{n}_ms']:.3f} ms (b={n})"
        for name, f in extra["floors"].items()
    )
    print(f"\nOne forward of the acting network (median): {floors}.")
    comparison = extra["defaults"]
    if comparison:
        print(
            "QIPODiffusion / QIPOFlow at their defaults: "
            f"{comparison['diffusion_over_flow_latency']:.2f}x the latency at batch 1, "
            f"{comparison['diffusion_over_flow_batch_time']:.2f}x the time at batch {n}."
        )
    print(
        f"\nNotes: medians over {args.repeats} interleaved repeats; each batch-1 value averages {args.calls} calls, "
        f"each batch-{n} value {args.batch_calls} calls (floors: {FLOOR_CALLS_FACTOR}x as many forwards); predict(deterministic=True) on dataset observations; CPU, "
        f"{torch.get_num_threads()} torch thread(s). 'predict / floor' = predict time / (NFE x one forward of "
        "the acting network (actor_ema, or the one-step policy) at the same batch, torch.inference_mode), ratio taken within each repeat."
        + (
            f" Scores: {args.episodes} episodes per setting, D4RL-normalised, mean ± std over episodes."
            if any(r.get("score") is not None for r in rows)
            else " No trained models given: score column empty (randomly initialised agents)."
        )
    )


def plot(rows, path: str) -> None:
    plt = bu.pyplot()
    has_scores = any(r.get("score") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_scores else 1, figsize=(11 if has_scores else 6, 4), squeeze=False)
    ax = axes[0][0]
    for agent, solver in sorted({(r["agent"], r["solver"]) for r in rows}):
        mine = sorted((r for r in rows if (r["agent"], r["solver"]) == (agent, solver)), key=lambda r: r["nfe"])
        ax.plot([r["nfe"] for r in mine], [r["latency_ms"] for r in mine], marker="o", label=f"{agent} {solver}")
        if has_scores:
            axes[0][1].plot(
                [r["nfe"] for r in mine], [r.get("score") for r in mine], marker="o", label=f"{agent} {solver}"
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations (NFE)")
    ax.set_ylabel("predict latency, batch 1 [ms]")
    ax.legend(fontsize=7)
    if has_scores:
        axes[0][1].set_xscale("log")
        axes[0][1].set_xlabel("network evaluations (NFE)")
        axes[0][1].set_ylabel("D4RL-normalised score")
    bu.save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bu.set_threads(args.threads)
    buffer = bu.load_buffer(args.dataset, args.max_transitions)
    agents = build_agents(args, buffer)
    settings = settings_of(args, agents)
    rng = np.random.default_rng(0)
    observations = buffer.observations[rng.choice(len(buffer), size=max(args.batch_size, 1), replace=True)]
    samples = measure(args, agents, settings, observations)
    rows, extra = summarise(args, agents, settings, samples)
    add_scores(args, agents, rows, buffer.metadata)
    print_report(args, rows, extra)
    payload = {
        "benchmark": "sampling",
        "environment": bu.environment_info(),
        "settings": {
            "agents": {
                name: {
                    "model": {"flow": args.flow_model, "diffusion": args.diffusion_model}[name],
                    "hyperparameters": {
                        **agent.config.model_dump(mode="json"),
                        **{name: getattr(agent, name) for name in agent.run_settings},
                        "schedule": agent.schedule.to_dict() if agent.schedule is not None else None,
                    },
                }
                for name, agent in agents.items()
            },
            "datasets": buffer.metadata["dataset_ids"],
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "calls": args.calls,
            "batch_calls": args.batch_calls,
            "episodes": args.episodes,
        },
        "rows": rows,
        **extra,
    }
    if args.out:
        bu.write_json(args.out, payload)
    if args.plot:
        plot(rows, args.plot)
    return payload


if __name__ == "__main__":
    main()
