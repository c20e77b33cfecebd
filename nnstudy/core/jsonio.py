"""JSON that every reader accepts: NaN and infinities become null, never bare NaN/Infinity."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nnstudy.core.errors import DataError
from nnstudy.core.files import write_text


def to_plain(value: Any) -> Any:
    """NumPy scalars/arrays to Python values; non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, content: Any) -> None:
    text = json.dumps(to_plain(content), indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def read_json(path: Path) -> Any:
    """Read a pipeline JSON file; a missing or corrupt one names itself and the fix."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro` to produce it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); run `dvc repro --force` to rewrite it") from None


def read_text(path: Path) -> str:
    """A text file another stage wrote; a missing one names itself and the fix."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro` to produce it") from None


def as_number(value: Any) -> float | None:
    """A metric as a float; DVCLive's "nan" string, NaN and non-numbers become None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def make_strict(folder: Path) -> None:
    """Rewrite every JSON file under `folder` strictly: bare NaN/Infinity become null.

    DVCLive writes sklearn's first ROC threshold (inf) as a bare `Infinity`, which JSON.parse,
    jq and many tools refuse; Python's json reads it, so it can be rewritten in place.
    """
    for path in sorted(folder.rglob("*.json")):
        write_json(path, json.loads(path.read_text(encoding="utf-8")))
