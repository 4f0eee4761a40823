"""Device selection, the Stable-Baselines3 way."""

from __future__ import annotations

import torch


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present and the CPU otherwise; anything else is passed to torch.

    Raises:
        ValueError: when CUDA is requested but not available.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available here; use device='auto' or 'cpu'")
    return device
