"""qipo-zoo: per-task hyperparameters and the ``train / eval / list / collect / plot`` command line.

``zoo/<algo>.yml`` (shipped as ``qipo_agents.zoo.hyperparams``) holds the hyperparameters;
:mod:`~qipo_agents.zoo.config` validates them into :class:`~qipo_agents.zoo.config.TaskConfig`;
:mod:`~qipo_agents.zoo.train` runs a task into ``logs/<algo>/<task>_<n>/``;
:mod:`~qipo_agents.zoo.cli` is the ``qipo-zoo`` command.
"""

from qipo_agents.zoo.config import TaskConfig, ZooFile, load_task

__all__ = ["TaskConfig", "ZooFile", "load_task"]
