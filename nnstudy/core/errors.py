"""The errors a user can fix: bad params, missing or corrupt data files.

Stages turn these into a one-line message and exit code 2 instead of a traceback.
"""

import sys
from collections.abc import Callable


class StudyError(Exception):
    """A problem the user can fix; the message names it."""


class ParamError(StudyError):
    """A value in params.yaml is missing, misspelt, of the wrong type or out of range."""


class DataError(StudyError):
    """A data file is missing, truncated, corrupt or cannot be downloaded."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a StudyError becomes `error: ...` on stderr and exit code 2."""
    try:
        main()
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
