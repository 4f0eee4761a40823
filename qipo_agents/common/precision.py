"""Training precision: float32 everywhere, or bfloat16 matrix products in the gradient steps.

``"bf16-mixed"`` runs the forward passes of each gradient step under :func:`torch.autocast` with
``dtype=torch.bfloat16``: the hidden layers' matrix products and activations run in bfloat16
(twice the float32 rate for 256x256 products on a CPU with AVX512-BF16; on a GPU these small
steps are bound by kernel launches and run slower, docs/benchmarks.md), while
parameters, gradients, the optimiser's state and the losses stay float32. The layers whose outputs
the method reads as numbers (each network's last layer: Q-values, V, the field's velocity or
noise) run in float32 through :func:`float32_layer`, so a Q of 300 keeps float32's resolution
where bfloat16 would round it to a step of 2. Sampling (support sets, the critic's next actions,
the distillation teacher, acting) and every no-grad evaluation outside a step stay float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

PRECISIONS = ("fp32", "bf16-mixed")


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise a ``ValueError`` naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    return precision


def training_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a gradient step's forward passes and losses run in on ``device``:
    nothing for ``"fp32"``, bfloat16 autocast for ``"bf16-mixed"``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def float32_layer(layer: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """``layer(h)`` computed in float32 even under autocast (outside autocast, plainly ``layer(h)``):
    for the output layers whose values are read as numbers. Shapes are ``layer``'s."""
    if not torch.is_autocast_enabled(h.device.type):
        return layer(h)
    with torch.autocast(h.device.type, enabled=False):
        return layer(h.float())
