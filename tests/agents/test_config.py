"""The typed config: one field per hyperparameter, documented on the agent, saved with it, and
enough on its own to rebuild an agent that trains exactly as the original."""

from __future__ import annotations

import inspect
import json
import re
import zipfile

import pytest
import torch
from pydantic import ValidationError

from qipo_agents import QIPO, QIPODiffusion, QIPOFlow
from qipo_agents.qipo.config import QIPOConfig

from .conftest import TINY


def _documented_arguments(cls: type) -> set[str]:
    """Names in the ``Args:`` section of ``cls``'s docstring (``name:`` or ``a, b:`` at its indent)."""
    args = inspect.getdoc(cls).split("Args:\n", 1)[1]
    return {name.strip() for line in re.findall(r"^    (\w[\w, ]*):", args, re.M) for name in line.split(",")}


@pytest.mark.parametrize("agent_class", [QIPOFlow, QIPODiffusion])
def test_every_field_has_a_type_a_description_and_a_place_in_the_agent_docstring(agent_class):
    fields = agent_class.config_class.model_fields
    assert all(field.description for field in fields.values())
    run_arguments = {"policy", "dataset", "device", *agent_class.run_settings}
    assert _documented_arguments(QIPO) == set(fields) | run_arguments
    assert agent_class.config_class.refinement_settings <= set(fields)


def test_the_agent_keeps_its_config_and_refuses_bad_settings_before_reading_data(bandit_data):
    agent = QIPOFlow("MlpPolicy", bandit_data, beta=2, **TINY)
    assert isinstance(agent.config, QIPOConfig) and agent.config.beta == 2.0 and agent.beta == 2.0
    with pytest.raises(TypeError, match="unknown hyperparameters betta; did you mean beta"):
        QIPOFlow("MlpPolicy", "no/such/dataset-v0", betta=1.0)
    with pytest.raises(ValueError, match="only distill_steps > 0 trains"):
        QIPOFlow("MlpPolicy", "no/such/dataset-v0", extraction_alpha=0.5)
    with pytest.raises(ValidationError):
        agent.config.beta = 1.0  # frozen
    agent.best_of_n = 3  # an acting setting replaces the config by a validated copy
    assert agent.config.best_of_n == 3 and agent.config.beta == 2.0
    with pytest.raises(ValueError, match="best_of_n: must be >= 1, got 0"):
        agent.best_of_n = 0


def test_combinations_name_their_fields():
    with pytest.raises(ValidationError) as refused:
        QIPOConfig(beta=5.0, guidance_max=4.0)
    assert refused.value.errors()[0]["ctx"]["fields"] == ("beta", "guidance_max")


@pytest.mark.parametrize("agent_class", [QIPOFlow, QIPODiffusion])
def test_an_agent_rebuilt_from_its_saved_config_trains_exactly_as_the_original(agent_class, bandit_data, tmp_path):
    """The config is the whole of the hyperparameters: the saved config alone (no constructor
    arguments) builds an agent whose training is bit-identical, and it validates to itself."""
    settings = {**TINY, "reward_scaling": "none", "distill_steps": 20, "extraction_alpha": 1.0}
    original = agent_class("MlpPolicy", bandit_data, **settings).learn()
    with zipfile.ZipFile(original.save(tmp_path / "agent")) as archive:
        saved = json.loads(archive.read("data.json"))["config"]
    assert agent_class.config_class.model_validate(saved).model_dump(mode="json") == saved
    rebuilt = agent_class("MlpPolicy", bandit_data, seed=TINY["seed"], device="cpu", **saved).learn()
    for name, value in original.policy.state_dict().items():
        torch.testing.assert_close(rebuilt.policy.state_dict()[name], value, rtol=0, atol=0)


def test_the_constructor_signature_lists_every_hyperparameter():
    """``help(QIPOFlow)`` and notebooks show the hyperparameters as keyword arguments with their defaults."""
    for agent_class in (QIPOFlow, QIPODiffusion):
        parameters = inspect.signature(agent_class).parameters
        for name, field in agent_class.config_class.model_fields.items():
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert parameters[name].default == field.get_default(call_default_factory=True)
        assert list(parameters)[:2] == ["policy", "dataset"]
