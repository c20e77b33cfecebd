"""Faults and hand-made damage: what a hostile new user does to a clone, and the one line each gets.

Real faults, not imitations: a full disk is a small tmpfs and a read-only folder a read-only bind
mount, each in a private mount namespace (`unshare -m`, root only; skipped otherwise), permission
denied is a folder the user `nobody` may not write, and a venv without pip is what `venv
--without-pip` builds. Each stage runs as `python -m stages.<name>` in a throwaway folder on
scikit-learn's 8x8 digits, and fails before it trains, so the whole file takes seconds.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnstudy.core import files, params, paths
from nnstudy.core.data import load_raw
from nnstudy.core.errors import DataError, ParamError, SetupError, machine_fault

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# md5 of the files `fetch` and `prepare` write for scikit-learn's digits (test and validation
# fractions 0.2, seed 1). They depend only on the arrays: the same under Debian's own Python 3.11.2
# (apt's python3.11) as under the 3.11.7 that run.py's venv uses, checked below when it is installed.
DIGITS_MD5 = {
    "raw/dataset.npz": "c815506f1ee0ca7aae2f570dd072aabf",
    "prepared/train.npz": "94e30dcdae8b617c7c866378bdcf3b24",
    "prepared/val.npz": "1504bd105a922a2aa4c566e8f063407f",
    "prepared/test.npz": "af75349a5a24802ad51854ebd90006e7",
}
HASH_SCRIPT = """
import hashlib, json, sys
from pathlib import Path
from nnstudy.core.data import fetch, load_raw, prepare, save_prepared, save_raw
from nnstudy.core.params import DataParams
out = Path(sys.argv[1])
save_raw(fetch(DataParams("digits", "", "", "", 0.2, 0.2)), out / "raw" / "dataset.npz")
save_prepared(prepare(load_raw(out / "raw" / "dataset.npz"), 0.2, 0.2, 1), out / "prepared")
print(json.dumps({p.relative_to(out).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
                  for p in sorted(out.rglob("*.npz"))}))
"""


# --- helpers ---

def small_params() -> dict:
    """params.yaml on the digits: one variant, one seed, one epoch (the stages here fail before training)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["dataset"] = "digits"
    raw.update(epochs=1, seeds=[1])
    raw["variants"] = {"batch_mini": {}, "batch_full": {"batch_size": "full"}}
    raw["stats"]["questions"] = {"Batch size": ["batch_mini", "batch_full"]}
    raw["stats"]["paired_steps"] = [["batch_mini", "batch_full"]]
    return raw


def stage(folder: Path, name: str, *args: str, user: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """`python -m stages.<name>` run in folder (the repository's code on PYTHONPATH)."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1",
                       NNSTUDY_CACHE=str(folder / ".cache")) | env
    command = [PYTHON, "-m", f"stages.{name}", *args]
    if user is not None:
        import pwd

        account = pwd.getpwnam(user)
        command = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", *command]
    return subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=300)


PROGRESS = re.compile(r"^  .+: epoch \d+/\d+ .*\(\d+ s, ETA \d+ s\)$")  # nnstudy.training.loop.Progress


def one_line(done: subprocess.CompletedProcess) -> str:
    """The stage failed with exit 2 and exactly one line on stderr: `error: ...`. A training
    progress line before it is not noise: on a loaded machine an epoch outlasts Progress' interval."""
    lines = [line for line in done.stderr.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def in_namespace(script: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """A shell script as root in a private mount namespace: its mounts vanish with it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m fails here (a container without CAP_SYS_ADMIN?): {probe.stderr.strip()}")
    environment = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-eu", "-c", script],
                          env=environment, capture_output=True, text=True, timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder and its md5: the outputs before and after."""
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".cache" not in p.parts}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".tmp-*")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A study folder after fetch, prepare and settings (the digits)."""
    folder = tmp_path_factory.mktemp("study")
    (folder / "params.yaml").write_text(yaml.safe_dump(small_params(), sort_keys=False))
    for name in ("fetch", "prepare", "settings"):
        done = stage(folder, name)
        assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def study(prepared, tmp_path) -> Path:
    """A fresh copy of the prepared study, with "old" outputs of train@batch_mini to keep."""
    folder = tmp_path / "study"
    shutil.copytree(prepared, folder)
    for path in (paths.model_file("batch_mini", 1), paths.curve_file("accuracy", "batch_mini"),
                 paths.curve_file("loss", "batch_mini"), paths.timing_file("train_batch_mini")):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(f"old {path.name}\n")
    return folder


# --- atomic outputs ---

def test_a_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "table.json"
    files.write_text(target, "old\n")
    with pytest.raises(RuntimeError), files.atomic(target) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old\n" and os.listdir(target.parent) == ["table.json"]


def test_a_failed_stage_leaves_every_output_as_it_was(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b" / "b.json"
    files.write_text(first, "old a\n")
    with pytest.raises(RuntimeError), files.all_or_nothing():
        files.write_text(first, "new a\n")
        files.write_text(second, "new b\n")
        raise RuntimeError("the third output fails")
    assert first.read_text() == "old a\n" and not second.exists() and leftovers(tmp_path) == []
    with files.all_or_nothing():
        files.write_text(first, "new a\n")
        files.write_text(second, "new b\n")
    assert first.read_text() == "new a\n" and second.read_text() == "new b\n" and leftovers(tmp_path) == []


def test_keras_and_matplotlib_accept_the_temporary_names(tmp_path):
    import keras
    import matplotlib.pyplot as plt

    from nnstudy.report.plots import save

    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    files.save_model(network, tmp_path / "m" / "seed_1.keras")
    files.save_model(network, tmp_path / "m" / "seed_1.weights.h5")
    save(plt.figure(), tmp_path / "f" / "figure.png")
    assert keras.saving.load_model(tmp_path / "m" / "seed_1.keras").count_params() == network.count_params()
    assert (tmp_path / "m" / "seed_1.weights.h5").stat().st_size > 0
    assert (tmp_path / "f" / "figure.png").read_bytes()[:4] == b"\x89PNG" and leftovers(tmp_path) == []


def test_npz_written_with_fixed_metadata_reads_back(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "name": np.array("digits"),
              "empty": np.zeros((0, 3), np.uint8), "fortran": np.asfortranarray(np.ones((2, 3))),
              "big_endian": np.arange(4, dtype=">i4")}
    files.write_npz(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert list(npz.files) == list(arrays)
        for key, array in arrays.items():
            assert npz[key].shape == array.shape and np.array_equal(npz[key], array)
    import zipfile

    for info in zipfile.ZipFile(tmp_path / "a.npz").infolist():
        assert (info.date_time, info.compress_type, info.extra) == ((1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED, b"")


def test_data_bytes_are_the_committed_constants(tmp_path):
    done = subprocess.run([PYTHON, "-c", HASH_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == DIGITS_MD5


DEBIAN_PYTHON = Path("/usr/bin/python3.11")


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="Debian's own python3.11 (apt) is not installed")
def test_data_bytes_are_the_same_under_debians_python(tmp_path):
    """Another patch release (Debian's 3.11.2) with the venv's packages writes the same bytes."""
    venv_site = next(Path(sys.prefix).glob("lib/python3.11/site-packages"))
    version = subprocess.run([str(DEBIAN_PYTHON), "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    if version == sys.version.split()[0]:
        pytest.skip(f"{DEBIAN_PYTHON} is this same Python {version}")
    done = subprocess.run([str(DEBIAN_PYTHON), "-c", HASH_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{venv_site}"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == DIGITS_MD5, f"under Python {version}"


# --- the machine's faults: one line, exit 2, outputs untouched ---

def run_in_namespace(folder: Path, tmp_path: Path, mount: str, command: str) -> subprocess.CompletedProcess:
    """command run in folder after the shell lines `mount` (in a private mount namespace); its
    exit code and output come back, and a copy of the folder as it was left goes to tmp_path/after."""
    out = tmp_path / "out"
    out.mkdir()
    done = in_namespace(f"""
        {mount}
        cd {folder}
        set +e
        NNSTUDY_CACHE={tmp_path}/cache {command} > {out}/stdout 2> {out}/stderr
        echo $? > {out}/rc
        cp -a {folder}/. {tmp_path}/after/
    """)
    assert done.returncode == 0, done.stderr
    return subprocess.CompletedProcess(command, int((out / "rc").read_text()), (out / "stdout").read_text(),
                                       (out / "stderr").read_text())


def test_prepare_on_a_full_disk_leaves_the_old_splits(prepared, study, tmp_path):
    """The issue's probe: a full disk once left a truncated train.npz beside the old val and test."""
    for name in ("train", "val", "test"):
        (study / paths.prepared_split(name)).write_bytes(f"old {name}\n".encode())
    page = os.sysconf("SC_PAGE_SIZE")
    used = sum(-(-p.stat().st_size // page) for p in study.rglob("*") if p.is_file() and ".cache" not in p.parts)
    train = -(-(prepared / paths.prepared_split("train")).stat().st_size // page)
    # Room for the study and the new train split, not for val and test as well: the stage fails half-way.
    disk = tmp_path / "disk"
    disk.mkdir()
    before = snapshot(study)
    done = run_in_namespace(disk, tmp_path, f"mount -t tmpfs -o size={(used + train + 2) * page} tmpfs {disk}\n"
                            f"cp -a {study}/. {disk}/", f"{PYTHON} -m stages.prepare")
    line = one_line(done)
    assert line.startswith("error: data/prepared/") and ".npz: no space left on the device; " in line, line
    assert snapshot(tmp_path / "after") == before and leftovers(tmp_path / "after") == []


def read_only(folder: Path) -> str:
    """Shell lines that make folder a read-only bind mount of itself."""
    return f"mount --bind {folder} {folder}\nmount -o remount,bind,ro {folder}"


def test_train_with_a_read_only_curves_folder_fails_before_training(study, tmp_path):
    """The issue's probe: it trained, rewrote models/ and results/weights/, then died on the curves."""
    before = snapshot(study)
    done = run_in_namespace(study, tmp_path, read_only(study / "plots" / "curves" / "accuracy"),
                            f"{PYTHON} -m stages.train batch_mini")
    line = one_line(done)
    assert line.startswith("error: plots/curves/accuracy: read-only file system; "), line
    after = tmp_path / "after"
    assert snapshot(after) == before and not (after / paths.TRAIN_DIR / "batch_mini").exists()


def test_settings_into_a_read_only_folder_fails(study, tmp_path):
    """The issue's probe: `stages.settings` printed success over stale files it could not remove."""
    (study / paths.settings_file("removed_variant")).write_text("{}\n")
    before = snapshot(study)
    done = run_in_namespace(study, tmp_path, read_only(study / paths.SETTINGS_DIR), f"{PYTHON} -m stages.settings")
    line = one_line(done)
    assert line.startswith("error: results/settings/batch_mini.json: read-only file system"), line
    assert snapshot(tmp_path / "after") == before


def test_train_on_a_full_disk_says_one_line_without_shutdown_noise(study, tmp_path):
    """A write fails after DVCLive (and with it dvc and dulwich) is loaded: one line, no "Exception
    ignored ... sys.meta_path is None" blocks, the old model, curves and timing kept."""
    disk = tmp_path / "disk"
    disk.mkdir()
    page = os.sysconf("SC_PAGE_SIZE")
    used = sum(-(-p.stat().st_size // page) for p in study.rglob("*") if p.is_file() and ".cache" not in p.parts)
    # Room for the study and DVCLive's few small files, not for a saved model (tens of kB).
    before = snapshot(study)
    done = run_in_namespace(disk, tmp_path, f"mount -t tmpfs -o size={(used + 6) * page} tmpfs {disk}\n"
                            f"cp -a {study}/. {disk}/", f"{PYTHON} -m stages.train batch_mini")
    line = one_line(done)
    assert line.startswith(f"error: {paths.model_file('batch_mini', 1)}: no space left on the device; "), line
    after = snapshot(tmp_path / "after")
    kept = [paths.model_file("batch_mini", 1), paths.curve_file("accuracy", "batch_mini"),
            paths.timing_file("train_batch_mini")]
    assert all(after[path.as_posix()] == before[path.as_posix()] for path in kept)
    assert leftovers(tmp_path / "after") == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run a stage as the user nobody")
def test_permission_denied_is_one_line(prepared):
    """As an ordinary user (nobody) with a folder it may not write: one line, nothing trained."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="nnstudy-faults-"))
    try:
        shutil.copytree(prepared, folder, dirs_exist_ok=True)
        subprocess.run(["chown", "-R", "nobody", str(folder)], check=True)
        folder.chmod(0o755)
        locked = folder / paths.model_dir("batch_mini")
        locked.mkdir(parents=True)
        locked.chmod(0o555)
        done = stage(folder, "train", "batch_mini", user="nobody")
        line = one_line(done)
        assert line.startswith(f"error: {paths.model_dir('batch_mini')}: permission denied; "), line
        assert not (folder / paths.TRAIN_DIR / "batch_mini").exists()
    finally:
        shutil.rmtree(folder)


def test_machine_faults_name_the_path_the_cause_and_the_remedy():
    import errno

    for code, cause, remedy in [(errno.EACCES, "permission denied", "chmod u+w"),
                                (errno.ENOSPC, "no space left on the device", "free some space"),
                                (errno.EROFS, "read-only file system", "remount it read-write"),
                                (errno.EDQUOT, "disk quota exceeded", "within your quota")]:
        message = machine_fault(OSError(code, os.strerror(code), "models/x.keras"))
        assert message.startswith(f"models/x.keras: {cause}; ") and remedy in message, message
    assert machine_fault(OSError(errno.EIO, "I/O error", "x")) is None  # not the user's to fix: a traceback


# --- the environment: HOME and NNSTUDY_CACHE ---

@pytest.mark.parametrize("env, expected", [
    ({"NNSTUDY_CACHE": "/etc/hostname"}, "NNSTUDY_CACHE=/etc/hostname: is a file, not a folder"),
    ({"NNSTUDY_CACHE": "/proc/nnstudy"}, "NNSTUDY_CACHE=/proc/nnstudy: cannot be written"),
    ({"NNSTUDY_CACHE": "", "HOME": ""}, "no home folder for the study's cache (HOME is '', not an absolute path)"),
])
def test_an_unusable_cache_is_one_line(study, env, expected):
    done = stage(study, "train", "batch_mini", **env)
    assert expected in one_line(done)


def test_an_unset_home_falls_back_or_says_what_to_set(monkeypatch):
    monkeypatch.delenv("NNSTUDY_CACHE", raising=False)
    monkeypatch.setenv("HOME", "relative/home")
    with pytest.raises(SetupError, match="set HOME, or NNSTUDY_CACHE"):
        paths.cache_dir()
    monkeypatch.delenv("HOME")  # Python then asks the user database, which knows this user's home
    assert paths.cache_dir().is_dir()


# --- hand-edited settings files, wrong names, garbage data ---

SETTINGS_PROBES = [
    (lambda s: s | {"seeds": []}, "seeds: must be a list of at least 1"),
    (lambda s: s | {"seeds": "abc"}, "seeds: must be a list"),
    (lambda s: s | {"seeds": [1, 1]}, "seeds: each seed may appear once"),
    (lambda s: s | {"backend": "pytorch"}, "backend: 'pytorch' is not one of: jax, tensorflow"),
    (lambda s: s | {"backend": "tensorflow", "loop": "compiled"}, "loop: 'compiled' runs on the JAX backend only"),
    (lambda s: s | {"loop": "bogus"}, "loop: 'bogus' is not one of: compiled, fit"),
    (lambda s: s | {"diverged_loss": "big"}, "diverged_loss: must be a number"),
    (lambda s: {k: v for k, v in s.items() if k != "model"}, "missing key(s): model"),
    (lambda s: s | {"extra": 1}, "unknown key 'extra'"),
    (lambda s: s | {"model": s["model"] | {"epochs": 0}}, "model.epochs: must be a whole number >= 1"),
    (lambda s: s | {"model": s["model"] | {"output_activation": "tanh"}},
     "model: loss 'categorical_crossentropy' needs output_activation 'softmax'"),
    (lambda s: s | {"variant": "batch_full"}, "variant: the file is for 'batch_full'"),
    (lambda s: [s], "must be a mapping"),
]


@pytest.mark.parametrize("edit, expected", SETTINGS_PROBES)
def test_a_hand_edited_settings_file_is_checked_in_full(prepared, monkeypatch, edit, expected):
    monkeypatch.chdir(prepared)
    path = paths.settings_file("batch_mini")
    original = path.read_text()
    try:
        path.write_text(json.dumps(edit(json.loads(original))))
        with pytest.raises(ParamError) as caught:
            params.read_settings("batch_mini")
    finally:
        path.write_text(original)
    assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value), caught.value


def test_a_bad_settings_file_stops_train_with_one_line(study):
    path = study / paths.settings_file("batch_mini")
    path.write_text(path.read_text().replace('"loop": "compiled"', '"loop": "bogus"'))
    line = one_line(stage(study, "train", "batch_mini"))
    assert f"{paths.settings_file('batch_mini')}: loop: 'bogus' is not one of" in line


def test_an_unknown_variant_gets_the_variants_params_yaml_defines(study):
    line = one_line(stage(study, "train", "no_such_variant"))
    assert "unknown variant 'no_such_variant'; params.yaml defines: batch_mini, batch_full" in line


def test_a_hand_edited_transfer_settings_file_is_checked_in_full(prepared, monkeypatch):
    from nnstudy.transfer import params as transfer_params
    from nnstudy.transfer.settings import read_settings

    monkeypatch.chdir(prepared)
    study = params.load()
    name = next(iter(study.transfer.runs))
    good = transfer_params.run_settings(study.transfer, name, study.seeds, study.backend, study.seed)
    pretrain = transfer_params.pretrain_settings(study.transfer, study.seeds, study.backend)
    path = paths.transfer_settings_file(name)
    for settings, expected in [(good | {"seeds": []}, "seeds: must be a list"),
                               (good | {"backend": "pytorch"}, "backend: 'pytorch' is not one of"),
                               ({k: v for k, v in good.items() if k != "recipe"}, "missing key(s): recipe"),
                               (good | {"augment_factor": 2}, "augment_factor: must be <= 1.0")]:
        files.write_text(path, json.dumps(settings))
        with pytest.raises(ParamError) as caught:
            read_settings(name)
        assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value), caught.value
    files.write_text(path, json.dumps(good))
    assert read_settings(name)[1] == study.transfer.runs[name].recipe
    files.write_text(paths.transfer_settings_file("pretrain"), json.dumps(pretrain | {"needed": "yes"}))
    with pytest.raises(ParamError, match="needed: must be true or false"):
        read_settings("pretrain")
    with pytest.raises(ParamError, match="unknown transfer run 'transfer_nothing'"):
        read_settings("transfer_nothing")


def test_a_garbage_dataset_gets_one_line_without_pickle_advice(tmp_path):
    path = tmp_path / "dataset.npz"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(DataError, match="not an .npz file") as caught:
        load_raw(path)
    assert "pickle" not in str(caught.value)
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="holds Python objects") as caught:
        load_raw(path)
    assert "allow_pickle" not in str(caught.value)


# --- the backend: every stage module imports without Keras ---

def test_every_stage_imports_without_keras_whatever_keras_backend_says(study):
    """KERAS_BACKEND=torch in the shell and the study on JAX: importing a stage loads no backend;
    each activates the study's backend itself before it imports Keras."""
    modules = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(f'stages.{name}')\n"
            "    loaded = [m for m in ('keras', 'tensorflow', 'torch') if m in sys.modules]\n"
            "    assert not loaded, f'stages.{name} imports {loaded}'\n")
    done = subprocess.run([PYTHON, "-c", code], cwd=study, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch"))
    assert done.returncode == 0, done.stderr
    assert "transfer_summarize" in modules and len(modules) >= 19


# --- run.py repairs its venv ---

def offline_environment() -> dict[str, str]:
    """pip pointed at an index nothing answers (no config file, no local wheel folders)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "VIRTUAL_ENV"}
    return keep | {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                   "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}


def run_setup(venv: Path, requirements: Path) -> subprocess.CompletedProcess:
    """run.py's set-up of venv from requirements, offline."""
    code = (f"import sys, run; from pathlib import Path; "
            f"sys.exit(run.setup(Path({str(venv)!r}), Path({str(requirements)!r})))")
    return subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=offline_environment())


def test_run_py_rebuilds_a_venv_without_pip_and_says_one_line_offline(tmp_path):
    """The issue's probe: a venv left with a python but no pip made every run die with a traceback."""
    env, requirements = tmp_path / "venv", tmp_path / "requirements.txt"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(env)], check=True)
    requirements.write_text("six==1.17.0\n")
    done = run_setup(env, requirements)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("run.py: `pip install -r ") and "offline?" in lines[0], lines[0]
    assert "has no working pip; building it again" in done.stdout
    assert subprocess.run([str(env / "bin" / "python"), "-m", "pip", "--version"], capture_output=True).returncode == 0
    assert not (env / "requirements.sha256").exists()  # the install did not finish: no stamp
    # Nothing left to download: the install completes, is stamped, and the next run skips it.
    requirements.write_text("# nothing\n")
    done = run_setup(env, requirements)
    assert done.returncode == 0, done.stderr
    assert (env / "requirements.sha256").exists()
    assert run_setup(env, requirements).stdout == ""


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="Debian's own python3.11 (apt) is not installed")
def test_run_py_names_the_missing_venv_package(tmp_path):
    """Debian's python3.11 without python3.11-venv (its ensurepip hidden under an empty tmpfs):
    one line naming the package, and no half-built venv left behind."""
    ensurepip = Path("/usr/lib/python3.11/ensurepip")
    if not ensurepip.is_dir():
        pytest.skip("python3.11-venv is not installed: nothing to hide")
    env, requirements = tmp_path / "venv", tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    code = f"import sys, run; from pathlib import Path; sys.exit(run.setup(Path('{env}'), Path('{requirements}')))"
    done = in_namespace(f"mount -t tmpfs -o size=64k tmpfs {ensurepip}\ncd {ROOT}\n"
                        f"set +e\n{DEBIAN_PYTHON} -c \"{code}\" 2> {tmp_path}/stderr\necho $? > {tmp_path}/rc")
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "stderr").read_text().strip().splitlines()
    assert (tmp_path / "rc").read_text().strip() == "2" and len(lines) == 1, lines
    assert "sudo apt-get install python3.11-venv" in lines[0], lines[0]
    assert not env.exists()


# --- issue 29: messages that name their path ---

def test_a_damaged_npz_header_is_the_one_line_of_other_damage(tmp_path):
    """The issue's probe: a flipped byte in an array's header (False -> Galse) printed `<ast.Name object
    at 0x…>`; numpy's other header complaints quote the header, newline and all."""
    from nnstudy.core.data import load_split

    split = tmp_path / "prepared"
    files.write_npz(split / "train.npz", x=np.zeros((1000, 64), np.float32), y=np.zeros(1000, np.int64),
                    image_shape=np.array([8, 8]))
    whole = (split / "train.npz").read_bytes()
    for old, new in [(b"False", b"Galse"), (b"'descr'", b"'descr&"), (b"'shape'", b"'rhape'")]:
        (split / "train.npz").write_bytes(whole.replace(old, new, 1))
        with pytest.raises(DataError) as caught:
            load_split("train", split)
        message = str(caught.value)
        assert message == (f"{split / 'train.npz'}: corrupt or truncated (an array's header is damaged); "
                           "run `dvc repro` (the prepare stage writes it)"), message


def test_a_relative_cache_is_refused_before_it_is_made(study):
    line = one_line(stage(study, "train", "batch_mini", NNSTUDY_CACHE="relative/cache"))
    assert "NNSTUDY_CACHE=relative/cache: not an absolute path; set it to one" in line, line
    assert not (study / "relative").exists()


def test_run_py_resolves_a_relative_cache_once_and_says_so(monkeypatch, tmp_path):
    import run as run_py

    monkeypatch.chdir(tmp_path)
    env = {"NNSTUDY_CACHE": "relative/cache"}
    assert run_py.absolute_cache(env) == f"run.py: NNSTUDY_CACHE=relative/cache is relative: using {tmp_path}/relative/cache"
    assert env["NNSTUDY_CACHE"] == f"{tmp_path}/relative/cache"
    assert run_py.absolute_cache(env) is None and run_py.absolute_cache({}) is None


def test_a_full_cache_names_the_cache_and_what_to_clean_there(monkeypatch, tmp_path):
    import errno

    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    message = machine_fault(OSError(errno.ENOSPC, "No space left on device", f"{tmp_path}/cache/resume/k/seed_1/e.ckpt"))
    assert message.startswith(f"{tmp_path}/cache/resume/k/seed_1/e.ckpt: no space left on the device (the study's "
                              f"cache, NNSTUDY_CACHE={tmp_path}/cache); free some space there: {tmp_path}/cache/resume "
                              "holds the checkpoints"), message
    assert "dvc gc" not in message
    # In the workspace, `dvc gc` is the right advice; without a path, both places are named.
    assert "dvc gc" in machine_fault(OSError(errno.ENOSPC, "No space left on device", "models/x.keras"))
    assert f"in the study's cache {tmp_path}/cache" in machine_fault(OSError(errno.ENOSPC, "No space left on device"))


def test_training_with_a_full_cache_says_one_line_naming_it(study, tmp_path):
    """The issue's probe: NNSTUDY_CACHE on a full disk failed after training with `a file this stage
    writes: no space left`, advising `dvc gc` (which cleans DVC's cache, not this one)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    done = run_in_namespace(study, tmp_path, f"mount -t tmpfs -o size=16k tmpfs {cache}",
                            f"{PYTHON} -m stages.train batch_mini")
    line = one_line(done)
    assert line.startswith(f"error: {cache}/") and f"(the study's cache, NNSTUDY_CACHE={cache}); free some space there" in line, line
