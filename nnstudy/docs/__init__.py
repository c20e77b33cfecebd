"""The documentation pages that are generated, never typed: the params.yaml reference (from the
validators and params.yaml's own comments), the benchmark page and the README's times (from
bench/*.json). `python -m nnstudy.docs` writes them; `--check` says which are stale.
"""
