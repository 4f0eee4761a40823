"""Device selection, the Stable-Baselines3 way, and what a run ran on."""

from __future__ import annotations

import platform

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


def cpu_description() -> str:
    """The CPU's model name and the SIMD level torch dispatches its kernels to, e.g.
    ``"Intel(R) Xeon(R) Processor (AVX512)"``. Seeded runs repeat bit for bit only where both
    match (and the library versions do): kernels of another level round differently."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"
