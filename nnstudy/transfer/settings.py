"""A transfer run's settings file (results/transfer/settings/<run>.json), read back and checked.

Apart from nnstudy.transfer.params because it needs params.yaml (to name the runs it defines when
asked for an unknown one), which nnstudy.transfer.params does not read.
"""

from nnstudy.core import params, paths
from nnstudy.core.errors import ParamError
from nnstudy.core.jsonio import read_json
from nnstudy.transfer.params import Recipe, recipe_from_settings, run_settings


def read_settings(name: str) -> tuple[dict, Recipe]:
    """A transfer run's settings file (or `pretrain`'s), checked in full, and its Recipe; a problem is
    one line naming the file and the key."""
    path = paths.transfer_settings_file(name)
    if not path.is_file():
        if name != "pretrain":
            run_settings(params.load().transfer, name, (), "jax", 0)  # an unknown run: the runs there are
        raise ParamError(f"{path}: missing; run `dvc repro transfer_settings` to write it")
    settings = read_json(path)
    try:
        recipe = recipe_from_settings(settings)
        if settings["run"] != name:
            raise ParamError(f"run: the file is for {settings['run']!r}, not {name!r}")
    except ParamError as error:
        raise ParamError(f"{path}: {error}; fix it, or run `dvc repro transfer_settings` to rewrite it "
                         "from params.yaml") from None
    return settings, recipe
