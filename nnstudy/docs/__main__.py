"""python -m nnstudy.docs: write the generated pages (docs/params.md, docs/benchmarks.md), the
block of times on the two front pages (README.md, docs/index.md) and the statistics page's blocks
of figures (docs/statistics.md); `--check` writes nothing and exits 1 naming each file that is
stale."""

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from nnstudy.docs import benchmarks, reference

ROOT = Path(__file__).resolve().parents[2]


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin (python -m nnstudy.docs) -->", f"<!-- {name}: end -->"


BEGIN, END = markers("times")
FRONT_PAGES = ("README.md", "docs/index.md")
# The blocks of hand-written pages that are generated: (page, block name) -> its lines from bench/*.json.
BLOCKS: dict[tuple[str, str], Callable[[benchmarks.Bench], list[str]]] = {
    **{(page, "times"): benchmarks.readme_block for page in FRONT_PAGES},
    ("docs/statistics.md", "gate-simulated"): benchmarks.gate_simulated_block,
    ("docs/statistics.md", "gate-calibrated"): benchmarks.gate_calibrated_block,
    ("docs/statistics.md", "pairing"): benchmarks.pairing_block,
    ("docs/statistics.md", "power"): benchmarks.power_block,
}


def with_block(text: str, page: str, name: str, block: list[str]) -> str:
    """A page's text with the text between its `name` markers replaced by `block`."""
    begin, end = markers(name)
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"nnstudy.docs: {page} has no {begin} ... {end} markers; put them where the block goes")
    return pattern.sub(lambda _: "\n".join([begin, *block, end]), text)


def generated(root: Path) -> dict[Path, str]:
    """Each generated file and what it should hold now."""
    bench = benchmarks.load(root / "bench")
    pages = {root / "docs" / "params.md": reference.render((root / "params.yaml").read_text(encoding="utf-8")),
             root / "docs" / "benchmarks.md": benchmarks.render(bench)}
    for (page, name), block in BLOCKS.items():
        path = root / page
        text = pages.get(path) or path.read_text(encoding="utf-8")
        pages[path] = with_block(text, page, name, block(bench))
    return pages


def stale(root: Path) -> list[Path]:
    return [path for path, text in generated(root).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    args = parser.parse_args()
    if args.check:
        old = stale(ROOT)
        for path in old:
            print(f"nnstudy.docs: {path.relative_to(ROOT)} is stale; run `python -m nnstudy.docs`", file=sys.stderr)
        sys.exit(1 if old else 0)
    for path, text in generated(ROOT).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"nnstudy.docs: wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
