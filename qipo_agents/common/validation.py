"""Settings validated by pydantic: strict reading of configuration files, and error messages in
the words of the package's own checks (``gamma: must be <= 1, got 1.5``).

A configuration file's values (YAML, as JSON) are validated strictly with :func:`validate_setting`:
no ``"3e-4"`` string for a number, no boolean for an integer; Python callers get pydantic's usual
conversions (``beta=3`` is ``3.0``). :func:`explain` turns a pydantic error into one short sentence;
:func:`settings_error` turns a whole ``ValidationError`` into the ``ValueError`` (or, for unknown
names, the ``TypeError``) a constructor raises.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, TypeAdapter, ValidationError


def _integral(value: Any) -> Any:
    """``100000.0`` (YAML's ``1e5``) -> ``100000``; anything else is left to the integer check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: An integer that may be written as an integral float (``1e5``), even in strict validation.
Integer = Annotated[int, BeforeValidator(_integral)]

_EXPECTED = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_BOUND_KEYS = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}


def describe_value(value: Any) -> str:
    """``a string 'x'``, ``an integer 3``, ``null``: a value as error messages show it."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}" if value is not None else "null"


def error_location(error: Mapping[str, Any]) -> str:
    """``policy_kwargs.hidden_dims[1]``: where in a mapping of settings a pydantic error lies."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")


def explain(error: Mapping[str, Any], owner: type | None = None) -> str:
    """What a pydantic error says, in the words of the agent's own checks: ``must be >= 1, got 0``,
    ``expected a number, got a string 'x'``, ``unknown critic_type 'sarsa'; choose one of ...``.
    With the ``owner`` of the settings, an unknown entry of a mapping setting lists the valid ones."""
    kind, found = error["type"], error.get("input")
    if kind == "extra_forbidden" and len(error["loc"]) == 2 and owner is not None:
        setting, entry = error["loc"]
        valid = list(owner.__pydantic_fields__[setting].annotation.__annotations__)
        return f"unknown {setting} entry{did_you_mean(entry, valid)} (valid: {', '.join(valid)})"
    if kind == "combination":
        return error["ctx"]["message"]
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {error['ctx'][_BOUND_KEYS[kind]]:g}, got {found}"
    if kind == "literal_error":
        name = error_location(error).rsplit(".", 1)[-1]
        return f"unknown {name} {found!r}; choose one of {error['ctx']['expected']}"
    if kind in _EXPECTED:
        if _EXPECTED[kind] in ("an integer", "a number") and isinstance(found, str) and _is_number(found):
            return f"{found!r} is quoted, so YAML reads a string; write {found.strip()}"
        return f"expected {_EXPECTED[kind]}, got {describe_value(found)}"
    return str(error["msg"]).removeprefix("Value error, ")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def validate_setting(owner: type, name: str, value: Any) -> Any:
    """``value`` of the field ``name`` of ``owner`` (a pydantic model or dataclass) validated
    strictly, as a configuration file's value: YAML's values are JSON's, so it is validated as
    JSON is (a list is a tuple, no number in a string, no boolean for a number). Raises
    ``pydantic.ValidationError`` whose locations start at the field's value."""
    return _setting_adapter(owner, name).validate_json(json.dumps(value), strict=True)


_adapters: dict[tuple[type, str], TypeAdapter] = {}


def _setting_adapter(owner: type, name: str) -> TypeAdapter:
    if (owner, name) not in _adapters:
        info = owner.__pydantic_fields__[name]
        hint = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        _adapters[owner, name] = TypeAdapter(hint)
    return _adapters[owner, name]


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``"; did you mean beta?"`` for a close match of ``name`` among ``valid`` names, else ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=3)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def settings_error(error: ValidationError, owner: type) -> ValueError | TypeError:
    """The error a constructor raises for settings of ``owner`` (a pydantic model) that ``error``
    refused: a ``TypeError`` naming unknown settings (with close matches), else a ``ValueError``
    with one line per refused setting, its field's description appended."""
    errors = error.errors()
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1]
    fields = owner.model_fields
    if unknown:
        listed = ", ".join(name + did_you_mean(name, fields) for name in unknown)
        return TypeError(f"{owner.__name__.removesuffix('Config')} got unknown hyperparameters {listed}")
    lines = []
    for item in errors:
        where = error_location(item)
        field = fields.get(str(item["loc"][0])) if item["loc"] else None
        about = f" ({field.description})" if field is not None and field.description else ""
        lines.append(f"{where}: {explain(item, owner)}{about}" if where else explain(item, owner))
    return ValueError(f"invalid {owner.__name__.removesuffix('Config')} hyperparameters: " + "; ".join(lines))
