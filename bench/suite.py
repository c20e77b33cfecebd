"""The README's test command, `python3 run.py test`, timed from a fresh clone of HEAD, written to
bench/suite.json (the docs' benchmark page and the README read it).

The clone uses this checkout's .venv (a link), so the time is the suite's, not pip's.

    python -m bench.suite                                   # ~10 min on 2 cores
    python -m bench.suite --out /tmp/s.json tests/test_docs.py   # a smoke run: one module
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.clone import head_commit, this_machine

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "suite.json"
BUDGET_SECONDS = 600
# pytest's last line: "480 passed, 4 skipped, 2 warnings in 626.12s (0:10:26)"
SUMMARY = re.compile(r"(?P<count>\d+) (?P<what>passed|failed|skipped|errors?)\b")
PYTEST_TIME = re.compile(r" in (?P<seconds>[\d.]+)s")
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?:setup|call|teardown) +tests/(?P<module>[\w/]+\.py)::")


def summary(output: str) -> dict:
    """The counts and pytest's own time from its summary line, the slowest modules from --durations."""
    last = next((line for line in reversed(output.splitlines()) if PYTEST_TIME.search(line)), "")
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    for match in SUMMARY.finditer(last):
        counts["errors" if match["what"].startswith("error") else match["what"]] += int(match["count"])
    modules: dict[str, float] = {}
    for line in output.splitlines():
        if match := DURATION.match(line.strip()):
            modules[match["module"]] = modules.get(match["module"], 0.0) + float(match["seconds"])
    slowest = dict(sorted(modules.items(), key=lambda item: -item[1])[:5])
    found = PYTEST_TIME.search(last)
    return {**counts, "pytest_seconds": float(found["seconds"]) if found else None,
            "slowest_modules": {name: round(seconds, 1) for name, seconds in slowest.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("pytest_args", nargs="*", help="passed on to `run.py test` (default: the whole suite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as folder:
        os.chmod(folder, 0o755)  # as a clone anywhere: tests run stages as `nobody`, which must read the code
        repo = Path(folder) / "suite"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        (repo / ".venv").symlink_to(ROOT / ".venv")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "run.py", "test", "--durations=40", *args.pytest_args], cwd=repo,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
    sys.stdout.write(done.stdout[-3000:])
    if done.returncode:  # the clone is gone: keep what pytest said of its failures where it can be read
        kept = Path(tempfile.gettempdir()) / "bench-suite-output.txt"
        kept.write_text(done.stdout + done.stderr)
        print(f"bench: the suite failed (exit code {done.returncode}); its whole output: {kept}")
    found = summary(done.stdout)
    if found["pytest_seconds"] is None:
        sys.exit(f"bench: `python3 run.py test` printed no pytest summary (exit code {done.returncode}); "
                 "see its output above")
    result = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": head_commit(),
        "machine": this_machine(),
        "command": " ".join(["python3 run.py test --durations=40", *args.pytest_args]) + " in a fresh clone of HEAD",
        "seconds": round(seconds, 1),
        **found,
        "exit_code": done.returncode,
        "budget_seconds": BUDGET_SECONDS,
        "meets_budget": seconds <= BUDGET_SECONDS,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench: {result['seconds']} s, pytest {result['pytest_seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
