"""The documentation: generated pages current and caught when stale, the params reference asked of
the validators, and the MkDocs site built strictly (a broken link fails it)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.suite import summary
from nnstudy.core import checks
from nnstudy.core import params as core
from nnstudy.docs import benchmarks, reference
from nnstudy.docs.__main__ import stale
from study_helpers import ROOT

MKDOCS = Path(sys.executable).parent / "mkdocs"


def copy_of_sources(tmp_path: Path) -> Path:
    """What the generator reads and writes, in a folder of its own."""
    for name in ("params.yaml", "README.md", "mkdocs.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("bench", "docs"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return tmp_path


def test_the_committed_pages_are_current():
    assert stale(ROOT) == [], "run `python -m nnstudy.docs` and commit what it writes"


def test_a_changed_benchmark_makes_the_page_and_the_readme_stale(tmp_path):
    root = copy_of_sources(tmp_path)
    assert stale(root) == []
    path = root / "bench" / "study_workers.json"
    runs = json.loads(path.read_text())
    runs["runs"]["2"]["seconds"] = 1000.0
    path.write_text(json.dumps(runs))
    assert set(stale(root)) == {root / "docs" / "benchmarks.md", root / "README.md", root / "docs" / "index.md"}


def test_a_changed_comment_in_params_makes_the_reference_stale(tmp_path):
    root = copy_of_sources(tmp_path)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("# SGD only", "# SGD only (Nesterov never)"))
    assert stale(root) == [root / "docs" / "params.md"]


def test_the_readme_says_not_measured_rather_than_a_number():
    block = "\n".join(benchmarks.readme_block({}))
    assert block.count("not measured yet") == 2
    suite = {"seconds": 690.0, "pytest_seconds": 626.1, "passed": 480, "skipped": 4, "failed": 0,
             "commit": "abc1234", "measured": "2026-12-01 10:00 UTC", "machine": {"cpus": 2, "python": "3.11.7"}}
    block = "\n".join(benchmarks.readme_block({"suite": suite}))
    assert "11 min 30 s (690.0 s)" in block and "abc1234, 2026-12-01, 2 cores" in block
    assert "10 min: **missed**" in block


def test_every_page_closes_its_code_blocks():
    # An unclosed ``` turns the rest of a page into code, and a strict build does not notice.
    for page in (ROOT / "docs").glob("*.md"):
        fences = [line for line in page.read_text().splitlines() if line.startswith("```")]
        assert len(fences) % 2 == 0, page.name


def test_the_readme_is_a_front_page_with_its_times_on_the_first_screen():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first_screen = "\n".join(lines[:40])
    assert "python3 run.py study" in first_screen and "python3 run.py test" in first_screen
    assert "time from a fresh clone" in first_screen


def test_the_readmes_links_lead_somewhere():
    # The README is not part of the site, so the strict build does not check its links.
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", readme):
        if target.startswith("https://"):
            continue
        path, _, anchor = target.partition("#")
        assert (ROOT / path).is_file(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}
            assert anchor in slugs, target


def test_the_reference_is_what_the_validators_say(monkeypatch):
    text = (ROOT / "params.yaml").read_text()
    page = reference.render(text)
    assert "| `data.dataset` | `mnist-sample` | one of: mnist-sample, mnist, fashion-mnist, digits |" in page
    assert "| `transfer.labels` | `[10, 50]` | a list (at least 1) of: a whole number >= 1 or `all` |" in page
    # Another validator, another page: the cell is the validator's own message.
    monkeypatch.setitem(core.DATA_SCHEMA, "val_fraction", checks.number(0.1, 0.5))
    assert "| `data.val_fraction` | `0.2` | a number >= 0.1, <= 0.5 |" in reference.render(text)
    # Every key of params.yaml that holds a value has its row, and the validators said what it allows
    # (an empty cell: reference.validate no longer checks that key).
    raw = yaml.safe_load(text)
    for path in reference.leaves(raw):
        if not isinstance(reference._value(raw, path), dict):
            row = next(line for line in page.splitlines() if line.startswith(f"| `{reference.dotted(path)}` |"))
            assert row.split(" | ")[2].strip(), row


def test_comments_belong_to_the_key_they_describe():
    found = reference.comments("# the page\n\nseed: 1\n\n# --- the group\n# about a\na: 1   # inline\n"
                               "  # more about a\nb: 2\n# about c\nc: 3\n")
    assert found.intro == "the page"
    assert found.groups == {"a": "the group about a"}
    assert found.keys == {"a": "inline more about a", "c": "about c"}


def test_the_suite_summary_is_read_from_pytests_own_lines():
    found = summary("12.50s call     tests/test_pipeline.py::test_x\n3.00s setup    tests/test_pipeline.py::test_y\n"
                    "4.00s call     tests/test_share.py::test_z\n"
                    "== 480 passed, 4 skipped, 2 warnings in 626.12s (0:10:26) ==\n")
    assert (found["passed"], found["skipped"], found["failed"], found["pytest_seconds"]) == (480, 4, 0, 626.12)
    assert found["slowest_modules"] == {"test_pipeline.py": 15.5, "test_share.py": 4.0}


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(site)], cwd=root,
                          capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=300)


@pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs is not installed in this venv (requirements.txt pins it)")
def test_the_site_builds_strictly_and_a_broken_link_fails_it(tmp_path):
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "params" / "index.html").is_file()
    (tmp_path / "copy").mkdir()
    root = copy_of_sources(tmp_path / "copy")
    with (root / "docs" / "cluster.md").open("a") as page:
        page.write("\nSee [the team page](team.md#no-such-section).\n")
    broken = build(root, tmp_path / "site2")
    assert broken.returncode != 0 and "no-such-section" in broken.stderr
