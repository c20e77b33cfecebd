"""What the benchmarks share: a study from clean in a fresh clone of HEAD, timed stage by stage."""

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^Running stage '(?P<stage>[^']+)'")
OUTPUTS = ("metrics", "results", "report/figures", "models", "data/raw", "data/prepared", "data/transfer", "tuner")


def head_commit() -> str:
    """HEAD's short hash; NNSTUDY_COMMIT (else 'unknown') where git cannot say, as in a copy of the
    checkout on a machine without git (bench/gpu_machine.sh)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        found = None
    return (found.stdout.strip() if found and found.returncode == 0 else "") or os.environ.get("NNSTUDY_COMMIT", "unknown")


def commit_of_tree() -> str:
    """HEAD's short hash, '+changes' when the working tree differs from it (a figure measured on code
    not yet committed says so)."""
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
    return head_commit() + ("+changes" if changed else "")


def this_machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def timed(command: list[str], repo: Path, env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    """Run a DVC command; a stage's time runs from its 'Running stage' line to the next one (or the end)."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    lines = []
    with subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
            if match := STAGE_LINE.match(line):
                marks.append((match["stage"], time.perf_counter()))
    total = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed with exit code {process.returncode}")
    ends = [t for _, t in marks[1:]] + [start + total]
    return total, {stage: round(end - begun, 1) for (stage, begun), end in zip(marks, ends)}, "".join(lines)


def set_params(repo: Path, **values: object) -> None:
    replace_params(repo, values)


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in: a nested mapping key by key, anything else replaced."""
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def merge_params(repo: Path, overrides: dict) -> None:
    """params.yaml with `overrides` merged in (see `merged`)."""
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(merged(yaml.safe_load(path.read_text()), overrides), sort_keys=False))


def replace_params(repo: Path, overrides: dict) -> None:
    """params.yaml with each top-level key of `overrides` replacing its value whole (a --params file:
    its `variants:` are the study's variants, not added to them)."""
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | overrides, sort_keys=False))


def fresh_clone(folder: str) -> tuple[Path, str]:
    """A clone of the committed study with every output and dvc.lock removed: a study from clean."""
    repo = Path(folder) / "study"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout.strip()
    (repo / "dvc.lock").unlink(missing_ok=True)
    for output in OUTPUTS:
        shutil.rmtree(repo / output, ignore_errors=True)
    return repo, commit
