"""The data of DVC's overlay charts: many runs' curves in one long table (pure functions).

`dvc plots` draws one chart per file of a folder, so the 15 variants' curves were 15 charts. One
chart with a line per run needs the runs in one file with a `series` column, which the project's
`.dvc/plots/series.json` template colours by (and dashes by revision in `dvc plots diff`).
"""

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nnstudy.core import paths
from nnstudy.core.files import write_csv

OVERLAYS_DIR = paths.PLOTS_DIR / "overlays"


def overlay_table(curves: Mapping[str, Path], columns: tuple[str, ...] = ("validation",)) -> pd.DataFrame:
    """epoch, series, *columns: every run's curve (a CSV with an `epoch` column) stacked, in the given order."""
    frames = [pd.read_csv(path)[["epoch", *columns]].assign(series=name) for name, path in curves.items()]
    if not frames:
        return pd.DataFrame(columns=["epoch", "series", *columns])
    return pd.concat(frames, ignore_index=True)[["epoch", "series", *columns]]


def overlay_file(name: str) -> Path:
    return OVERLAYS_DIR / f"{name}.csv"


def write_overlay(name: str, curves: Mapping[str, Path], columns: tuple[str, ...] = ("validation",)) -> Path:
    path = overlay_file(name)
    write_csv(overlay_table(curves, columns), path)
    return path
