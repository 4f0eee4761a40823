"""Where the critic's promise sits, state by state: the extraction guard's check on saved agents.

``extraction_trust_limit`` falls back to the plain copy when the critic's promise, the mean over
2 048 dataset states of the Q gain at the extraction objective's per-state optimum (in units of
mean ``|Q|``), exceeds the limit. For each saved agent (a run's final model: its critic and teacher
are the ones its check saw, so the mean repeats the run's promise) on the datasets it trained on,
this prints that mean beside the distribution it averages: the median, the share of the positive
gain held by the top 10 % of states, the mean over the median, and the share of states promising
more than 0.05. A promise carried by a few states is a critic that extrapolates there; one spread
over most states is a dataset with room to improve::

    MINARI_DATASETS_PATH=~/qipo-datasets python benchmarks/guard_check.py \\
        --agents logs/flow/local-walker2d-medium-replay_1/local-walker2d-medium-replay.zip --out guard.json
"""

from __future__ import annotations

import argparse
from typing import Any

import bench_utils as bu
import numpy as np
import torch

from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.qipo.distillation import promise_concentration, trust_check_gains


def distribution(gains: torch.Tensor) -> dict[str, float]:
    """Summary of per-state gains ``(n,)``; ``mean_over_median`` is the guard's concentration."""
    values = gains.cpu().numpy()
    positive = np.sort(np.clip(values, 0.0, None))[::-1]
    return {
        "promise": float(values.mean()),
        "median": float(np.median(values)),
        "top_decile_share": float(positive[: len(positive) // 10].sum() / max(positive.sum(), 1e-12)),
        "mean_over_median": float(promise_concentration(gains)),
        "share_above_0.05": float((values > 0.05).mean()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    parser.add_argument("--agents", nargs="+", required=True, help="saved agents (.zip), each with its datasets")
    parser.add_argument("--alpha", type=float, default=None, help="extraction strength [default: the agent's]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    bu.set_threads(args.threads)
    results, rows = [], []
    for path in args.agents:
        agent = QIPO.load(path, device="cpu")
        agent.set_dataset(list(agent.dataset_metadata["dataset_ids"]))
        alpha = args.alpha or agent.extraction_alpha
        if alpha is None:
            raise SystemExit(f"{path} has no extraction_alpha: pass --alpha")
        gains = trust_check_gains(
            agent.policy, agent.data, agent.sampler, agent.beta, alpha, agent.action_low, agent.action_high
        )
        summary = distribution(gains)
        results.append({"agent": path, "datasets": agent.dataset_metadata["dataset_ids"], "alpha": alpha, **summary})
        rows.append([path, *(bu.fmt(value, 4) for value in summary.values())])
    print(
        bu.markdown_table(
            ["agent", "promise (mean)", "median", "top 10 % share", "mean / median", "share > 0.05"], rows
        )
    )
    payload = {"benchmark": "guard_check", "environment": bu.environment_info(), "args": vars(args), "results": results}
    if args.out:
        bu.write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
