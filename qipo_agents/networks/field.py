"""Field networks: ``f(x_t, t, condition, guidance) -> velocity or noise``, shaped like ``x_t``.

The same network serves both paths: under the OT path it predicts a velocity, under the VP
path the noise. Its inputs are embedded and summed into every residual block, as in QGPO's
score network (Lu et al., 2023).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qipo_agents.common.precision import float32_layer
from qipo_agents.networks.embeddings import ScalarEmbedding


class ResidualBlock(nn.Module):
    """``out = SiLU(W2 SiLU(W1 x + E emb)) + skip(x)``: an MLP block modulated by the embedding."""

    def __init__(self, in_dim: int, out_dim: int, embed_dim: int):
        super().__init__()
        self.dense1 = nn.Linear(in_dim, out_dim)
        self.embed = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, out_dim))
        self.dense2 = nn.Linear(out_dim, out_dim)
        self.skip = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)
        self.activation = nn.SiLU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.dense1(x)) + self.embed(emb)
        return self.activation(self.dense2(h)) + self.skip(x)


class FieldNetwork(nn.Module):
    """Velocity / noise network over vectors, optionally conditioned and guidance-aware.

    Architecture ``"unet"``: residual blocks down through ``hidden_dims`` (e.g. 512 → 256 → 128),
    then back up (256 → 512) with skip connections concatenated, then a linear head. It follows
    QGPO's ScoreNet without its middle block and 1024-wide concatenated head, and embeds the
    condition in ``embed_dim`` features (128 by default) where QGPO uses 32. Architecture ``"mlp"``: residual blocks of widths ``hidden_dims``.

    Args:
        x_dim: dimension of the generated vectors (the action dimension in RL).
        condition_dim: dimension of the conditioning input (the observation), 0 for none.
        hidden_dims: widths of the residual blocks.
        architecture: ``"unet"`` or ``"mlp"``.
        embed_dim: width of the summed embedding of (time, condition, guidance).
        guidance_max: when set, the network takes the guidance scale ``beta`` in
            ``[0, guidance_max]`` as an input (paper, Appendix F.2).

    Shapes: ``x (batch, x_dim)``, ``t (batch,)``, ``condition (batch, condition_dim)``,
    ``guidance (batch,)``; output ``(batch, x_dim)``.
    """

    def __init__(
        self,
        x_dim: int,
        condition_dim: int = 0,
        hidden_dims: Sequence[int] = (512, 256, 128),
        architecture: str = "unet",
        embed_dim: int = 128,
        guidance_max: float | None = None,
    ):
        super().__init__()
        if architecture not in ("unet", "mlp"):
            raise ValueError(f"unknown architecture {architecture!r}; choose 'unet' or 'mlp'")
        hidden_dims = list(hidden_dims)
        self.x_dim, self.condition_dim, self.architecture = x_dim, condition_dim, architecture
        self.guidance_max = guidance_max
        self.time_embedding = ScalarEmbedding(32)
        in_embed = 32
        if condition_dim:
            self.condition_embedding = nn.Sequential(nn.Linear(condition_dim, embed_dim), nn.SiLU())
            in_embed += embed_dim
        if guidance_max is not None:
            self.guidance_embedding = ScalarEmbedding(32, scale=1.0)
            in_embed += 32
        self.embedding = nn.Sequential(nn.Linear(in_embed, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        widths = [x_dim, *hidden_dims]
        self.down = nn.ModuleList(ResidualBlock(a, b, embed_dim) for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList()
        if architecture == "unet":
            # back up the encoder: each block sees the previous output concatenated with the
            # encoder activation of the width it returns to (128+256 -> 256, 256+512 -> 512)
            for inner, outer in zip(hidden_dims[:0:-1], hidden_dims[-2::-1]):
                self.up.append(ResidualBlock(inner + outer, outer, embed_dim))
        self.head = nn.Linear(hidden_dims[0] if architecture == "unet" else hidden_dims[-1], x_dim)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        condition: torch.Tensor | None = None,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts = [self.time_embedding(t)]
        if self.condition_dim:
            if condition is None:
                raise ValueError("this network is conditional: pass `condition` of shape (batch, condition_dim)")
            parts.append(self.condition_embedding(condition))
        if self.guidance_max is not None:
            if guidance is None:
                raise ValueError("this network is guidance-conditioned: pass `guidance` (batch,)")
            parts.append(self.guidance_embedding(guidance / self.guidance_max))
        emb = self.embedding(torch.cat(parts, dim=-1))
        skips = []
        h = x
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        skips.pop()  # the innermost activation is `h` itself
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=-1), emb)
        return float32_layer(self.head, h)
