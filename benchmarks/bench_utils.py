"""Helpers shared by the benchmark scripts: datasets, QIPO configs, timing, Markdown tables, JSON.

The scripts import this module by name, so run them as files (``python benchmarks/quality.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qipo_agents.common.device import cpu_description
from qipo_agents.data import OfflineBuffer, make_buffer

DEFAULT_DATASET = "local/hopper/medium-v0"
DEFAULT_QIPO_CONFIG = str(Path(__file__).with_name("qipo_cpu.yml"))
AGENT_NAMES = ("flow", "diffusion")


# ---------------------------------------------------------------------------------------------- setup
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` only for options whose default is a value (not None / False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def set_threads(n_threads: int | None) -> None:
    """Pin torch's intra-op threads (None: leave torch's default, i.e. ``OMP_NUM_THREADS``)."""
    if n_threads:
        torch.set_num_threads(n_threads)


def agent_classes() -> dict[str, type]:
    from qipo_agents import QIPODiffusion, QIPOFlow

    return {"flow": QIPOFlow, "diffusion": QIPODiffusion}


def load_buffer(dataset_ids: Sequence[str], max_transitions: int | None = None) -> OfflineBuffer:
    """The datasets concatenated (D4RL's medium-expert recipe), optionally cut to whole episodes.

    Args:
        dataset_ids: Minari ids (with ``MINARI_DATASETS_PATH`` set for the local ones) or paths.
        max_transitions: keep the first episodes of each dataset, just enough to reach this
            many transitions in total (None: everything). For smoke runs only.
    """
    ids = list(dataset_ids)
    if not max_transitions:
        return make_buffer(ids if len(ids) > 1 else ids[0], download=False)
    per_dataset = max(1, max_transitions // len(ids))
    return OfflineBuffer.concatenate([first_episodes(make_buffer(i, download=False), per_dataset) for i in ids])


def first_episodes(buffer: OfflineBuffer, n_transitions: int) -> OfflineBuffer:
    """The leading whole episodes of ``buffer`` holding at least ``n_transitions`` transitions."""
    if n_transitions >= len(buffer):
        return buffer
    ids = buffer.episode_ids
    boundaries = np.flatnonzero(ids[1:] != ids[:-1]) + 1  # first row of every episode but the first
    later = boundaries[boundaries >= n_transitions]
    end = int(later[0]) if len(later) else len(buffer)
    names = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations", "episode_ids")
    return buffer.replace(**{name: getattr(buffer, name)[:end] for name in names})


def env_id_of(buffer_metadata: dict[str, Any], override: str | None) -> str:
    env_id = override or buffer_metadata.get("env_id")
    if not env_id:
        raise SystemExit("the dataset records no environment: pass --env ENV_ID (e.g. Hopper-v5)")
    return env_id


# ---------------------------------------------------------------------------------------------- QIPO configs
def load_qipo_config(spec: str) -> dict[str, dict[str, Any]]:
    """Constructor kwargs of each agent, ``{"flow": {...}, "diffusion": {...}}``.

    ``spec`` is a YAML/JSON file with top-level ``flow:`` and ``diffusion:`` mappings of
    ``QIPOConfig`` fields (the agents' keyword arguments), or ``zoo:TASK[:PROFILE]`` to take the ``hyperparams`` the
    packaged zoo resolves for that task and profile (default profile ``cpu``). Keys and values are
    validated like a zoo config (unknown keys and ``3e-4``-as-a-string are errors).
    """
    from qipo_agents.zoo.config import ConfigLocation, check_hyperparams, load_task

    if spec.startswith("zoo:"):
        task, _, profile = spec[len("zoo:") :].partition(":")
        return {algo: dict(load_task(task, algo, profile or "cpu").hyperparams) for algo in AGENT_NAMES}
    path = Path(spec)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        raw = json.loads(text)
    else:
        import yaml

        raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise SystemExit(f"{spec}: expected a mapping with `flow:` and `diffusion:` blocks")
    unknown = set(raw) - {*AGENT_NAMES, "description"}
    if unknown:
        raise SystemExit(f"{spec}: unknown top-level keys {sorted(unknown)} (allowed: flow, diffusion, description)")
    return {algo: check_hyperparams(raw.get(algo) or {}, algo, ConfigLocation(spec, algo)) for algo in AGENT_NAMES}


def scale_to_budget(kwargs: dict[str, Any], steps: int, scale_renewals: bool = True) -> dict[str, Any]:
    """QIPO kwargs for a ``learn(total_timesteps=steps)`` run.

    ``learn`` itself splits ``steps`` over the phases in the configured proportions and scales
    ``renew_interval`` with the refinement phase, so the refinement renews its support set as many
    times as in the profile (each renewal raises the effective guidance scale: it is what QIPO
    iterates). With ``scale_renewals`` the kwargs are therefore returned unchanged. Without it,
    ``renew_interval`` is divided by the budget's factor, so that after ``learn``'s scaling the
    interval is the one written in the profile (up to rounding).
    """
    from qipo_agents.qipo.algorithm import QIPO

    kwargs = dict(kwargs)
    if scale_renewals:
        return kwargs
    defaults = {name: field.default for name, field in QIPO.config_class.model_fields.items()}

    def get(name: str) -> int:
        return int(kwargs.get(name, defaults.get(name)))

    total = get("behavior_steps") + get("critic_steps") + get("policy_steps")
    if total > 0 and steps > 0:
        kwargs["renew_interval"] = max(1, round(get("renew_interval") * total / steps))
    return kwargs


# ---------------------------------------------------------------------------------------------- timing
def seconds_per_call(fn: Callable[[], Any], n_calls: int) -> float:
    """Wall-clock seconds per call of ``fn`` over ``n_calls`` back-to-back calls (CUDA work
    included: the clock stops once the device has finished what the calls queued)."""
    synchronize = torch.cuda.synchronize if torch.cuda.is_initialized() else lambda: None
    synchronize()
    start = time.perf_counter()
    for _ in range(n_calls):
        fn()
    synchronize()
    return (time.perf_counter() - start) / n_calls


def count_nfe(agent, observation: np.ndarray) -> int:
    """Network evaluations of one ``predict`` call, counted on the acting networks: the field
    network ``actor_ema`` and, for a distilled agent, the one-step policy."""
    calls = []
    networks = [network for network in (agent.policy.actor_ema, agent.policy.one_step) if network is not None]
    handles = [network.register_forward_hook(lambda *_: calls.append(1)) for network in networks]
    try:
        agent.predict(observation, deterministic=True)
    finally:
        for handle in handles:
            handle.remove()
    return len(calls)


def forward_fn(agent, batch: int) -> Callable[[], None]:
    """One forward, under inference mode, of the network ``agent`` acts with (the one-step policy
    when :attr:`~qipo_agents.QIPO.acts_in_one_step`, else ``actor_ema``) on ``batch`` normalised
    observations; the network is chosen when this is called."""
    obs = agent.observation_normalizer.transform(np.zeros((batch, agent.observation_space.shape[0]), np.float32))
    obs = torch.as_tensor(obs, dtype=torch.float32)
    noise = torch.randn(batch, agent.action_space.shape[0])
    if agent.acts_in_one_step:
        one_step = agent.policy.one_step

        def run_one_step():
            with torch.inference_mode():
                one_step(obs, noise)

        return run_one_step
    network = agent.policy.actor_ema
    t = torch.full((batch,), 0.5)
    guidance = None if network.guidance_max is None else torch.full((batch,), float(agent.beta))

    def run():
        with torch.inference_mode():
            network(noise, t, condition=obs, guidance=guidance)

    return run


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """``items`` rotated left by ``shift``: each repeat starts with a different item, so slow
    drifts of the machine's load do not always hit the same method."""
    items = list(items)
    if not items:
        return items
    shift %= len(items)
    return items[shift:] + items[:shift]


def median(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------- output
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])])


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def fmt_sig(value: float | None, significant: int = 3) -> str:
    """A positive number with ``significant`` digits, without scientific notation for usual ranges."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value == 0:
        return "0"
    digits = max(0, significant - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{digits}f}"


def environment_info() -> dict[str, Any]:
    """Versions and machine facts saved with every result file."""
    import gymnasium

    info: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # seeded runs repeat exactly only where both match: kernels round differently per CPU
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        # whether a local store was used, not where it lies on the machine that ran it
        "MINARI_DATASETS_PATH": "set" if os.environ.get("MINARI_DATASETS_PATH") else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        from qipo_agents import __version__

        info["qipo_agents"] = __version__
    except ImportError:
        pass
    try:
        import d3rlpy

        info["d3rlpy"] = d3rlpy.__version__
    except Exception:  # not installed (benchmarks/setup.sh) or broken: recorded as absent
        info["d3rlpy"] = None
    return info


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, default=_json_default)
    # paths inside the working folder are written relative to it, so the file reads the same anywhere
    text = text.replace(json.dumps(str(Path.cwd()) + os.sep)[1:-1], "")
    path.write_text(text + "\n")
    print(f"\nresults written to {path}")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")
