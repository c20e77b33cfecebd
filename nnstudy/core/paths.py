"""Every file the pipeline reads or writes, relative to the repository root.

DVC runs each stage from the root, and dvc.yaml names the same paths as deps and outs. Three
top-level folders hold what is committed: `metrics/` (the few headline files `dvc metrics` and
`dvc exp show` read: what a user compares), `plots/` (every file `dvc plots` reads) and `results/`
(everything else: per-seed, per-class and per-epoch details, timings, settings, predictions, trial
tables; the report and the gate read them). `data/` and `models/` are DVC-cached outputs, out of git.
"""

import os
from pathlib import Path

from nnstudy.core.errors import SetupError
from nnstudy.core.files import check_writable

PARAMS = Path("params.yaml")

RAW_DATA = Path("data/raw/dataset.npz")
PREPARED_DIR = Path("data/prepared")

MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")               # headline metrics only: each file one stage's few columns
PLOTS_DIR = Path("plots")
RESULTS_DIR = Path("results")
REPORT_DIR = Path("report")
FIGURES_DIR = REPORT_DIR / "figures"

# Headline metrics (what `dvc exp show` / `dvc metrics diff` show): about 55 values in all.
STUDY_HEADLINE = METRICS_DIR / "study.json"        # per variant and `final`: mean test accuracy, CI half-width
SWEEPS_HEADLINE = METRICS_DIR / "sweeps.json"      # per sweep axis: the best value (on validation) and its accuracy
OPENSET_HEADLINE = METRICS_DIR / "openset.json"    # AUROC per open-set method
TRANSFER_HEADLINE = METRICS_DIR / "transfer.json"  # each transfer arm at each labels value

SPLITS_SUMMARY = RESULTS_DIR / "data" / "splits.json"
SETTINGS_DIR = RESULTS_DIR / "settings"      # each variant's effective settings: what its training depends on
TRAIN_DIR = RESULTS_DIR / "train"            # one DVCLive folder per (variant, seed)
TIMING_DIR = RESULTS_DIR / "timing"          # wall-clock figures, kept apart: never reproducible
CURVES_DIR = PLOTS_DIR / "curves"            # learning curves, mean and spread over seeds
SWEEP_CURVES_DIR = PLOTS_DIR / "sweeps"      # the sweep points' learning curves
WEIGHTS_DIR = RESULTS_DIR / "weights"        # weights before/after training (DVC-cached)
# `python3 run.py study` on several workers: the other workers' copies of the workspace, in DVC's
# own scratch folder (git ignores it, DVC looks for no stages in it, as for `dvc exp run --temp`).
TEAM_DIR = Path(".dvc/tmp/team")
PREDICTIONS_DIR = RESULTS_DIR / "predictions"  # test-set predicted labels per run (for McNemar)

EVALUATE_METRICS = RESULTS_DIR / "evaluate.json"        # every variant, every seed, on the test set
EVALUATE_PLOTS = PLOTS_DIR / "evaluate"                 # DVCLive folder: confusion data per variant

TUNE_DIR = RESULTS_DIR / "tune"
TUNE_BEST = RESULTS_DIR / "tune" / "best.json"
TUNE_TRIALS = TUNE_DIR / "trials.csv"
TUNE_CANDIDATES = TUNE_DIR / "candidates.csv"     # the selection round: the best configurations over seeds
FINAL_PICK = TUNE_DIR / "final_pick.json"          # which candidate `final` trained, and any passed over
TUNER_WORKDIR = Path("tuner")                # keras-tuner's trial folder (a DVC output)

FINAL = "final"                              # the tuned network's name wherever variants are listed
FINAL_EVALUATE_METRICS = RESULTS_DIR / "final_evaluate.json"
FINAL_EVALUATE_PLOTS = PLOTS_DIR / "final_evaluate"      # DVCLive folder: ROC and confusion data

SWEEPS_METRICS = RESULTS_DIR / "sweeps.json"          # every sweep point over seeds, by axis
SWEEP_COMPARISONS = RESULTS_DIR / "stats" / "sweeps.csv"  # within each axis, the best value vs the others
SUMMARY = RESULTS_DIR / "summary.json"       # mean, spread and CI over seeds, per variant and the tuned network
COMPARISONS = RESULTS_DIR / "stats" / "comparisons.csv"  # every tested difference with its p-values
OPENSET_RESULTS = RESULTS_DIR / "openset.json"     # every open-set measure over seeds
OPENSET_TRAIN_DIR = RESULTS_DIR / "openset" / "train"  # one DVCLive folder per seed
NONDIGIT_RESULTS = RESULTS_DIR / "nondigit.json"
DREAMS_RESULTS = RESULTS_DIR / "dreams.json"

# --- The transfer-learning study (nnstudy.transfer): everything under a `transfer` folder.
TRANSFER_DATA_DIR = Path("data/transfer")                # the source and target tasks (DVC-cached)
TRANSFER_RESULTS_DIR = RESULTS_DIR / "transfer"
TRANSFER_TIMING_DIR = TIMING_DIR / "transfer"
TRANSFER_DATA_SUMMARY = TRANSFER_RESULTS_DIR / "data.json"
TRANSFER_SETTINGS_DIR = RESULTS_DIR / "transfer" / "settings"   # each run's effective settings
TRANSFER_SOURCE_DIR = MODELS_DIR / "transfer" / "source"        # the pretrained base, per seed
TRANSFER_PRETRAIN = TRANSFER_RESULTS_DIR / "pretrain.json"
TRANSFER_TRAIN_DIR = TRANSFER_RESULTS_DIR / "train"             # one DVCLive folder per (run, seed)
TRANSFER_RUNS_DIR = MODELS_DIR / "transfer" / "runs"
TRANSFER_PREDICTIONS_DIR = RESULTS_DIR / "transfer" / "predictions"
TRANSFER_CURVES_DIR = PLOTS_DIR / "transfer" / "curves"
TRANSFER_SUMMARY = TRANSFER_RESULTS_DIR / "summary.json"        # every run over seeds (the gate reads it)
TRANSFER_COMPARISONS = RESULTS_DIR / "transfer" / "comparisons.csv"
ZOO_TABLE = RESULTS_DIR / "transfer" / "zoo.csv"                 # the 13 models side by side
CONFUSED_PAIRS = RESULTS_DIR / "transfer" / "confused_pairs.csv"
TRANSFER_REPORT = REPORT_DIR / "transfer.md"                     # the report's transfer section
TRANSFER_FIGURES = FIGURES_DIR / "transfer"


def transfer_settings_file(run: str) -> Path:
    return TRANSFER_SETTINGS_DIR / f"{run}.json"


def source_weights_file(seed: int) -> Path:
    return TRANSFER_SOURCE_DIR / f"{seed_name(seed)}.weights.h5"


def transfer_model_file(run: str, seed: int) -> Path:
    return TRANSFER_RUNS_DIR / run / f"{seed_name(seed)}.keras"


def transfer_live_dir(run: str, seed: int) -> Path:
    return TRANSFER_TRAIN_DIR / run / seed_name(seed)


def transfer_predictions_file(run: str) -> Path:
    return TRANSFER_PREDICTIONS_DIR / f"{run}.csv"


def transfer_curve_file(metric: str, run: str) -> Path:
    return TRANSFER_CURVES_DIR / metric / f"{run}.csv"


def prepared_split(split: str) -> Path:
    return PREPARED_DIR / f"{split}.npz"


def settings_file(variant: str) -> Path:
    return SETTINGS_DIR / f"{variant}.json"


def seed_name(seed: int) -> str:
    return f"seed_{seed}"


def model_dir(name: str) -> Path:
    """Every seed's model of one variant, sweep point (sweep_<axis>_<value>) or the tuned network (`final`)."""
    if name == FINAL:
        return MODELS_DIR / "final"
    return MODELS_DIR / ("sweeps" if name.startswith("sweep_") else "variants") / name


def model_file(variant: str, seed: int) -> Path:
    return model_dir(variant) / f"{seed_name(seed)}.keras"


def train_live_dir(variant: str, seed: int) -> Path:
    return TRAIN_DIR / variant / seed_name(seed)


def weights_file(variant: str, seed: int) -> Path:
    return WEIGHTS_DIR / variant / f"{seed_name(seed)}.npz"


def predictions_file(name: str) -> Path:
    """A variant's (evaluate writes them) or the tuned network's (evaluate_final writes it)."""
    return PREDICTIONS_DIR / ("final.csv" if name == FINAL else f"variants/{name}.csv")


def curve_file(metric: str, name: str) -> Path:
    """Learning curves: the variants' and the tuned network's together, the sweep points' apart."""
    folder = SWEEP_CURVES_DIR if name.startswith("sweep_") else CURVES_DIR
    return folder / metric / f"{name}.csv"


def timing_file(stage: str) -> Path:
    """Wall-clock figures of a stage; the transfer study's in a folder of their own, so that its
    summary can depend on them without depending on every MLP stage's timing."""
    if stage.startswith("transfer_"):
        return TRANSFER_TIMING_DIR / f"{stage.removeprefix('transfer_')}.json"
    return TIMING_DIR / f"{stage}.json"


def cache_dir() -> Path:
    """Kept between runs, outside the repository (downloads, compiled XLA programs), created here.

    NNSTUDY_CACHE (an absolute path) overrides ~/.cache/nnstudy. A cache that cannot be used (no
    home folder, a relative path, a file in its place, a folder this user cannot write) is a
    SetupError naming it and what to set.
    """
    chosen = os.environ.get("NNSTUDY_CACHE")
    if chosen:
        if not os.path.isabs(chosen):
            # Each stage runs in its own folder (the repository, a worker's copy of it, a queued
            # experiment's temporary one): a relative cache would be a new one inside each.
            raise SetupError(f"NNSTUDY_CACHE={chosen}: not an absolute path; set it to one (e.g. "
                             f"NNSTUDY_CACHE=$PWD/{chosen}; `python3 run.py` does that for you)")
        folder, where = Path(chosen), f"NNSTUDY_CACHE={chosen}"
    else:
        home_env = os.environ.get("HOME")
        try:
            # Without HOME, Python asks the user database; "" or a relative HOME would put the
            # cache inside whatever folder the stage runs in (the repository).
            home = Path.home() if home_env is None or os.path.isabs(home_env) else None
        except RuntimeError:  # no HOME and no user database entry
            home = None
        if home is None:
            state = "unset" if home_env is None else f"{home_env!r}, not an absolute path"
            raise SetupError(f"no home folder for the study's cache (HOME is {state}); set HOME, or "
                             "NNSTUDY_CACHE to a writable folder (e.g. NNSTUDY_CACHE=/tmp/nnstudy-cache)")
        folder = home / ".cache" / "nnstudy"
        where = f"the cache {folder}"
    if folder.exists() and not folder.is_dir():
        raise SetupError(f"{where}: is a file, not a folder; set NNSTUDY_CACHE to a folder (or remove the file)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The folder itself, not every folder below it: probing those would touch each one's
        # mtime (the resume checkpoints' age) and walk the whole XLA cache on every call.
        check_writable(folder / "probe")
    except OSError as error:
        raise SetupError(f"{where}: cannot be written ({error.strerror}); "
                         "set NNSTUDY_CACHE to a writable folder") from None
    return folder
