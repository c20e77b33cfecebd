"""One runner for the seeds of every training stage: train@<variant>, final, openset, transfer_train.

A stage describes what it trains as a SeedJob (how to load what training reads, train one seed or
all of them as one program, write a trained seed's outputs) and hands it to `run_seeds`, which does
what every such stage does, the same way for each:

- the seeds a killed run finished come back from the stage's checkpoint (nnstudy.training.resume),
  their outputs copied back into the workspace;
- the others train all together as one vmapped XLA program (the job's `vmapped`: seeds_together on
  the compiled loop), else side by side in processes of their own where one process would leave
  cores idle (nnstudy.training.processes, the job's `processes`), else one after another;
- each seed trains into its own DVCLive run; its outputs and its record are kept in the checkpoint
  as soon as it is done, and a line says so.

The stage then writes its own outputs from the records and completes the checkpoint. A job is
pickled to the helper processes, so it holds plain settings (dataclasses), not data or networks.
"""

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nnstudy.core import backend, paths
from nnstudy.core.files import adopt, handed_over
from nnstudy.core.params import ModelParams
from nnstudy.training.processes import ENV as SEED_PROCESSES, in_processes, seed_processes

if TYPE_CHECKING:  # Keras' modules: a stage imports them only once its backend is active
    from dvclive import Live

    from nnstudy.training.loop import EarlyStop, TrainResult
    from nnstudy.training.resume import SeedCheckpoint, SeedsCheckpoint, StageCheckpoints


@dataclass(frozen=True)
class Finished:
    """A trained seed, written: what the stage needs of it, and what a rerun gets back."""
    record: dict          # JSON-able: kept in the checkpoint, handed back by a rerun
    outputs: list[Path]   # the files and folders the seed wrote (relative paths), kept with the record
    line: str             # printed once the seed is kept


class SeedJob(Protocol):
    """What a training stage trains once per seed (see the module)."""
    name: str       # the stage's seeds in messages ("batch_online: 3 seeds in 3 processes ...")
    stage: str      # the stage, as its checkpoint is named ("train@batch_online")
    backend: str
    vmapped: bool   # all the seeds as one program (train_together)

    def load(self) -> Any:
        """What training reads (the data), loaded in every process that trains."""

    def live_dir(self, seed: int) -> Path: ...

    def processes(self, inputs: Any, seeds: int) -> int:
        """How many processes train `seeds` pending seeds side by side (1: one after another)."""

    def train(self, inputs: Any, seed: int, live: "Live", checkpoint: "SeedCheckpoint | None") -> Any: ...

    def train_together(self, inputs: Any, seeds: list[int], lives: list["Live"],
                       checkpoint: "SeedsCheckpoint | None") -> list[Any]: ...

    def finish(self, seed: int, live: "Live", result: Any) -> Finished:
        """Write the trained seed's outputs (and end its DVCLive run)."""


@dataclass(frozen=True)
class SeedRuns:
    records: dict[int, dict]  # every seed's record, in the stage's order of seeds
    trained: list[int]        # the seeds this run trained (the others were kept from a killed run)

    def values(self, key: str) -> list:
        """One field of every seed's record, in the order of the seeds."""
        return [record[key] for record in self.records.values()]

    @property
    def diverged(self) -> list[int]:
        """The seeds whose training diverged (records without the field: none)."""
        return [seed for seed, record in self.records.items() if record.get("diverged")]


def run_seeds(job: SeedJob, seeds: Sequence[int], checkpoints: "StageCheckpoints", inputs: Any) -> SeedRuns:
    """Every seed's record: kept from a killed run, or trained now (see the module)."""
    from nnstudy.training.loop import open_live

    records, pending = {}, []
    for seed in seeds:
        kept = checkpoints.finished(seed)
        if kept is None:
            pending.append(seed)
        else:
            records[seed] = kept

    processes = job.processes(inputs, len(pending))  # (a bad NNSTUDY_SEED_PROCESSES fails in any mode)
    if job.vmapped and pending:
        lives = [open_live(job.live_dir(seed)) for seed in pending]
        results = job.train_together(inputs, pending, lives, checkpoints.seeds_together())
        for seed, live, result in zip(pending, lives, results):
            records[seed] = _keep(job, seed, live, result, checkpoints)
    elif processes > 1:
        print(f"{job.name}: {len(pending)} seeds in {processes} processes side by side ({SEED_PROCESSES})", flush=True)
        folder = None if checkpoints.folder is None else str(checkpoints.folder)
        for seed, (record, files) in in_processes(_train_alone, pending, processes, job.backend, pickle.dumps(job),
                                                  folder):
            adopt(files)
            records[seed] = record
    else:
        for seed in pending:
            records[seed] = _train_seed(job, inputs, seed, checkpoints)
    return SeedRuns({seed: records[seed] for seed in seeds}, pending)


def _train_seed(job: SeedJob, inputs: Any, seed: int, checkpoints: "StageCheckpoints") -> dict:
    """Train one seed (resuming its checkpoint, if a killed run left one) and write its outputs."""
    from nnstudy.training.loop import open_live
    from nnstudy.training.models import enable_determinism

    enable_determinism(seed)
    live = open_live(job.live_dir(seed))
    result = job.train(inputs, seed, live, checkpoints.seed(seed))
    return _keep(job, seed, live, result, checkpoints)


def _keep(job: SeedJob, seed: int, live: "Live", result: Any, checkpoints: "StageCheckpoints") -> dict:
    finished = job.finish(seed, live, result)
    checkpoints.finish_seed(seed, finished.record, finished.outputs)
    print(finished.line, flush=True)  # after finish_seed: a stage killed once it is printed keeps the seed
    return finished.record


def _train_alone(seed: int, backend_name: str, job: bytes, checkpoint_folder: str | None) -> tuple[dict, dict]:
    """_train_seed in a helper process of the stage: the seed's record, and its finished files, which
    the stage's process adopts (they are replaced with its own outputs, or not at all)."""
    with backend.startup_imports():
        backend.activate(backend_name)
        # Unpickled only now: the job's settings may be Keras-side classes (EarlyStop), and Keras
        # must be imported on the stage's backend.
        seed_job: SeedJob = pickle.loads(job)
        from nnstudy.training.resume import StageCheckpoints

    checkpoints = StageCheckpoints.held_by_the_stage(seed_job.stage, checkpoint_folder)
    inputs = seed_job.load()
    with handed_over() as files:
        record = _train_seed(seed_job, inputs, seed, checkpoints)
    return record, files


def network_processes(model: ModelParams, rows: int, seeds: int) -> int:
    """How many processes train `seeds` seeds of an MLP on `rows` training examples (seed_processes)."""
    from nnstudy.training.loop import resolve_batch_size

    return seed_processes(resolve_batch_size(model.batch_size, rows), seeds, examples=rows * model.epochs)


@dataclass(frozen=True)
class NetworkSeeds:
    """A network of the MLP study trained once per seed on the prepared data (train@<variant>,
    final): everything but writing its outputs, which each stage does its own way (`finish`)."""
    name: str              # the network's name in paths: its variant, or "final"
    stage: str
    model: ModelParams
    backend: str
    loop: str
    vmapped: bool
    diverged_loss: float
    stop: "EarlyStop | None" = None

    def load(self) -> Any:
        from nnstudy.core.data import load_prepared

        return load_prepared()

    def live_dir(self, seed: int) -> Path:
        return paths.train_live_dir(self.name, seed)

    def label(self, seed: int) -> str:
        return f"{self.name} seed {seed}"

    def processes(self, inputs: Any, seeds: int) -> int:
        return network_processes(self.model, len(inputs.train.x), seeds)

    def train(self, inputs: Any, seed: int, live: "Live", checkpoint: "SeedCheckpoint | None") -> "TrainResult":
        from nnstudy.training.loop import train

        return train(self.model, inputs, seed, live, self.diverged_loss, self.loop, label=self.label(seed),
                     stop=self.stop, checkpoint=checkpoint)

    def train_together(self, inputs: Any, seeds: list[int], lives: list["Live"],
                       checkpoint: "SeedsCheckpoint | None") -> list["TrainResult"]:
        """Each seed with its own early stopping: a stopped seed's state stops changing."""
        from nnstudy.training.loop import train_seeds

        return train_seeds(self.model, inputs, seeds, lives, self.diverged_loss, [self.label(s) for s in seeds],
                           stop=self.stop, checkpoint=checkpoint)

    def finish(self, seed: int, live: "Live", result: "TrainResult") -> Finished:
        raise NotImplementedError("each stage writes its networks' outputs its own way")

    def record(self, result: "TrainResult") -> dict:
        """What train@ and final need of a trained seed once it is written."""
        return {"history": result.history, "fit_seconds": round(result.fit_seconds, 2), "built_at": result.built_at,
                "diverged": result.diverged}
