"""Every file the pipeline reads or writes, relative to the repository root.

DVC runs each stage from the root, and dvc.yaml names the same paths as deps and outs.
"""

from pathlib import Path

PARAMS = Path("params.yaml")

RAW_DATA = Path("data/raw/dataset.npz")
PREPARED_DIR = Path("data/prepared")
SPLITS_SUMMARY = Path("results/data/splits.json")

MODELS_DIR = Path("models")
RESULTS_DIR = Path("results")
TRAIN_DIR = RESULTS_DIR / "train"            # one DVCLive folder per variant
CURVES_DIR = RESULTS_DIR / "curves"          # learning-curve plot data, train vs validation
WEIGHTS_DIR = RESULTS_DIR / "weights"        # weights before/after training (DVC-cached)
TIMING_DIR = RESULTS_DIR / "timing"          # wall-clock figures, kept apart: never reproducible
EVALUATE_DIR = RESULTS_DIR / "evaluate"      # DVCLive folder: test metrics and confusion data
REPORT_DIR = Path("report")

TUNE_DIR = RESULTS_DIR / "tune"
TUNER_WORKDIR = Path("tuner")                # keras-tuner's trial folder (a DVC output)
FINAL_DIR = RESULTS_DIR / "final"            # DVCLive folder of the final training
FINAL_EVAL_DIR = RESULTS_DIR / "final_evaluate"


def prepared_split(split: str) -> Path:
    return PREPARED_DIR / f"{split}.npz"


def model_file(variant: str) -> Path:
    return MODELS_DIR / "variants" / f"{variant}.keras"


def weights_file(variant: str) -> Path:
    return WEIGHTS_DIR / f"{variant}.npz"


def curve_file(metric: str, variant: str) -> Path:
    return CURVES_DIR / metric / f"{variant}.csv"


def timing_file(stage: str) -> Path:
    return TIMING_DIR / f"{stage}.json"


FINAL_MODEL = MODELS_DIR / "final.keras"
