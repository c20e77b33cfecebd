"""The selection round after Hyperband: its best configurations retrained on several seeds, and the
pick made by the one-standard-error rule.

Each Hyperband trial is one training run on one seed, and a promoted trial resumes an earlier
trial's weights: a configuration that survives one run in ten can win the search and then collapse
when `final` retrains it from scratch. So the best `tune.candidates` distinct configurations are
retrained from scratch on every seed, as the study trains everything. One that diverges on any seed
is out. Among the rest, those whose mean validation accuracy lies within one standard error of the
best mean cannot be told apart by these seeds; the simplest of them is picked (Hastie, Tibshirani
and Friedman, The Elements of Statistical Learning, 7.10): the fewest parameters, then the order of
the space in params.yaml. A gap smaller than the seeds' noise then cannot flip the pick between two
machines.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnstudy.core.errors import StudyError
from nnstudy.core.data import PreparedData
from nnstudy.core.params import ModelParams, Params, TuneParams

# The searched axes, in the order that breaks a tie between two equally simple configurations.
AXES = ("units_1", "units_2", "l2", "learning_rate", "dropout", "batch_size")


@dataclass(frozen=True)
class Candidate:
    """A configuration retrained on every seed: its validation accuracy (at the kept epoch) per seed."""
    trial_id: str                      # its best trial in the search
    hyperparameters: dict[str, Any]
    single_run: float                  # that trial's objective: one run, one seed
    seeds: tuple[int, ...]
    val_accuracy: tuple[float, ...]    # per seed, of the epoch early stopping kept
    diverged_seeds: tuple[int, ...]
    parameters: int
    position: tuple[int, ...]          # each value's index in its axis of the space

    @property
    def held(self) -> bool:
        return not self.diverged_seeds

    @property
    def mean(self) -> float:
        return float(np.mean(self.val_accuracy))

    @property
    def se(self) -> float:
        """Standard error of the mean over seeds (0 with one seed: nothing to judge a gap by)."""
        n = len(self.val_accuracy)
        return float(np.std(self.val_accuracy, ddof=1) / math.sqrt(n)) if n > 1 else 0.0


def top_configurations(trials: pd.DataFrame, k: int) -> pd.DataFrame:
    """The best `k` distinct configurations by their best single trial (trials come best first)."""
    searched = [axis for axis in AXES if axis in trials]
    finished = trials[trials["objective"].notna()]
    return finished.drop_duplicates(subset=searched, keep="first").head(k).reset_index(drop=True)


def hyperparameters_of(row: pd.Series) -> dict[str, Any]:
    """A trials-table row's searched values, as keras-tuner gave them (ints stay ints)."""
    values = {}
    for axis in AXES:
        if axis in row and not pd.isna(row[axis]):
            value = row[axis].item() if hasattr(row[axis], "item") else row[axis]
            values[axis] = int(value) if axis in ("units_1", "units_2", "batch_size") else float(value)
    return values


def parameter_count(hidden_units: tuple[int, ...], input_dim: int, num_classes: int) -> int:
    """Weights and biases of the MLP: what "simplest" means among configurations of equal accuracy."""
    widths = [input_dim, *hidden_units, num_classes]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def space_position(values: dict[str, Any], space: TuneParams) -> tuple[int, ...]:
    """Each searched value's index in its axis as params.yaml lists it: the last tie-break, fixed by
    the params, not by the machine."""
    axes = {"units_1": space.units_1, "units_2": space.units_2, "l2": space.l2,
            "learning_rate": space.learning_rate, "dropout": space.dropout, "batch_size": space.batch_sizes}
    return tuple(list(axes[axis]).index(values[axis]) if values[axis] in axes[axis] else len(axes[axis])
                 for axis in AXES if axis in values)


def one_se_order(candidates: list[Candidate]) -> tuple[list[Candidate], str]:
    """The candidates that held on every seed, in the order `final` tries them, and why the first won.

    First those within one standard error of the best mean, simplest first (fewest parameters, then
    the space's order); then the other held ones, best mean first. A diverged one is never listed.
    """
    held = [c for c in candidates if c.held]
    out = [c for c in candidates if not c.held]
    dropped = "; ".join(f"trial {c.trial_id} diverged on seed{'s' if len(c.diverged_seeds) > 1 else ''} "
                        f"{', '.join(map(str, c.diverged_seeds))}" for c in out)
    if not held:
        return [], f"every candidate diverged on some seed ({dropped})"
    best = max(held, key=lambda c: (c.mean, -c.parameters))
    floor = best.mean - best.se
    within = sorted((c for c in held if c.mean >= floor), key=lambda c: (c.parameters, c.position))
    rest = sorted((c for c in held if c.mean < floor), key=lambda c: -c.mean)
    pick = within[0]
    why = (f"best mean validation accuracy {best.mean * 100:.2f} % (trial {best.trial_id}, standard error "
           f"{best.se * 100:.2f} points); within one standard error of it (>= {floor * 100:.2f} %): "
           f"{', '.join(f'trial {c.trial_id}' for c in within)}; ")
    why += (f"the fewest parameters among them: trial {pick.trial_id} ({pick.parameters:,})" if len(within) > 1
            else f"only trial {pick.trial_id}")
    if dropped:
        why += f"; out: {dropped}"
    return within + rest, why


def candidates_table(candidates: list[Candidate], order: list[Candidate]) -> pd.DataFrame:
    """One row per candidate: values, single run, mean and SE over seeds, diverged seeds, parameters,
    and its place in `final`'s order (empty when it is out)."""
    rank = {c.trial_id: i + 1 for i, c in enumerate(order)}
    rows = []
    for c in candidates:
        rows.append({
            "trial_id": c.trial_id,
            **c.hyperparameters,
            "single_run": c.single_run,
            "mean": c.mean,
            "se": c.se,
            "seeds": len(c.seeds),
            **{f"seed_{seed}": value for seed, value in zip(c.seeds, c.val_accuracy)},
            "diverged_seeds": " ".join(map(str, c.diverged_seeds)),
            "parameters": c.parameters,
            "order": rank.get(c.trial_id),
        })
    return pd.DataFrame(rows)


def candidates_record(order: list[Candidate]) -> list[dict[str, Any]]:
    """The ordered list `final` falls back along (best.json)."""
    return [{"trial_id": c.trial_id, "hyperparameters": c.hyperparameters, "mean": c.mean, "se": c.se,
             "parameters": c.parameters} for c in order]


def first_that_holds(candidates: list[dict[str, Any]],
                     retrain: Callable[[dict[str, Any]], tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """`final`'s fallback: retrain each candidate in order (`retrain` returns the seeds it diverged
    on) and return the first that holds on every seed, with a line per candidate passed over.
    None holding is a StudyError: a collapsed network is never published as the tuned network."""
    passed_over = []
    for candidate in candidates:
        diverged = retrain(candidate)
        if not diverged:
            return candidate, passed_over
        line = (f"trial {candidate['trial_id']} ({describe(candidate['hyperparameters'])}) DIVERGED on seed"
                f"{'s' if len(diverged) > 1 else ''} {', '.join(map(str, diverged))}")
        print(f"final: {line}; " + ("falling back to the next candidate" if candidate is not candidates[-1]
                                    else "no candidate left"), flush=True)
        passed_over.append(line)
    raise StudyError(f"final: none of the {len(candidates)} tuned candidates held on every seed "
                     f"({'; '.join(passed_over)}); rerun `tune` with more tune.candidates or a smaller space")


def describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def retrain_candidate(model: ModelParams, data: Any, seeds: list[int], loss_limit: float, loop: str,
                      vmapped: bool, stop: Any, live_dir: Callable[[int], Any]) -> tuple[list[float], list[int]]:
    """One configuration from scratch on every seed, as `final` trains it (train_seeds when the seeds
    run together): each seed's validation accuracy at its kept epoch, and the seeds it diverged on."""
    from nnstudy.training.loop import open_live, record_summary, train, train_seeds
    from nnstudy.training.models import enable_determinism

    lives = [open_live(live_dir(seed)) for seed in seeds]
    labels = [f"candidate seed {seed}" for seed in seeds]
    if vmapped:
        results = train_seeds(model, data, list(seeds), lives, loss_limit, labels, stop=stop)
    else:
        results = []
        for seed, live, label in zip(seeds, lives, labels):
            enable_determinism(seed)
            results.append(train(model, data, seed, live, loss_limit, loop, label=label, stop=stop))
    for live, result in zip(lives, results):
        record_summary(live, result)
    scores = [result.history["val_accuracy"][result.kept_epoch - 1] for result in results]
    return scores, [seed for seed, result in zip(seeds, results) if result.diverged]


def selection_round(study: Params, data: PreparedData, table: pd.DataFrame,
                    live_root: Path) -> tuple[pd.DataFrame, list[dict[str, Any]], str]:
    """The selection round: the candidates' table, the order `final` tries them in, and why."""
    from nnstudy.training.loop import EarlyStop
    from nnstudy.training.tuning import tuned_model

    stop = EarlyStop(study.final.monitor, study.final.patience)
    candidates = []
    for _, row in top_configurations(table, study.tune.candidates).iterrows():
        values = hyperparameters_of(row)
        # The search's budget, the final retrain's early stopping: the best epoch's weights are judged.
        model = tuned_model(study.base, values, study.tune.batch_size, study.tune.max_epochs)
        scores, diverged = retrain_candidate(
            model, data, list(study.seeds), study.diverged_loss, study.loop, study.vmapped, stop,
            lambda seed: live_root / f"trial_{row['trial_id']}" / f"seed_{seed}")
        candidate = Candidate(str(row["trial_id"]), values, float(row["objective"]), tuple(study.seeds),
                              tuple(scores), tuple(diverged),
                              parameter_count(model.hidden_units, data.train.x.shape[1], data.num_classes),
                              space_position(values, study.tune))
        print(f"tune: candidate trial {candidate.trial_id} ({values}): val accuracy "
              f"{candidate.mean:.4f} +- {candidate.se:.4f} (SE) over {len(scores)} seeds"
              + (f", DIVERGED on seeds {list(diverged)}" if diverged else ""), flush=True)
        candidates.append(candidate)
    order, why = one_se_order(candidates)
    if not order:
        raise StudyError(f"tune: {why}; no tuned network to publish: narrow tune.spaces or raise tune.candidates")
    return candidates_table(candidates, order), candidates_record(order), why
