"""Core: params (validated once), paths (every file name), data, errors and strict JSON."""
