"""Value checks for params.yaml and the settings files: each returns the clean value or raises
ParamError naming the key (`variants.sgd_mean10.optimizer: 'sgdd' is not one of: ...`).

The MLP study's params (nnstudy.core.params) and the transfer study's (nnstudy.core.transfer_params)
both build on these, so neither has to import the other's checks.
"""

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

from nnstudy.core.errors import ParamError

Check = Callable[[str, Any], Any]


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, str):
            hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if _is_float_text(value) else ""
            raise ParamError(f"{key}: must be a number, got {_describe(value)}{hint}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ParamError(f"{key}: must be a finite number, got {_describe(value)}")
        if low is not None and (value <= low if low_open else value < low):
            raise ParamError(f"{key}: must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and value > high:
            raise ParamError(f"{key}: must be <= {high}, got {value}")
        return float(value)
    return check


def integer(low: int) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{key}: must be a whole number >= {low}, got {_describe(value)}")
        if value < low:
            raise ParamError(f"{key}: must be a whole number >= {low}, got {value}")
        return value
    return check


def choice(allowed: tuple[str, ...]) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise ParamError(f"{key}: {value!r} is not one of: {', '.join(allowed)}")
        return value
    return check


def text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ParamError(f"{key}: must be a non-empty string, got {_describe(value)}")
    return value


def list_of(item: Check, min_len: int = 1) -> Check:
    def check(key: str, value: Any) -> tuple:
        if not isinstance(value, list) or len(value) < min_len:
            raise ParamError(f"{key}: must be a list of at least {min_len} value(s), got {_describe(value)}")
        return tuple(item(f"{key}[{i}]", v) for i, v in enumerate(value))
    return check


def _is_float_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _at(key: str) -> str:
    """The message prefix for a key path; the top level has none ("unknown key 'x'", not ": unknown key")."""
    return f"{key}: " if key else ""


def check_mapping(key: str, value: Any, schema: Mapping[str, Check], required: bool = True,
                  optional: tuple[str, ...] = ()) -> dict:
    """Check a mapping against a schema: unknown keys are named with the closest allowed key."""
    if not isinstance(value, dict):
        raise ParamError(f"{_at(key)}must be a mapping of keys to values, got {_describe(value)}")
    for name in value:
        if name not in schema:
            close = difflib.get_close_matches(str(name), schema, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamError(f"{_at(key)}unknown key {name!r}{hint}; allowed keys: {', '.join(schema)}")
    if required:
        missing = [name for name in schema if name not in value and name not in optional]
        if missing:
            raise ParamError(f"{_at(key)}missing key(s): {', '.join(missing)}")
    return {name: schema[name](f"{key}.{name}" if key else name, v) for name, v in value.items()}


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamError(f"{key}: must be true or false, got {_describe(value)}")
    return value


def seed_list(key: str, value: Any) -> tuple[int, ...]:
    seeds = list_of(integer(0))(key, value)
    if len(set(seeds)) != len(seeds):
        raise ParamError(f"{key}: each seed may appear once, got {list(seeds)}")
    return seeds
