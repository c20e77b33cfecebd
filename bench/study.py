"""Benchmark: the whole default study from clean, each of its stages, and a no-op `dvc repro`.

    python3 run.py bench          # writes bench/results.json (commit it)

It clones the committed HEAD into a temporary folder, drops dvc.lock and every output (so nothing
is cached), times `dvc repro` while noting when each stage starts, then times three no-op re-runs,
and finally runs the regression gate there: do the fresh numbers match the committed ones?
Targets (2 cores): the whole study under 20 minutes, a no-op `dvc repro` under 5 s.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
TARGETS = {"study_seconds": 20 * 60, "noop_seconds": 5.0}
STAGE_LINE = re.compile(r"^Running stage '(?P<stage>[^']+)'")


def timed_repro(repo: Path, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Run `dvc repro`; a stage's time runs from its 'Running stage' line to the next one (or the end)."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            if match := STAGE_LINE.match(line):
                marks.append((match["stage"], time.perf_counter()))
    total = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"bench: dvc repro failed with exit code {process.returncode}")
    ends = [t for _, t in marks[1:]] + [start + total]
    return total, {stage: round(end - begun, 1) for (stage, begun), end in zip(marks, ends)}


def main() -> None:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as folder:
        repo = Path(folder) / "study"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        (repo / "dvc.lock").unlink(missing_ok=True)
        for output in ("results", "report", "models", "data", "tuner"):
            shutil.rmtree(repo / output, ignore_errors=True)
        total, stages = timed_repro(repo, env)
        noop = []
        for _ in range(3):
            begun = time.perf_counter()
            subprocess.run(["dvc", "repro"], cwd=repo, env=env, check=True, capture_output=True)
            noop.append(round(time.perf_counter() - begun, 2))
        # The fresh run against the committed metrics: the same gate CI runs.
        gate = subprocess.run([sys.executable, "-m", "nnstudy.check"], cwd=repo, env=env, capture_output=True,
                              text=True)
        print(gate.stdout + gate.stderr)
    results = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "study_seconds": round(total, 1),
        "noop_seconds": noop,
        "stages_seconds": stages,
        "targets": TARGETS,
        "meets_targets": total < TARGETS["study_seconds"] and max(noop) < TARGETS["noop_seconds"],
        "reproduces_committed_metrics": gate.returncode == 0,
        "gate": (gate.stdout + gate.stderr).strip().splitlines()[-1:],
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"study {total / 60:.1f} min, no-op repro {max(noop):.2f} s (max of 3) -> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
