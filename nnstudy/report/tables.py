"""Markdown tables, for the report and the gate's output."""

from tabulate import tabulate


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    # disable_numparse: keep the cells exactly as formatted (e.g. 4 decimals, "93.1 ± 0.6").
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
