"""Policy quality: QIPOFlow and QIPODiffusion against d3rlpy's IQL, TD3+BC and BC, one run, same data.

Every method trains on the same aligned :class:`~qipo_agents.data.OfflineBuffer` for the same number
of gradient steps (``--steps``) and seeds (``--seeds``), then is evaluated with the package's own
``evaluate()`` (final evaluation, ``--episodes`` episodes) in the dataset's environment: QIPO agents
sample one action per step (the paper's and QGPO's protocol), the d3rlpy policies act with their
greedy action (the Gaussian mean for IQL), as d3rlpy evaluates them, or with actions sampled from
their stochastic actor (``--baseline-actions sampled``; IQL's only, TD3+BC and BC are
deterministic). ``--load-dir`` evaluates the agents an earlier run saved with ``--save-dir``
instead of training them again (e.g. to score the same IQL models with sampled actions). The table reports the
D4RL-normalised score (mean ± std over seeds of each seed's mean), the training wall-clock and
gradient steps per second (medians over seeds).

Runs are interleaved: the outer loop is the seed, the inner loop the methods, rotated by one per
seed, so a change of machine load is shared out between methods instead of hitting one.

QIPO uses the hyperparameters of ``--qipo-config`` (``flow:`` / ``diffusion:`` constructor kwargs;
default: the zoo's CPU profile in ``benchmarks/qipo_cpu.yml``); ``learn(total_timesteps=steps)``
splits the budget across the three phases in the profile's proportions and scales ``renew_interval``
by the same factor (``--no-scale-renewals`` keeps the interval as written). The d3rlpy baselines (install
them with ``benchmarks/setup.sh``) use d3rlpy's defaults and the settings of its D4RL reproduction
scripts (see the notes printed under the table).

Example::

    MINARI_DATASETS_PATH=~/qipo-datasets python benchmarks/quality.py --steps 60000 --seeds 0 1 2 \\
        --out results/quality_medium.json --plot results/quality_medium.png

On a multi-core machine, seeds can run as parallel single-thread processes (``--threads 1 --seeds 0``,
``--seeds 1``, ... each with its own ``--out``) and be put into one table afterwards with
``--merge results/seed0.json results/seed1.json ...`` (the files must share dataset, budget,
episodes and QIPO settings).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import bench_utils as bu
import numpy as np

from qipo_agents.common.evaluation import evaluate, reference_scores
from qipo_agents.data import OfflineBuffer

METHODS = ("qipo_flow", "qipo_diffusion", "iql", "td3bc", "bc")
LABELS = {
    "qipo_flow": "QIPOFlow (QIPO-OT)",
    "qipo_diffusion": "QIPODiffusion (QIPO-Diff)",
    "iql": "IQL (d3rlpy)",
    "td3bc": "TD3+BC (d3rlpy)",
    "bc": "BC (d3rlpy)",
}
STOCHASTIC_BASELINES = ("iql",)  # d3rlpy methods whose sample_action differs from predict
BASELINE_NOTES = {
    "iql": "d3rlpy IQLConfig defaults (actor/critic lr 3e-4, batch 256, expectile 0.7, weight_temp 3.0, "
    "max_weight 100, gamma 0.99, tau 0.005, 2 critics) plus its D4RL reproduction script: "
    "ReturnBasedRewardScaler(multiplier=1000) and a cosine actor learning-rate schedule over the budget (T_max = --steps)",
    "td3bc": "d3rlpy TD3PlusBCConfig defaults (alpha 2.5, actor/critic lr 3e-4, batch 256, target smoothing "
    "sigma 0.2 / clip 0.5, actor update every 2 steps) with StandardObservationScaler as in its reproduction script "
    "(mean/std of the dataset's observations)",
    "bc": "d3rlpy BCConfig defaults (deterministic policy, lr 1e-3, batch 100)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=bu.HelpFormatter,
        epilog="Set MINARI_DATASETS_PATH to the folder scripts/make_local_datasets.py wrote, for the local datasets.",
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=[bu.DEFAULT_DATASET],
        help="Minari dataset id(s) or path(s); several are concatenated (medium + expert = medium-expert)",
    )
    parser.add_argument("--env", default=None, help="evaluation env id (default: the dataset's, e.g. Hopper-v5)")
    parser.add_argument(
        "--methods", nargs="+", default=None, choices=METHODS, help="methods to compare (default: all five)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="gradient steps per method and seed (default: 60000, the CPU profile)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: 0 1 2)")
    parser.add_argument(
        "--episodes", type=int, default=None, help="final evaluation episodes per seed (default: 10, as D4RL)"
    )
    parser.add_argument(
        "--qipo-config",
        default=bu.DEFAULT_QIPO_CONFIG,
        help="YAML/JSON with `flow:` and `diffusion:` QIPO kwargs, or zoo:TASK[:PROFILE]",
    )
    parser.add_argument(
        "--no-scale-renewals",
        action="store_true",
        help="keep the profile's renew_interval instead of scaling it with the budget",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    parser.add_argument(
        "--max-transitions", type=int, default=None, help="train on the first whole episodes only (smoke runs)"
    )
    parser.add_argument(
        "--baseline-actions",
        choices=("greedy", "sampled"),
        default="greedy",
        help="how the d3rlpy policies act: greedy (d3rlpy's protocol; IQL's Gaussian mean) or sampled from "
        "the stochastic actor (IQL; TD3+BC and BC are deterministic either way)",
    )
    parser.add_argument("--save-dir", default=None, help="save every trained agent here (QIPO .zip, d3rlpy .d3)")
    parser.add_argument(
        "--load-dir",
        default=None,
        help="evaluate the agents an earlier run saved with --save-dir instead of training (timing columns stay empty)",
    )
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--plot", default=None, help="write a PNG bar chart here")
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="build the table from --out files of earlier runs (e.g. seeds split across processes) instead of "
        "training; with --methods, only those methods' runs",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 300 steps, seed 0, 1 episode, 5000 transitions, QIPO flow + IQL unless --methods is given",
    )
    args = parser.parse_args(argv)
    # --quick only changes what was not given explicitly
    quick = {"steps": 300, "seeds": [0], "episodes": 1, "methods": ["qipo_flow", "iql"], "max_transitions": 5_000}
    full = {"steps": 60_000, "seeds": [0, 1, 2], "episodes": 10, "methods": list(METHODS), "max_transitions": None}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ---------------------------------------------------------------------------------------------- d3rlpy
def import_d3rlpy():
    try:
        import d3rlpy
    except ImportError as error:
        raise SystemExit(
            f"d3rlpy is not installed ({error}); run `bash benchmarks/setup.sh` in the activated venv, "
            "or leave the d3rlpy methods out with --methods qipo_flow qipo_diffusion"
        ) from error
    import logging

    import structlog

    # d3rlpy logs every fit at INFO through structlog; keep the benchmark's output to the tables
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    return d3rlpy


def to_mdp_dataset(buffer: OfflineBuffer):
    """d3rlpy ``MDPDataset`` holding exactly the buffer's transitions.

    d3rlpy splits the rows into episodes at every ``terminals`` or ``timeouts`` flag and stores an
    episode of ``T`` rows as ``T`` observations: the next observation of row ``t`` is row ``t + 1``.
    A terminated episode keeps all ``T`` transitions (the last one's next observation is zeros and
    is never bootstrapped from); a timed-out one keeps only ``T - 1``, since its last next
    observation is unknown. Our buffer knows that observation (``next_observations``), so after each
    episode that did not terminate one extra row is appended: the final next observation, with a
    zero action and zero reward, flagged as the timeout. d3rlpy then sees ``len(buffer)``
    transitions whose ``(s, a, r, s', terminal)`` are the buffer's (the padded row only ever appears
    as a next observation). Episode ends are read from ``episode_ids``, so every episode ends in a
    flag even when the source set none; ``terminals`` wins when a row is both terminated and truncated.
    """
    d3rlpy = import_d3rlpy()

    ids = buffer.episode_ids
    ends = np.flatnonzero(np.append(ids[1:] != ids[:-1], True))
    terminated_end = buffer.terminations[ends]
    pad_after = ends[~terminated_end]  # rows after which one observation is inserted
    insert_at = pad_after + 1
    observations = np.insert(buffer.observations, insert_at, buffer.next_observations[pad_after], axis=0)
    actions = np.insert(buffer.actions, insert_at, 0.0, axis=0)
    rewards = np.insert(buffer.rewards, insert_at, 0.0)
    terminals = np.zeros(len(observations), dtype=np.float32)
    timeouts = np.zeros(len(observations), dtype=np.float32)
    # a row i of the buffer moves down by the number of rows inserted before it
    term_rows = ends[terminated_end]
    terminals[term_rows + np.searchsorted(pad_after, term_rows, side="left")] = 1.0
    timeouts[insert_at + np.arange(len(insert_at))] = 1.0
    dataset = d3rlpy.dataset.MDPDataset(
        observations=observations.astype(np.float32),
        actions=actions.astype(np.float32),
        rewards=rewards.astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
        action_size=buffer.action_dim,
    )
    check_mdp_dataset(dataset, buffer, d3rlpy)
    return dataset


def check_mdp_dataset(dataset, buffer: OfflineBuffer, d3rlpy, n_checks: int = 200) -> None:
    """Fail unless d3rlpy's transitions are the buffer's: same count, and spot checks of (s, a, r, s')."""
    if dataset.transition_count != len(buffer):
        raise RuntimeError(f"d3rlpy sees {dataset.transition_count} transitions, the buffer has {len(buffer)}")
    picker = d3rlpy.dataset.BasicTransitionPicker()
    offsets = np.cumsum([0] + [e.transition_count for e in dataset.episodes])
    rng = np.random.default_rng(0)
    rows = np.unique(np.concatenate([rng.integers(0, len(buffer), n_checks), offsets[1:] - 1]))
    for row in rows:
        episode = int(np.searchsorted(offsets, row, side="right") - 1)
        t = picker(dataset.episodes[episode], int(row - offsets[episode]))
        same = (
            np.allclose(t.observation, buffer.observations[row])
            and np.allclose(t.action, buffer.actions[row])
            and np.isclose(float(np.asarray(t.reward).reshape(-1)[0]), buffer.rewards[row])
            and bool(t.terminal) == bool(buffer.terminations[row])
            and (bool(t.terminal) or np.allclose(t.next_observation, buffer.next_observations[row]))
        )
        if not same:
            raise RuntimeError(f"d3rlpy transition {row} differs from the buffer's (episode {episode})")


class D3rlpyPolicy:
    """A trained d3rlpy algorithm behind SB3's ``predict`` (what ``evaluate()`` calls).

    d3rlpy's ``algo.predict`` takes a batch ``(n, obs_dim)`` and returns its greedy actions
    ``(n, action_dim)`` (the deterministic actor, the Gaussian mean for IQL); ``algo.sample_action``
    draws from the stochastic actor instead (``sampled=True``). Actions are clipped to the action
    space as QIPO's ``predict`` clips its own.
    """

    def __init__(self, algo, observation_space, action_space, sampled: bool = False):
        self.algo, self.observation_space, self.action_space = algo, observation_space, action_space
        self.sampled = sampled

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Greedy or sampled actions as chosen at construction, whatever ``deterministic`` says."""
        obs = np.asarray(observation, dtype=np.float32)
        act = self.algo.sample_action if self.sampled else self.algo.predict
        actions = act(obs.reshape(-1, self.observation_space.shape[0]))
        actions = np.clip(actions, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        return (actions[0] if obs.ndim == 1 else actions), None


def make_d3rlpy_algo(method: str, buffer: OfflineBuffer, steps: int):
    d3rlpy = import_d3rlpy()
    if method == "iql":
        config = d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=max(1, steps))
            ),
            batch_size=256,
            weight_temp=3.0,
            max_weight=100.0,
            expectile=0.7,
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
        )
    elif method == "td3bc":
        observations = buffer.observations.astype(np.float64)
        # the same statistics d3rlpy's own fit computes, without its per-transition Python loop
        scaler = d3rlpy.preprocessing.StandardObservationScaler(mean=observations.mean(0), std=observations.std(0))
        config = d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=256,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            alpha=2.5,
            update_actor_interval=2,
            observation_scaler=scaler,
        )
    elif method == "bc":
        config = d3rlpy.algos.BCConfig()
    else:
        raise ValueError(method)
    return config.create(device="cpu:0")


# ---------------------------------------------------------------------------------------------- training
def train_qipo(method: str, buffer: OfflineBuffer, kwargs: dict[str, Any], steps: int, seed: int):
    agent_class = bu.agent_classes()[method.removeprefix("qipo_")]
    agent = agent_class("MlpPolicy", buffer, seed=seed, device="cpu", **kwargs)
    start = time.perf_counter()
    agent.learn(total_timesteps=steps, log_interval=0)
    return agent, agent, time.perf_counter() - start


def train_d3rlpy(method: str, buffer: OfflineBuffer, mdp_dataset, steps: int, seed: int, sampled: bool):
    d3rlpy = import_d3rlpy()
    d3rlpy.seed(seed)
    algo = make_d3rlpy_algo(method, buffer, steps)
    start = time.perf_counter()
    algo.fit(
        mdp_dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,  # one epoch: d3rlpy runs n_steps // n_steps_per_epoch epochs
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        show_progress=False,
        save_interval=10**9,
    )
    train_s = time.perf_counter() - start
    return algo, D3rlpyPolicy(algo, buffer.observation_space, buffer.action_space, sampled), train_s


def model_path(directory: str, method: str, seed: int) -> Path:
    """Where ``--save-dir`` puts (and ``--load-dir`` finds) one agent: ``METHOD_seedS.zip`` / ``.d3``."""
    return (Path(directory) / f"{method}_seed{seed}").with_suffix(".zip" if method.startswith("qipo_") else ".d3")


def save_model(save_dir: str, method: str, seed: int, model) -> str:
    path = model_path(save_dir, method, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if method.startswith("qipo_"):
        return str(model.save(path))
    model.save(str(path))
    return str(path)


def load_model(load_dir: str, method: str, seed: int, buffer: OfflineBuffer, sampled: bool):
    """An agent saved by an earlier run, as ``train_*`` returns it (training time unknown: ``None``)."""
    path = model_path(load_dir, method, seed)
    if not path.exists():
        raise SystemExit(f"--load-dir: no saved {method} agent for seed {seed} at {path}")
    if method.startswith("qipo_"):
        agent = bu.agent_classes()[method.removeprefix("qipo_")].load(path, device="cpu")
        return agent, agent, None
    d3rlpy = import_d3rlpy()
    d3rlpy.seed(seed)  # the sampled actions' random stream
    algo = d3rlpy.load_learnable(str(path), device="cpu:0")
    return algo, D3rlpyPolicy(algo, buffer.observation_space, buffer.action_space, sampled), None


# ---------------------------------------------------------------------------------------------- report
def summarise(runs: list[dict[str, Any]], methods: list[str], baseline_actions: str) -> list[dict[str, Any]]:
    rows = []
    reference_speed = None
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        scores = [r["normalized_score"] for r in mine if r["normalized_score"] is not None]
        returns = [r["mean_return"] for r in mine]
        speed = bu.median([r["steps_per_s"] for r in mine])
        reference_speed = reference_speed or speed
        rows.append(
            {
                "method": method,
                "label": LABELS[method]
                + (", sampled actions" if baseline_actions == "sampled" and method in STOCHASTIC_BASELINES else ""),
                "n_seeds": len(mine),
                "score_mean": float(np.mean(scores)) if scores else None,
                "score_std": float(np.std(scores)) if scores else None,
                "scores": scores,
                "return_mean": float(np.mean(returns)),
                "return_std": float(np.std(returns)),
                "train_s_median": bu.median([r["train_s"] for r in mine]),
                "steps_per_s_median": speed,
                "speed_vs_first": speed / reference_speed if reference_speed else None,
                "eval_s_median": bu.median([r["eval_s"] for r in mine]),
            }
        )
    return rows


def print_report(summary: list[dict[str, Any]], settings: dict[str, Any], environment: dict[str, Any]) -> None:
    first = summary[0]["label"] if summary else ""
    headers = [
        "method",
        "D4RL-normalised (mean ± std)",
        "per seed",
        "return",
        "train wall-clock [s]",
        "grad steps/s",
        f"speed vs {first}",
    ]
    rows = []
    for s in summary:
        score = "" if s["score_mean"] is None else f"{s['score_mean']:.1f} ± {s['score_std']:.1f}"
        rows.append(
            [
                s["label"],
                score,
                ", ".join(f"{v:.1f}" for v in s["scores"]),
                f"{s['return_mean']:.0f} ± {s['return_std']:.0f}",
                bu.fmt(s["train_s_median"]),
                bu.fmt_sig(s["steps_per_s_median"]),
                bu.fmt(s["speed_vs_first"], 2),
            ]
        )
    print(
        f"\n## Quality on {' + '.join(settings['datasets'])} ({settings['n_transitions']} transitions), "
        f"evaluated in {settings['env_id']}\n"
    )
    print(bu.markdown_table(headers, rows))
    print(
        f"\nNotes: {settings['steps']} gradient steps per method and seed; seeds {settings['seeds']}; "
        f"final evaluation only, {settings['episodes']} episodes per seed, QIPO sampling its actions, the d3rlpy policies "
        f"acting with {merge_setting(settings, 'baseline_actions')} actions, "
        "episode i of seed s reset with seed 1000 s + i "
        "(the same episodes for every method). Score: D4RL-normalised 100 (R - R_random) / (R_expert - R_random), "
        "mean ± std over seeds of each seed's mean; wall-clock and steps/s: medians over seeds, training only "
        "(QIPO includes its support sampling), CPU, "
        f"{environment['torch_threads']} torch thread(s) per process. One gradient step is one update call of the "
        "method: QIPO updates one network of its current phase; IQL updates V, Q and the actor; TD3+BC the critics "
        "(and the actor every 2nd step); BC the policy."
    )
    for method in settings["methods"]:
        if method in BASELINE_NOTES:
            print(f"- {LABELS[method]}: {BASELINE_NOTES[method]}.")
        elif method in settings["qipo_kwargs_as_run"]:
            print(f"- {LABELS[method]}: {settings['qipo_config']}, as run: {settings['qipo_kwargs_as_run'][method]}.")


def plot(summary: list[dict[str, Any]], path: str, title: str) -> None:
    plt = bu.pyplot()
    fig, (ax_score, ax_speed) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [s["label"] for s in summary]
    x = np.arange(len(summary))
    means = [s["score_mean"] or 0.0 for s in summary]
    stds = [s["score_std"] or 0.0 for s in summary]
    ax_score.bar(x, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.7)
    for i, s in enumerate(summary):
        ax_score.scatter(np.full(len(s["scores"]), i), s["scores"], color="black", s=12, zorder=3)
    ax_score.set_xticks(x, labels, rotation=20, ha="right")
    ax_score.set_ylabel("D4RL-normalised score")
    ax_score.set_title(title)
    ax_speed.bar(x, [s["steps_per_s_median"] for s in summary], color="tab:orange", alpha=0.7)
    ax_speed.set_xticks(x, labels, rotation=20, ha="right")
    ax_speed.set_ylabel("gradient steps / s (median)")
    ax_speed.set_yscale("log")
    bu.save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.plot, args.methods)
    bu.set_threads(args.threads)
    buffer = bu.load_buffer(args.dataset, args.max_transitions)
    env_id = bu.env_id_of(buffer.metadata, args.env)
    reference = reference_scores({**buffer.metadata, "env_id": env_id})
    if reference is None:
        print(f"warning: no reference scores for {env_id}: normalised scores are left empty")

    qipo_methods = [m for m in args.methods if m.startswith("qipo_")]
    qipo_kwargs: dict[str, dict[str, Any]] = {}
    if qipo_methods and args.load_dir is None:  # loaded agents carry their own hyperparameters
        config = bu.load_qipo_config(args.qipo_config)
        for method in qipo_methods:
            algo = method.removeprefix("qipo_")
            qipo_kwargs[method] = bu.scale_to_budget(config[algo], args.steps, not args.no_scale_renewals)
    mdp_dataset = None
    if args.load_dir is None and any(not m.startswith("qipo_") for m in args.methods):
        start = time.perf_counter()
        mdp_dataset = to_mdp_dataset(buffer)
        print(f"d3rlpy dataset built and checked against the buffer in {time.perf_counter() - start:.1f} s")

    from qipo_agents.zoo.envs import make_env

    env = make_env(env_id)
    runs: list[dict[str, Any]] = []
    sampled = args.baseline_actions == "sampled"
    for seed_index, seed in enumerate(args.seeds):
        for method in bu.rotated(args.methods, seed_index):
            if args.load_dir is not None:
                model, policy, train_s = load_model(args.load_dir, method, seed, buffer, sampled)
            elif method.startswith("qipo_"):
                model, policy, train_s = train_qipo(method, buffer, qipo_kwargs[method], args.steps, seed)
            else:
                model, policy, train_s = train_d3rlpy(method, buffer, mdp_dataset, args.steps, seed, sampled)
            start = time.perf_counter()
            result = evaluate(policy, env, args.episodes, deterministic=False, seed=1000 * seed, reference=reference)
            eval_s = time.perf_counter() - start
            run = {
                "method": method,
                "seed": seed,
                "steps": args.steps,
                "train_s": train_s,
                "steps_per_s": args.steps / train_s if train_s else None,
                "eval_s": eval_s,
                "normalized_score": result.normalized_mean,
                "normalized_std_over_episodes": result.normalized_std,
                "mean_return": result.mean_return,
                "returns": result.returns,
                "lengths": result.lengths,
            }
            if args.save_dir:
                run["saved_to"] = save_model(args.save_dir, method, seed, model)
            runs.append(run)
            score = "" if result.normalized_mean is None else f", normalised {result.normalized_mean:.1f}"
            trained = "loaded" if train_s is None else f"{train_s:.1f} s training ({run['steps_per_s']:.0f} steps/s)"
            print(
                f"[seed {seed}] {LABELS[method]}: {trained}, "
                f"return {result.mean_return:.0f}{score}, evaluation {eval_s:.1f} s",
                flush=True,
            )
    env.close()

    settings = {
        "datasets": buffer.metadata["dataset_ids"],
        "n_transitions": len(buffer),
        "env_id": env_id,
        "reference_scores": reference,
        "steps": args.steps,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "methods": args.methods,
        "qipo_config": args.qipo_config,
        "qipo_kwargs_as_run": qipo_kwargs,
        "scale_renewals": not args.no_scale_renewals,
        "baseline_actions": args.baseline_actions,
        "loaded_from": args.load_dir,
        "baseline_notes": {m: BASELINE_NOTES[m] for m in args.methods if m in BASELINE_NOTES},
    }
    return report(settings, runs, bu.environment_info(), args.out, args.plot)


def report(
    settings: dict[str, Any],
    runs: list[dict[str, Any]],
    environment: dict[str, Any],
    out: str | None,
    plot_path: str | None,
) -> dict[str, Any]:
    """Summarise ``runs``, print the table, write the JSON and the plot."""
    summary = summarise(runs, settings["methods"], merge_setting(settings, "baseline_actions"))
    print_report(summary, settings, environment)
    payload = {
        "benchmark": "quality",
        "environment": environment,
        "settings": settings,
        "summary": summary,
        "runs": runs,
    }
    if out:
        bu.write_json(out, payload)
    if plot_path and summary:
        plot(summary, plot_path, f"{' + '.join(settings['datasets'])}, {settings['steps']} steps")
    return payload


# Settings that must agree between the JSON files of one table (seeds and methods may differ: that
# is the point; a QIPO method's hyperparameters must agree wherever it appears).
MERGE_KEYS = ("datasets", "n_transitions", "env_id", "steps", "episodes", "scale_renewals", "baseline_actions")


def merge_setting(settings: dict[str, Any], key: str) -> Any:
    """A setting of a result file; files written before ``--baseline-actions`` existed acted greedily."""
    return settings.get(key, "greedy" if key == "baseline_actions" else None)


def merge(paths: list[str], out: str | None, plot_path: str | None, wanted: list[str]) -> dict[str, Any]:
    """One table from several ``--out`` files of this script, e.g. seeds run as parallel processes.

    Only the runs of the ``wanted`` methods are taken, so a method re-run with new settings can replace its
    runs in an earlier merged table (``--merge old.json --methods iql bc``, then merge that file
    with the new runs).
    """
    payloads = [json.loads(Path(path).read_text()) for path in paths]
    first = payloads[0]["settings"]
    for path, payload in zip(paths[1:], payloads[1:]):
        for key in MERGE_KEYS:
            if merge_setting(payload["settings"], key) != merge_setting(first, key):
                raise SystemExit(f"cannot merge {path} with {paths[0]}: their `{key}` settings differ")
    qipo_kwargs: dict[str, Any] = {}
    for path, payload in zip(paths, payloads):
        for method, kwargs in payload["settings"]["qipo_kwargs_as_run"].items():
            if method in wanted and qipo_kwargs.setdefault(method, kwargs) != kwargs:
                raise SystemExit(f"cannot merge {path}: its {method} hyperparameters differ from an earlier file's")
    runs = [run for payload in payloads for run in payload["runs"] if run["method"] in wanted]
    seen = set()
    for run in runs:
        if (run["method"], run["seed"]) in seen:
            raise SystemExit(f"{run['method']} seed {run['seed']} appears in more than one file")
        seen.add((run["method"], run["seed"]))
    methods = [m for m in METHODS if any(r["method"] == m for r in runs)]
    if not methods:
        raise SystemExit(f"no runs of {', '.join(wanted)} in {', '.join(paths)}")
    seeds = sorted({run["seed"] for run in runs})
    settings = {**first, "methods": methods, "seeds": seeds, "qipo_kwargs_as_run": qipo_kwargs, "merged_from": paths}
    settings["baseline_actions"] = merge_setting(first, "baseline_actions")
    settings["baseline_notes"] = {m: BASELINE_NOTES[m] for m in methods if m in BASELINE_NOTES}
    environment = {**payloads[0]["environment"], "processes": len(paths)}
    return report(settings, runs, environment, out, plot_path)


if __name__ == "__main__":
    main()
