"""Layer weights before and after training, as one .npz per variant (no Keras needed to read)."""

import zipfile
from pathlib import Path

import numpy as np

from nnstudy.core.errors import DataError
from nnstudy.core.files import write_npz

Snapshot = dict[str, np.ndarray]  # 'hidden_1/kernel' -> array


def save_weights(before: Snapshot, after: Snapshot, path: Path) -> None:
    arrays = {f"before/{name}": w for name, w in before.items()}
    arrays |= {f"after/{name}": w for name, w in after.items()}
    write_npz(path, **arrays)


def load_weights(path: Path) -> dict[str, Snapshot]:
    """{'before': {'hidden_1/kernel': ...}, 'after': {...}}"""
    result: dict[str, Snapshot] = {"before": {}, "after": {}}
    try:
        with np.load(path) as arrays:
            for key in arrays.files:
                when, name = key.split("/", 1)
                result[when][name] = arrays[key]
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro` to train the variant") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: unreadable weights file ({error}); run `dvc repro --force`") from None
    return result
