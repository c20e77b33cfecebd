"""Layer weights before and after training, as one .npz per variant (no Keras needed to read)."""

import zipfile
from pathlib import Path

import numpy as np

from nnstudy.core.errors import DataError

Snapshot = dict[str, np.ndarray]  # 'hidden_1/kernel' -> array


def save_weights(before: Snapshot, after: Snapshot, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"before/{name}": w for name, w in before.items()}
    arrays |= {f"after/{name}": w for name, w in after.items()}
    np.savez_compressed(path, **arrays)


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
