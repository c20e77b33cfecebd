"""python -m nnstudy.docs: write the generated pages (docs/params.md, docs/benchmarks.md) and the
block of times on the two front pages (README.md, docs/index.md); `--check` writes nothing and
exits 1 naming each file that is stale."""

import argparse
import re
import sys
from pathlib import Path

from nnstudy.docs import benchmarks, reference

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- times: begin (python -m nnstudy.docs) -->", "<!-- times: end -->"


FRONT_PAGES = ("README.md", "docs/index.md")


def with_block(page: Path, block: list[str]) -> str:
    """A front page with the text between its markers replaced by `block`."""
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"nnstudy.docs: {page.name} has no {BEGIN} ... {END} markers; put them where the times go")
    return pattern.sub(lambda _: "\n".join([BEGIN, *block, END]), text)


def generated(root: Path) -> dict[Path, str]:
    """Each generated file and what it should hold now."""
    bench = benchmarks.load(root / "bench")
    return {
        root / "docs" / "params.md": reference.render((root / "params.yaml").read_text(encoding="utf-8")),
        root / "docs" / "benchmarks.md": benchmarks.render(bench),
        **{root / page: with_block(root / page, benchmarks.readme_block(bench)) for page in FRONT_PAGES},
    }


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
