"""The README's study command, `python3 run.py study`, on two `dvc repro` side by side and on one:
the measurement behind NNSTUDY_STUDY_WORKERS (nnstudy.share.study), written to bench/study_workers.json.

Each run is what a new user's machine does: a fresh clone of HEAD (its dvc.lock committed, no
outputs, an empty DVC cache), then `python3 run.py study`, timed as a whole. The clone uses this
checkout's .venv (a link), so the time is the study's, not pip's. After each run, `dvc status`
must be clean and every committed result must come back, less what carries a wall-clock time (as
tests/test_pipeline.py checks).

    python -m bench.study_workers                  # 2 workers, then 1: ~30 min on 2 cores
    python -m bench.study_workers --workers 2      # one of them
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "study_workers.json"
# What a re-run may change: wall-clock times, the report's time columns and bars, their hashes in
# dvc.lock (tests/study_helpers.py: TIMED); results/dreams.json moves in its 7th digit between runs.
TIMED = ("results/timing/", "report/report.md", "report/variants.csv", "report/figures/sweeps/", "dvc.lock",
         "results/transfer/zoo.csv", "report/transfer.md", "report/figures/transfer/", "results/dreams.json")


def study(workers: int, folder: Path) -> dict:
    repo = folder / f"study-{workers}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    env = dict(os.environ, NNSTUDY_STUDY_WORKERS=str(workers))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "run.py", "study"], cwd=repo, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"bench: `python3 run.py study` with {workers} workers failed ({done.returncode})")
    dvc = str(ROOT / ".venv" / "bin" / "dvc")
    status = subprocess.run([dvc, "status"], cwd=repo, capture_output=True, text=True).stdout
    changed = [line[3:] for line in subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                                                     text=True, check=True).stdout.splitlines()
               if line[3:] != ".venv"]
    return {"seconds": round(seconds, 1), "dvc_status_clean": "up to date" in status,
            "results_as_committed": all(path.startswith(TIMED) for path in changed),
            "changed_beyond_timing": [path for path in changed if not path.startswith(TIMED)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, action="append", help="default: 2, then 1")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-study-workers-") as folder:
        for workers in args.workers or [2, 1]:
            runs[str(workers)] = study(workers, Path(folder)) | {
                "commit": commit, "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
            print(f"bench: {workers} worker(s): {runs[str(workers)]}", flush=True)
    result = json.loads(RESULT.read_text()) if RESULT.exists() and args.workers else {}
    for kept in result.get("runs", {}).values():  # files from before runs named their commit and date
        kept.setdefault("commit", result.get("commit", "not recorded"))
        kept.setdefault("measured", result.get("measured", "not recorded"))
    result.update({
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": "python3 run.py study (NNSTUDY_STUDY_WORKERS=N) in a fresh clone of HEAD",
    })
    result.setdefault("runs", {}).update(runs)
    # A run kept from an earlier measurement keeps its own commit; a ratio needs both runs of one commit.
    one, two = result["runs"].get("1"), result["runs"].get("2")
    result.pop("speedup_2_vs_1", None)
    if one and two and one["commit"] == two["commit"]:
        result["speedup_2_vs_1"] = round(one["seconds"] / two["seconds"], 2)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench: wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
