"""A small public API: fit an energy-guided generator to any data and any energy, then sample.

Example::

    import numpy as np
    from qipo_agents.generative import EnergyGuidedGenerator

    data = np.random.randn(50_000, 2)                     # samples of p(x)
    energy = lambda x: x[:, 0]                            # E(x), shape (n,) for x (n, 2)
    gen = EnergyGuidedGenerator(path="ot", beta=2.0).fit(data, energy, n_steps=3_000)
    samples = gen.sample(10_000)                          # ~ p(x) exp(-2 E(x)) / Z: N((-2, 0), I)

With ``guidance_max`` instead of ``beta`` the network takes the guidance scale as an input
(paper, Appendix F.2): it is trained with ``beta ~ U[0, guidance_max]`` per minibatch and
samples at any ``beta`` in that range, ``gen.sample(n, beta=...)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch

from qipo_agents.common.device import get_device
from qipo_agents.common.polyak import polyak_update
from qipo_agents.generative.losses import energy_weighted_loss
from qipo_agents.generative.paths import make_path
from qipo_agents.generative.weights import effective_sample_size, energy_weights
from qipo_agents.networks.field import FieldNetwork

EnergyFn = Callable[[np.ndarray], np.ndarray]


class EnergyGuidedGenerator:
    """Learns ``q(x) ∝ p(x) exp(-beta E(x))`` from samples of ``p`` by energy-weighted training.

    Each minibatch of ``batch_size`` data points is one group: its weights are
    ``batch_size * softmax(-beta E)`` (paper, Theorem 4.3), so the batch estimates the normaliser.

    Args:
        path: ``"ot"`` (energy-weighted flow matching) or ``"vp"`` (energy-weighted diffusion).
        beta: fixed guidance scale (inverse temperature); 0 learns ``p`` itself.
        guidance_max: if given (and ``beta`` is None), train one model for every
            ``beta in [0, guidance_max]`` with ``beta`` as a network input.
        hidden_dims: hidden widths of the :class:`~qipo_agents.networks.FieldNetwork`.
        architecture: ``"mlp"`` or ``"unet"``, the :class:`~qipo_agents.networks.FieldNetwork` layout.
        learning_rate: Adam step size.
        batch_size: minibatch (= weighting group) size.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        seed: seeds the network initialisation and all training / sampling noise.
        path_kwargs: extra arguments of the path (e.g. ``sigma_min``, ``default_steps``).
        ema_decay: sampling uses an exponential moving average of the weights with this decay
            (0 disables it); averaging removes most of the SGD noise in the learned mode masses.
        cosine_lr: anneal the learning rate to 0 over ``fit``'s steps with a cosine schedule.
    """

    def __init__(
        self,
        path: str = "ot",
        beta: float | None = None,
        guidance_max: float | None = None,
        hidden_dims: Sequence[int] = (256, 256, 256),
        architecture: str = "mlp",
        learning_rate: float = 1e-3,
        batch_size: int = 2048,
        device: str | torch.device = "auto",
        seed: int = 0,
        path_kwargs: dict | None = None,
        ema_decay: float = 0.999,
        cosine_lr: bool = True,
    ):
        if (beta is None) == (guidance_max is None):
            raise ValueError("give exactly one of `beta` (a fixed guidance scale) or `guidance_max`")
        self.path = make_path(path, **(path_kwargs or {}))
        self.beta, self.guidance_max = beta, guidance_max
        self.hidden_dims, self.architecture = tuple(hidden_dims), architecture
        self.learning_rate, self.batch_size = learning_rate, batch_size
        self.ema_decay, self.cosine_lr = ema_decay, cosine_lr
        self.device = get_device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.seed = seed
        self.model: FieldNetwork | None = None
        self.ema_model: FieldNetwork | None = None
        self.mean = self.std = None
        self.history: list[dict[str, float]] = []

    def fit(
        self,
        data: np.ndarray,
        energy: EnergyFn | np.ndarray,
        n_steps: int = 5_000,
        log_interval: int = 0,
    ) -> EnergyGuidedGenerator:
        """Train on ``data`` ``(n, dim)`` weighted by ``energy``.

        Args:
            data: samples of ``p``, shape ``(n, dim)``.
            energy: a function ``E(x (m, dim)) -> (m,)`` or the precomputed energies ``(n,)``.
            n_steps: gradient steps.
            log_interval: every this many steps, append ``{step, loss, ess}`` to
                :attr:`history` (0: never). ``ess`` is the minibatch effective sample size.
        """
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != 2 or len(data) == 0:
            raise ValueError(f"data must have shape (n, dim) with n > 0, got {data.shape}")
        energies = np.asarray(energy(data) if callable(energy) else energy, dtype=np.float32)
        if energies.shape != (len(data),):
            raise ValueError(f"energies must have shape ({len(data)},), got {energies.shape}")
        if not (np.isfinite(data).all() and np.isfinite(energies).all()):
            raise ValueError("data and energies must be finite (found NaN or inf)")
        torch.manual_seed(self.seed)
        self.mean, self.std = data.mean(0), data.std(0) + 1e-6
        x_all = torch.as_tensor((data - self.mean) / self.std, device=self.device)
        e_all = torch.as_tensor(energies, device=self.device)
        self.model = FieldNetwork(
            data.shape[1],
            hidden_dims=self.hidden_dims,
            architecture=self.architecture,
            guidance_max=self.guidance_max,
        ).to(self.device)
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps) if self.cosine_lr else None
        batch = min(self.batch_size, len(data))
        for step in range(1, n_steps + 1):
            idx = torch.randint(len(data), (batch,), device=self.device, generator=self.generator)
            beta, guidance = self._training_beta(batch)
            weights = energy_weights(e_all[idx], beta)
            loss = energy_weighted_loss(
                self.model, self.path, x_all[idx], weights, guidance=guidance, generator=self.generator
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            # warm-up of the average (as in common EMA practice) so the random init fades fast
            decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
            polyak_update(self.model, self.ema_model, 1.0 - decay)
            if log_interval and step % log_interval == 0:
                ess = effective_sample_size(weights).item()
                self.history.append({"step": step, "loss": loss.item(), "ess": ess})
        return self

    def _training_beta(self, batch: int) -> tuple[float, torch.Tensor | None]:
        if self.guidance_max is None:
            return self.beta, None
        beta = self.guidance_max * torch.rand((), device=self.device, generator=self.generator).item()
        return beta, torch.full((batch,), beta, device=self.device)

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        beta: float | None = None,
        n_steps: int | None = None,
        solver: str | None = None,
        batch_size: int = 65_536,
    ) -> np.ndarray:
        """Draw ``n`` samples ``(n, dim)`` of the guided distribution.

        Args:
            beta: guidance scale; only for a model fit with ``guidance_max`` (``beta <= guidance_max``).
            n_steps: solver steps (None: the path's default).
            solver: solver name (None: the path's default); see the path's ``solvers``.
            batch_size: samples generated per batch.
        """
        if self.ema_model is None:
            raise RuntimeError("call fit() before sample()")
        if self.guidance_max is None and beta is not None and beta != self.beta:
            raise ValueError(
                f"this generator was trained for beta={self.beta}; fit it with guidance_max to "
                "choose beta at sampling time"
            )
        if self.guidance_max is not None:
            beta = self.guidance_max if beta is None else float(beta)
            if not 0.0 <= beta <= self.guidance_max:
                raise ValueError(f"beta must lie in [0, {self.guidance_max}], got {beta}")
        model = self.ema_model
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            noise = torch.randn(m, model.x_dim, device=self.device, generator=self.generator)
            guidance = None if self.guidance_max is None else torch.full((m,), beta, device=self.device)

            def field(x, t, guidance=guidance):
                return model(x, t, guidance=guidance)

            out.append(self.path.sample(field, noise, n_steps=n_steps, solver=solver).cpu().numpy())
        return np.concatenate(out) * self.std + self.mean
