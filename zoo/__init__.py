"""Per-task hyperparameters of ``qipo-zoo`` (``flow.yml``, ``diffusion.yml``).

Installed, this folder is the package ``qipo_agents.zoo.hyperparams`` (``package-dir`` in
``pyproject.toml``); it holds no code. ``qipo_agents.zoo.config`` reads and validates the files.
"""
