"""Polyak (soft) parameter averaging."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def polyak_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source`` for every parameter and float buffer.

    ``tau = 1`` copies ``source``; ``tau = 0`` leaves ``target`` unchanged.
    """
    if tau == 1.0:
        target.load_state_dict(source.state_dict())
        return
    for p_target, p_source in zip(target.parameters(), source.parameters(), strict=True):
        p_target.lerp_(p_source, tau)
    for b_target, b_source in zip(target.buffers(), source.buffers(), strict=True):
        if b_target.is_floating_point():
            b_target.lerp_(b_source, tau)
