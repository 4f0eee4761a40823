"""The acting policy as one self-contained network, for deployment outside Python.

:class:`ActingPolicy` is what ``predict`` computes, as a ``torch.nn.Module``: the observation
normalisation, the solver unrolled at its fixed number of steps over the acting network
(``actor_ema``) or, for an agent that acts with its distilled one-step policy, that one network,
and the clipping to the action bounds. Its inputs are ``observation``
``(batch, obs_dim)`` in the environment's units and ``noise`` ``(batch, action_dim)``, the
solver's starting sample before the agent's ``acting_temperature`` scales it (standard normal
for a sampled action, as ``predict`` draws it; zeros for ``predict(obs, deterministic=True)``);
its output is ``action`` ``(batch, action_dim)``.
:func:`export_policy` writes it as ONNX (run with onnxruntime) or TorchScript (``torch.jit.load``),
as d3rlpy's ``save_policy`` does for its algorithms.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from qipo_agents.common.atomic import atomic_write, check_writable
from qipo_agents.errors import QIPOError

if TYPE_CHECKING:
    from qipo_agents.qipo.algorithm import QIPO

FORMATS = ("onnx", "torchscript")


class ExportError(QIPOError, ValueError):
    """The agent or the request cannot be exported (format, path, or an acting rule with no fixed graph)."""


class ActingPolicy(nn.Module):
    """``action = clip(solve(actor_ema, normalise(observation), temperature * noise))``, on the CPU
    in float32; ``clip(one_step(normalise(observation), temperature * noise))`` for an agent that acts in one step
    (:attr:`~qipo_agents.QIPO.acts_in_one_step`).

    Args:
        agent: a trained :class:`~qipo_agents.QIPO` agent acting with one sample per step
            (``best_of_n == 1``): a best-of-N agent ranks candidates with its critic, which an
            exported policy would have to carry; set ``agent.best_of_n = 1`` to export the
            policy it samples from. Its deterministic action must be the zero-noise one
            (``deterministic_action="zero_noise"``), which the file gives for zero noise.
    """

    def __init__(self, agent: QIPO):
        super().__init__()
        if agent.best_of_n != 1:
            raise ExportError(
                f"the agent acts with the best of {agent.best_of_n} sampled actions by its critic; only "
                "single-sample policies export (set agent.best_of_n = 1 to export the policy it samples from)"
            )
        if agent.deterministic_action != "zero_noise":
            raise ExportError(
                f"the agent's deterministic action is the mean of {agent.mean_action_samples} sampled actions, "
                "which the exported graph (one noise in, one action out) does not compute: average its outputs "
                "over that many noises, or set agent.deterministic_action = 'zero_noise' to export"
            )
        acting = agent.policy.one_step if agent.acts_in_one_step else agent.policy.actor_ema
        self.one_step = agent.acts_in_one_step
        self.actor = copy.deepcopy(acting).cpu().eval().requires_grad_(False)
        self.path, self.n_steps, self.solver = agent.sampler.path, agent.sampler.n_steps, agent.sampler.solver
        self.path.check_solver(self.solver, self.n_steps)
        normalizer = agent.observation_normalizer
        obs_dim = agent.observation_space.shape[0]
        mean = torch.zeros(obs_dim) if normalizer.is_identity else torch.as_tensor(normalizer.mean, dtype=torch.float32)
        std = torch.ones(obs_dim) if normalizer.is_identity else torch.as_tensor(normalizer.std, dtype=torch.float32)
        self.register_buffer("obs_mean", mean)
        self.register_buffer("obs_std", std)
        self.register_buffer("action_low", torch.as_tensor(agent.action_space.low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(agent.action_space.high, dtype=torch.float32))
        self.temperature = agent.acting_temperature
        guidance_max = None if self.one_step else self.actor.guidance_max
        self.guidance = None if guidance_max is None else float(agent.beta)

    def forward(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        condition = (observation - self.obs_mean) / self.obs_std
        noise = noise * self.temperature
        if self.one_step:
            return torch.maximum(torch.minimum(self.actor(condition, noise), self.action_high), self.action_low)
        guidance = None if self.guidance is None else torch.full_like(condition[:, 0], self.guidance)

        def field(x, t):
            return self.actor(x, t, condition=condition, guidance=guidance)

        actions = self.path.sample(field, noise, n_steps=self.n_steps, solver=self.solver)
        return torch.maximum(torch.minimum(actions, self.action_high), self.action_low)


def export_policy(agent, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write ``agent``'s acting policy to ``path`` (atomically) as ``"onnx"`` or ``"torchscript"``;
    returns the path.

    ``format=None`` takes the format from the suffix (``.onnx``; ``.pt``, ``.pth`` for
    TorchScript). ONNX inputs are named ``observation`` and ``noise``, the output ``action``, with
    a dynamic batch dimension; the TorchScript module takes the same two tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give the file to write, e.g. {path / 'policy.onnx'}")
    format = export_format(path, format)
    check_writable(path, ExportError)
    policy = ActingPolicy(agent)
    obs_dim, action_dim = agent.observation_space.shape[0], agent.action_space.shape[0]
    example = (torch.zeros(2, obs_dim), torch.zeros(2, action_dim))
    with torch.no_grad(), warnings.catch_warnings():
        # the solver's time grid is a set of constants of the trace, as intended
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        with atomic_write(path, binary=True) as file:
            if format == "torchscript":
                torch.jit.save(torch.jit.trace(policy, example, check_trace=False), file)
            else:
                torch.onnx.export(
                    policy,
                    example,
                    file,
                    input_names=["observation", "noise"],
                    output_names=["action"],
                    dynamic_axes={"observation": {0: "batch"}, "noise": {0: "batch"}, "action": {0: "batch"}},
                    dynamo=False,
                )
    return path


def export_format(path: Path, format: str | None) -> str:
    """The format to write ``path`` in: ``format`` if given, else the one its suffix names; an error
    when neither names one, or when they disagree (the file would not open as its name says)."""
    if format is not None and format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    named = _SUFFIX_FORMATS.get(path.suffix.lower())
    if format is None and named is None:
        raise ExportError(
            f"cannot tell the export format from {path.name!r}: end it in .onnx, or .pt for TorchScript, "
            f"or pass the format ({', '.join(FORMATS)})"
        )
    if format is not None and named is not None and named != format:
        raise ExportError(f"{path.name!r} names a {named} file but the format is {format}: change one of them")
    return format or named


_SUFFIX_FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript"}
