"""What a stage pays before and around its training: the start-up clock and DVCLive's per-epoch files."""

import json
import subprocess
import sys
import time
from pathlib import Path

from dvclive import Live

from nnstudy.training import loop
from nnstudy.training.loop import open_live

ROOT = Path(__file__).resolve().parents[1]


def test_process_start_is_when_the_process_started():
    # psutil's create_time was up to a second early (boot time in whole seconds): every stage's
    # start-up and stage time carried that error. The child reports its own start and when it asked.
    before = time.time()
    done = subprocess.run([sys.executable, "-c", "import time; from nnstudy.core.backend import process_start; "
                           "print(process_start(), time.time())"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    after = time.time()
    started, asked = map(float, done.stdout.split())
    # One clock tick (10 ms) of rounding either way.
    assert before - 0.02 <= started <= asked <= after


def finished_run(live: Live, steps: int) -> bytes:
    for step in range(steps):
        live.log_metric("train/loss", 1.0 / (step + 1), plot=False)
        live.log_metric("eval/accuracy", step / steps, plot=False)
        live.next_step()
    live.summary["epochs_run"] = steps
    live.make_summary()
    live.end()
    return (Path(live.dir) / "metrics.json").read_bytes()


def test_epoch_live_writes_the_same_files_and_fewer_times(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = finished_run(Live("plain", dvcyaml=False, save_dvc_exp=False), 30)
    assert finished_run(open_live(Path("epoch")), 30) == plain
    assert json.loads(plain)["step"] == 30

    # Within LIVE_SYNC_SECONDS of the first step, a step leaves metrics.json as the first one wrote it.
    monkeypatch.setattr(loop, "LIVE_SYNC_SECONDS", 3600.0)
    live = open_live(Path("quiet"))
    for step in range(5):
        live.log_metric("train/loss", float(step), plot=False)
        live.next_step()
    assert live.step == 5
    assert json.loads(Path("quiet/metrics.json").read_text()) == {"train": {"loss": 0.0}, "step": 0}
    # ...and with no interval, every step writes it, as DVCLive's own next_step does.
    monkeypatch.setattr(loop, "LIVE_SYNC_SECONDS", 0.0)
    live.log_metric("train/loss", 5.0, plot=False)
    live.next_step()
    assert json.loads(Path("quiet/metrics.json").read_text()) == {"train": {"loss": 5.0}, "step": 5}


def test_startup_imports_run_without_the_collector_and_freeze_what_they_built():
    import gc

    from nnstudy.core.backend import startup_imports

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with startup_imports():
        assert not gc.isenabled()
        with startup_imports():  # nested (activate inside a stage's own block): still off inside
            pass
        assert not gc.isenabled()
        built = [[] for _ in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(built)
    gc.unfreeze()  # give the rest of the test session its collector back as it was
