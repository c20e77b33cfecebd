"""A training run interrupted after some epochs and resumed equals the run never interrupted, to the bit;
a changed setting or input never resumes; a stage keeps the seeds it finished."""

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from nnstudy.training.loop import EarlyStop, open_live, train, train_seeds
from nnstudy.training.models import enable_determinism
from nnstudy.training.resume import EpochState, SeedCheckpoint, SeedsCheckpoint, StageCheckpoints, stage_key

SEED, EPOCHS = 2, 8
# Trained together (seeds_together) with model_params and early stopping on val_accuracy, patience 2:
# seed 2 stops after epoch 5, seed 1 runs all 8 (tests/test_seeds_together.py checks it).
SEEDS_TOGETHER = [1, 2]


class Killed(Exception):
    """Stands in for kill -9: raised in the middle of an epoch's callbacks, nothing after it runs."""


class DyingLive:
    """A real DVCLive run that raises when asked to step past epoch `at` (after logging it)."""

    def __init__(self, folder: Path, at: int):
        self.live, self.at = open_live(folder), at

    def __getattr__(self, name):
        return getattr(self.live, name)

    def next_step(self):
        self.live.next_step()
        if self.live.step >= self.at:
            raise Killed()


def model_params(study):
    # Dropout exercises the SeedGenerator state; L1 the regularisation losses; RMSprop its slots.
    # At this learning rate validation accuracy zigzags, so early stopping is waiting when the run dies.
    return replace(study.base, epochs=EPOCHS, batch_size=64, hidden_units=(32, 16), dropout=0.3,
                   optimizer="rmsprop", learning_rate=0.03, regularizer="l1", reg_alpha=1e-4)


def run(study, digits, folder: Path, loop: str, stop, checkpoint, live=None):
    enable_determinism(SEED)  # as the stage does before each seed
    live = live or open_live(folder)
    result = train(model_params(study), digits, SEED, live, 1e6, loop, label=f"seed {SEED}", stop=stop,
                   checkpoint=checkpoint)
    live.make_summary()
    return result, json.loads((folder / "metrics.json").read_text())


def waiting(values: list[float]) -> int:
    """Early stopping's wait after these epochs (val_accuracy: epochs since the last strict improvement)."""
    best, wait = -np.inf, 0
    for value in values:
        wait = 0 if value > best else wait + 1
        best = max(best, value)
    return wait


# The run dies while logging its last epoch (so the one before is the last saved): where early stopping
# has waited an epoch (patience 2: it stopped, or would have, one epoch later), so its wait, best value
# and best weights must come back. On JAX the compiled loop stops at epoch 5, fit runs all 8.
@pytest.mark.parametrize("loop", ["compiled", "fit"])
def test_interrupted_then_resumed_equals_uninterrupted(study, digits, tmp_path, loop, capsys):
    if loop == "compiled" and keras.backend.backend() != "jax":
        pytest.skip("the compiled loop is JAX only")
    stop = EarlyStop("val_accuracy", patience=2)
    plain, plain_live = run(study, digits, tmp_path / "plain", loop, stop, checkpoint=None)
    killed_at = plain.epochs_run

    checkpoint = SeedCheckpoint(tmp_path / "checkpoint", SEED)
    with pytest.raises(Killed):
        run(study, digits, tmp_path / "resumed", loop, stop, checkpoint,
            live=DyingLive(tmp_path / "resumed", at=killed_at))
    assert [p.name for p in checkpoint.files()] == [f"epoch_{killed_at - 1}.ckpt"]
    saved = checkpoint.load()
    assert saved.early_stop["wait"] == waiting(plain.history["val_accuracy"][:killed_at - 1])
    assert saved.best_weights is not None
    if keras.backend.backend() == "jax":
        assert saved.early_stop["wait"] == 1
    capsys.readouterr()
    resumed, resumed_live = run(study, digits, tmp_path / "resumed", loop, stop, checkpoint)
    assert f"seed {SEED}: resuming at epoch {killed_at} of {EPOCHS}" in capsys.readouterr().err

    # Bit for bit: weights before and after, every history value, the update count, DVCLive's summary.
    assert resumed.history == plain.history and len(plain.history["loss"]) == plain.epochs_run
    for name in plain.weights_after:
        assert np.array_equal(resumed.weights_before[name], plain.weights_before[name])
        assert np.array_equal(resumed.weights_after[name], plain.weights_after[name]), name
    assert resumed.weight_updates == plain.weight_updates and resumed.kept_epoch == plain.kept_epoch
    if loop == "compiled":  # it stopped early and restored a best epoch the killed run had found
        assert plain.kept_epoch < killed_at - 1 and plain.epochs_run < EPOCHS
    assert [keras.ops.convert_to_numpy(v).tobytes() for v in resumed.network.optimizer.variables] == \
        [keras.ops.convert_to_numpy(v).tobytes() for v in plain.network.optimizer.variables]
    assert resumed_live == plain_live and resumed_live["step"] == plain.epochs_run


def run_together(study, digits, folder: Path, stop, checkpoint, dying: tuple[int, int] | None = None):
    """SEEDS_TOGETHER trained as one program; `dying` (seed, epoch): that seed's DVCLive run dies there."""
    lives = [DyingLive(folder / str(seed), at=dying[1]) if dying and seed == dying[0] else open_live(folder / str(seed))
             for seed in SEEDS_TOGETHER]
    results = train_seeds(model_params(study), digits, SEEDS_TOGETHER, lives, 1e6,
                          [f"seed {seed}" for seed in SEEDS_TOGETHER], stop=stop, checkpoint=checkpoint)
    summaries = []
    for seed, live in zip(SEEDS_TOGETHER, lives):
        live.make_summary()
        summaries.append(json.loads((folder / str(seed) / "metrics.json").read_text()))
    return results, summaries


# Killed (2, 4): both seeds running, and seed 1 had handed over epoch 4 when seed 2 died logging it, so
# the file must hold epoch 3 for both (never seeds at two epochs). Killed (1, 7): seed 2 had stopped after
# epoch 5; it comes back stopped, with its early stopping's state, and its best weights restored at the end.
@pytest.mark.parametrize("dying", [(2, 4), (1, 7)])
def test_seeds_together_interrupted_then_resumed_equal_uninterrupted(study, digits, tmp_path, dying, capsys):
    if keras.backend.backend() != "jax":
        pytest.skip("the compiled loop is JAX only")
    stop = EarlyStop("val_accuracy", patience=2)
    plain, plain_live = run_together(study, digits, tmp_path / "plain", stop, checkpoint=None)
    assert [r.epochs_run for r in plain] == [EPOCHS, 5]
    dying_seed, killed_at = dying

    checkpoint = SeedsCheckpoint(tmp_path / "checkpoint")
    with pytest.raises(Killed):
        run_together(study, digits, tmp_path / "resumed", stop, checkpoint, dying=dying)
    assert [p.name for p in checkpoint.files()] == [f"epoch_{killed_at - 1}.ckpt"]
    saved = SeedsCheckpoint(tmp_path / "checkpoint").load(SEEDS_TOGETHER)
    assert saved.epoch == killed_at - 1
    assert saved.stopped == {1: False, 2: killed_at - 1 >= 5}
    assert saved.seeds[2].epoch == min(killed_at - 1, 5) and saved.seeds[1].epoch == killed_at - 1
    capsys.readouterr()
    resumed, resumed_live = run_together(study, digits, tmp_path / "resumed", stop, SeedsCheckpoint(tmp_path / "checkpoint"))
    err = capsys.readouterr().err
    assert f"seed 1: resuming at epoch {killed_at} of {EPOCHS}" in err
    assert ("seed 2: ended after epoch 5" if killed_at > 5 else f"seed 2: resuming at epoch {killed_at}") in err

    for one, again in zip(plain, resumed):  # bit for bit, seed by seed
        assert again.history == one.history
        assert again.weight_updates == one.weight_updates and again.kept_epoch == one.kept_epoch
        for name in one.weights_after:
            assert np.array_equal(again.weights_before[name], one.weights_before[name])
            assert np.array_equal(again.weights_after[name], one.weights_after[name]), name
        assert [keras.ops.convert_to_numpy(v).tobytes() for v in again.network.optimizer.variables] == \
            [keras.ops.convert_to_numpy(v).tobytes() for v in one.network.optimizer.variables]
    assert resumed_live == plain_live and [live["step"] for live in plain_live] == [EPOCHS, 5]


def test_checkpointing_changes_nothing(study, digits, tmp_path):
    """An uninterrupted run with checkpoints is the run without them (saving reads state, never moves it)."""
    loop = "compiled" if keras.backend.backend() == "jax" else "fit"
    plain, _ = run(study, digits, tmp_path / "plain", loop, None, checkpoint=None)
    saved, _ = run(study, digits, tmp_path / "saved", loop, None, SeedCheckpoint(tmp_path / "ck", SEED))
    assert saved.history == plain.history
    assert all(np.array_equal(saved.weights_after[n], w) for n, w in plain.weights_after.items())
    # The last epoch is never saved: the one before it is the checkpoint a kill after it resumes from.
    assert [p.name for p in SeedCheckpoint(tmp_path / "ck", SEED).files()] == [f"epoch_{EPOCHS - 1}.ckpt"]


def test_a_changed_setting_or_input_is_another_key(tmp_path, monkeypatch):
    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data").mkdir(parents=True)
    for repo in ("a", "b"):  # the same study in two workspaces (a queued experiment's temp copy)
        (tmp_path / repo / "data" / "train.npz").write_bytes(b"digits")
    monkeypatch.chdir(tmp_path / "a")
    key = stage_key("train@batch_mini", {"epochs": 10}, [Path("data")])
    assert stage_key("train@batch_mini", {"epochs": 10}, [Path("data")]) == key
    monkeypatch.chdir(tmp_path / "b")
    assert stage_key("train@batch_mini", {"epochs": 10}, [Path("data")]) == key
    assert stage_key("train@batch_mini", {"epochs": 11}, [Path("data")]) != key
    assert stage_key("train@batch_full", {"epochs": 10}, [Path("data")]) != key
    (tmp_path / "b" / "data" / "train.npz").write_bytes(b"digitz")
    assert stage_key("train@batch_mini", {"epochs": 10}, [Path("data")]) != key


def test_a_changed_setting_does_not_resume(study, digits, tmp_path, monkeypatch, capsys):
    """Checkpoints of one setting are invisible under another: the run starts from epoch 1."""
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    loop = "compiled" if keras.backend.backend() == "jax" else "fit"
    killed = StageCheckpoints.open("train@x", {"learning_rate": 0.001}, [])
    with pytest.raises(Killed):
        run(study, digits, tmp_path / "a", loop, None, killed.seed(SEED), live=DyingLive(tmp_path / "a", at=3))
    assert killed.seed(SEED).load().epoch == 2
    about = json.loads((killed.folder / "about.json").read_text())  # who left the folder
    assert about["stage"] == "train@x" and about["workspace"] == str(Path.cwd()) and about["pid"] == os.getpid()
    killed.complete()  # releases the lock, as the killed process's exit would...
    assert not killed.folder.exists()  # ...and, on completion, its checkpoints go
    killed = StageCheckpoints.open("train@x", {"learning_rate": 0.001}, [])
    with pytest.raises(Killed):
        run(study, digits, tmp_path / "a", loop, None, killed.seed(SEED), live=DyingLive(tmp_path / "a", at=3))
    killed._lock.close()  # the process dies: its lock goes with it
    changed = StageCheckpoints.open("train@x", {"learning_rate": 0.002}, [])
    assert changed.folder != killed.folder and changed.seed(SEED).load() is None
    capsys.readouterr()
    run(study, digits, tmp_path / "b", loop, None, changed.seed(SEED))
    assert "resuming" not in capsys.readouterr().err


def test_a_stage_keeps_its_finished_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    outputs = [Path("models/v/seed_1.keras"), Path("metrics/train/v/seed_1")]
    outputs[0].parent.mkdir(parents=True)
    outputs[0].write_bytes(b"model bytes")
    outputs[1].mkdir(parents=True)
    (outputs[1] / "metrics.json").write_text('{"step": 4}')
    first = StageCheckpoints.open("train@v", {"seeds": [1, 2]}, [])
    first.finish_seed(1, {"history": {"loss": [1.0, float("nan")]}}, outputs)
    first._lock.close()  # killed before seed 2 finished
    for path in ("models", "metrics"):  # DVC deletes a stage's outputs before running it again
        shutil.rmtree(path)

    rerun = StageCheckpoints.open("train@v", {"seeds": [1, 2]}, [])
    record = rerun.finished(1)
    assert np.isnan(record["history"]["loss"][1]) and rerun.finished(2) is None
    assert outputs[0].read_bytes() == b"model bytes" and (outputs[1] / "metrics.json").read_text() == '{"step": 4}'
    assert "seed 1 kept from the interrupted run" in capsys.readouterr().err
    # A second process with the same key while the first runs: no checkpoints rather than shared ones.
    assert not StageCheckpoints.open("train@v", {"seeds": [1, 2]}, []).active
    rerun.complete()
    assert not rerun.folder.exists() and not any((tmp_path / "cache" / "resume").iterdir())


def test_a_kept_seed_whose_files_are_gone_trains_again(tmp_path, monkeypatch, capsys):
    """A record whose files went away (a cleaned cache): the seed is pending again, not a crash."""
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    output = Path("models/v/seed_1.keras")
    output.parent.mkdir(parents=True)
    output.write_bytes(b"model bytes")
    first = StageCheckpoints.open("train@v", {"seeds": [1]}, [])
    first.finish_seed(1, {"history": {}}, [output])
    first._lock.close()  # killed
    (first.folder / "seed_1" / "files" / output).unlink()

    rerun = StageCheckpoints.open("train@v", {"seeds": [1]}, [])
    assert rerun.finished(1) is None
    assert "seed 1's checkpoint lacks" in capsys.readouterr().err
    assert not (rerun.folder / "seed_1" / "record.json").exists()
    # Completing renames the folder away before deleting it: a kill inside the deletion leaves nothing
    # under the key (that half-deleted seed came from one).
    deleted = []
    monkeypatch.setattr(shutil, "rmtree", lambda path, **_: deleted.append(Path(path)))
    rerun.complete()
    assert not rerun.folder.exists() and deleted[0].name.startswith(f"{rerun.folder.name}.deleting-")


def test_a_lock_file_deleted_under_the_lock_is_taken_on_its_new_file(tmp_path, monkeypatch):
    """A stage that completes deletes its lock file: a process that opened the old file just before
    must not hold it beside the one that created the new file (two holders of one folder: one
    deleted the seeds the other was copying back)."""
    import fcntl

    from nnstudy.training import resume

    path = tmp_path / "key.lock"
    real, state = fcntl.flock, {}

    def completed_meanwhile(handle, flags):
        if not state:  # between this process' open and its lock: the holder completes, another stage starts
            state["raced"] = True
            path.unlink()
            state["other"] = resume._hold(path)
        return real(handle, flags)

    path.touch()
    monkeypatch.setattr(resume.fcntl, "flock", completed_meanwhile)
    assert resume._hold(path) is None and state["other"] is not None
    state["other"].close()
    assert resume._hold(path) is not None  # released: free again


def test_resume_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path))
    monkeypatch.setenv("NNSTUDY_RESUME", "0")
    stage = StageCheckpoints.open("train@v", {}, [])
    assert not stage.active and stage.seed(1) is None and stage.finished(1) is None
    stage.complete()
    assert not (tmp_path / "resume").exists() or not any((tmp_path / "resume").iterdir())


# --- the transfer study's two phases (Keras fit, early stopping per phase) ---

PHASE_EPOCHS = 4


@pytest.fixture(scope="module")
def transfer_task(digits):
    from nnstudy.transfer.training import Task

    images = lambda split, n: split.x[:n].reshape(-1, 8, 8, 1)  # noqa: E731
    return Task(images(digits.train, 240), digits.train.labels[:240], images(digits.val, 80),
                digits.val.labels[:80], num_classes=10)


def transfer_run(study, task, checkpoint=None, killed_at=None):
    """The `partial` recipe on 8x8 digits (a random base stands in for the source one: two phases all the
    same), augmented (the augmentation layers' SeedGenerator state) and with dropout."""
    from nnstudy.transfer.training import train_recipe

    def log(epoch, logs):
        if epoch + 1 == killed_at:
            raise Killed()

    recipe = replace(study.transfer.base, model="cnn_small", weights="source", input_size=8, augment=True,
                     epochs=PHASE_EPOCHS, patience=1, batch_size=32, unfreeze=1.0)
    enable_determinism(SEED)
    # Contrast only: rotation and zoom cost ~30 ms a batch on CPU, and their SeedGenerators are the same kind.
    return train_recipe(recipe, task, augmentations=("contrast",), log=log,
                        checkpoint=checkpoint)


@pytest.fixture(scope="module")
def transfer_plain(study, transfer_task):
    return transfer_run(study, transfer_task)


@pytest.mark.parametrize("where", ["head", "fine_tune start", "fine_tune"])
def test_a_transfer_run_resumes_in_its_phase(study, transfer_task, transfer_plain, tmp_path, where, capsys):
    phases = transfer_plain.history["phase"]
    first_fine_tune = phases.index("fine_tune") + 1  # 1-based, over both phases
    assert first_fine_tune >= 3 and len(phases) >= first_fine_tune + 1
    killed_at = {"head": 2, "fine_tune start": first_fine_tune, "fine_tune": first_fine_tune + 1}[where]
    checkpoint = SeedCheckpoint(tmp_path, SEED)
    with pytest.raises(Killed):
        transfer_run(study, transfer_task, checkpoint, killed_at)
    capsys.readouterr()
    resumed = transfer_run(study, transfer_task, checkpoint)
    phase, epoch = ("head", 2) if where == "head" else ("fine_tune", 1 if where == "fine_tune start" else 2)
    assert f"resuming the {phase} phase at its epoch {epoch}" in capsys.readouterr().out

    assert resumed.history == transfer_plain.history
    assert resumed.phases == transfer_plain.phases
    plain_state = [keras.ops.convert_to_numpy(v).tobytes() for v in transfer_plain.network.variables]
    assert [keras.ops.convert_to_numpy(v).tobytes() for v in resumed.network.variables] == plain_state


# --- the open-set stage's second network, the two-headed one (Keras fit, sample weights per output) ---

class DyingCheckpoint(SeedCheckpoint):
    """Dies right after saving epoch `at`: the kill comes in the epoch after it."""

    def __init__(self, folder: Path, seed: int, at: int):
        super().__init__(folder, seed)
        self.at = at

    def save(self, state):
        super().save(state)
        if state.epoch == self.at:
            raise Killed()


def test_the_known_head_resumes(digits, tmp_path, capsys):
    from nnstudy.probing.openset import build_known_head_model, fit_known_head

    known = digits.train.labels < 5
    val_known = digits.val.labels < 5

    def fit(checkpoint=None):
        network = build_known_head_model((16,), "relu", 5, input_dim=64, seed=SEED, learning_rate=0.01)
        history = fit_known_head(network, digits.train.x[known], digits.train.y[known][:, :5], digits.train.x[~known],
                                 epochs=5, batch_size=64, seed=SEED, checkpoint=checkpoint,
                                 validation=(digits.val.x[val_known], digits.val.y[val_known][:, :5],
                                             digits.val.x[~val_known]))
        return history, [keras.ops.convert_to_numpy(v).tobytes() for v in network.variables]

    plain = fit()
    with pytest.raises(Killed):
        fit(DyingCheckpoint(tmp_path, SEED, at=2))
    capsys.readouterr()
    assert fit(SeedCheckpoint(tmp_path, SEED)) == plain
    assert "resuming the known head at epoch 3 of 5" in capsys.readouterr().out


def test_stale_checkpoints_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path))
    held = StageCheckpoints.open("train@held", {}, [])   # a stage running now: never pruned
    old = StageCheckpoints.open("train@old", {}, [])
    old.seed(1).save(EpochState(1, [np.zeros(3)], {}, 0.0))
    old._lock.close()  # killed long ago
    month = time.time() - 31 * 86400
    for folder in (held.folder, old.folder):
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder, (month, month))
    killed_deleting = old.folder.with_name(f"{old.folder.name}.deleting-123")  # a deletion killed midway
    (killed_deleting / "seed_1").mkdir(parents=True)
    StageCheckpoints.open("train@new", {}, [])
    assert held.folder.exists() and not old.folder.exists() and not killed_deleting.exists()
