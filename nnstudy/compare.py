"""Test metrics side by side across the workspace, HEAD and any revisions or experiments.

    python -m nnstudy.compare                         # workspace vs HEAD
    python -m nnstudy.compare main exp-3f2a1 v1.0     # plus branches, experiment names, tags
    python -m nnstudy.compare --metrics accuracy,loss --variants batch_mini,batch_full

Metrics are read through DVC's own API (Repo.metrics.show), so a revision is anything
`dvc metrics show -a`/`dvc exp show` understands: a commit, branch, tag or `dvc exp run` name.
"""

import argparse
from typing import Any

from tabulate import tabulate

from nnstudy.core import paths
from nnstudy.core.errors import StudyError, run_stage
from nnstudy.core.jsonio import as_number

WORKSPACE = "workspace"
FINAL = paths.FINAL  # the tuned network's row; params.py keeps variants from taking this name
# Per variant and for "final": test accuracy, loss and F1 over the training seeds (spread dicts)
# and the diverged flag; a top-level `metrics:` entry of dvc.yaml. The regression gate reads it.
SUMMARY_METRICS = str(paths.SUMMARY)  # "metrics/summary.json"

# {revision: {repo-relative metrics file: its content, or the error DVC met reading it}}
FilesByRev = dict[str, dict[str, Any]]
# {revision: {variant: {metric: value}}}
TestMetrics = dict[str, dict[str, dict[str, Any]]]


# --- reading, through DVC ---

def metrics_by_rev(revs: list[str]) -> FilesByRev:
    """Every metrics file dvc.yaml declares, in the workspace and at each revision."""
    # Imported here: DVC takes a second to import, and the pure functions below don't need it.
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            # hide_workspace=False: DVC would drop the workspace when it equals the branch tip.
            shown = repo.metrics.show(revs=revs, hide_workspace=False, on_error="return")
    except DvcException as error:
        raise StudyError(f"dvc cannot read the metrics: {error}") from None
    files = {}
    for key, result in shown.items():
        if "error" in result:
            raise StudyError(f"{key}: dvc cannot read the metrics ({result['error']})")
        content = {path: f.get("data", f.get("error")) for path, f in result.get("data", {}).items()}
        # DVC names a commit by every rev that resolved to it, comma-joined ("HEAD,main").
        for name in key.split(","):
            files[name] = content
    return files


def need_file(files: FilesByRev, rev: str, path: str) -> dict[str, Any]:
    """One metrics file at one revision; missing or unreadable is a one-line StudyError."""
    content = files.get(rev, {}).get(path)
    if isinstance(content, dict):
        return content
    where = "the workspace" if rev == WORKSPACE else f"revision {rev!r}"
    fix = "run `dvc repro`" if rev == WORKSPACE else "is the reproduced study committed there?"
    if content is None:
        why = "not a metrics file of dvc.yaml"
    elif isinstance(content, FileNotFoundError):
        why = "missing"
    else:
        why = f"unreadable ({content})"
    raise StudyError(f"{path}: {why} in {where}; {fix}")


def variant_metrics(files: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{variant: {metric: mean over seeds}} from one revision's summary, the tuned network as 'final'."""
    summary = files.get(SUMMARY_METRICS)
    if not isinstance(summary, dict):
        return {}
    return {
        name: {metric: spread.get("mean") for metric, spread in entry.items() if isinstance(spread, dict)}
        for name, entry in summary.items() if isinstance(entry, dict)
    }


# --- the table: pure functions on plain dicts ---

def format_value(value: Any) -> str:
    if value is None:
        return "–"  # not measured at that revision
    number = as_number(value)
    return f"{number:.4f}" if number is not None else str(value)


def compare_rows(by_rev: TestMetrics, metrics: list[str], variants: list[str] | None = None) -> list[list[str]]:
    """One row per variant and metric, one column per revision (in by_rev's order)."""
    seen = dict.fromkeys(v for table in by_rev.values() for v in table)  # first-seen order
    chosen = variants if variants is not None else [v for v in seen if v != FINAL] + ([FINAL] if FINAL in seen else [])
    return [
        [variant, metric, *(format_value(table.get(variant, {}).get(metric)) for table in by_rev.values())]
        for variant in chosen
        for metric in metrics
    ]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    # disable_numparse: keep our 4-decimal strings exactly as formatted.
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def format_comparison(by_rev: TestMetrics, metrics: list[str], variants: list[str] | None = None) -> str:
    return markdown_table(["variant", "metric", *by_rev], compare_rows(by_rev, metrics, variants))


# --- command line ---

def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nnstudy.compare", description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", metavar="REV_OR_EXP", help="commits, branches, tags or experiment names")
    parser.add_argument("--metrics", type=split_list, default=["accuracy", "f1_macro"],
                        help="comma-separated test metrics, each a mean over seeds (default: accuracy,f1_macro)")
    parser.add_argument("--variants", type=split_list, default=None,
                        help="comma-separated variants (default: all, plus 'final' when present)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    revs = list(dict.fromkeys(["HEAD", *args.revs]))
    files = metrics_by_rev(revs)
    by_rev = {rev: variant_metrics(files[rev]) for rev in [WORKSPACE, *revs] if rev in files}
    if not any(by_rev.values()):
        raise StudyError(f"{SUMMARY_METRICS}: no test metrics at any revision; run `dvc repro` first")
    if args.variants:
        unknown = [v for v in args.variants if not any(v in table for table in by_rev.values())]
        if unknown:
            raise StudyError(f"--variants: no metrics for {', '.join(unknown)} at any revision")
    print(format_comparison(by_rev, args.metrics, args.variants))


if __name__ == "__main__":
    run_stage(main)
