"""Stage settings: write each variant's effective settings (base keys + its overrides) to a file.

train@<variant> depends on its own file, not on every base key: after `dvc exp run -S optimizer=sgd`
only the variants that inherit `optimizer` get a new file, and only they re-train.
"""

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import remove_others
from nnstudy.core.jsonio import write_json


def main() -> None:
    study = params.load()
    names = [*study.variants, *study.sweep_points]
    for name in names:
        write_json(paths.settings_file(name), params.effective_settings(study, name))
    # A removed variant leaves no stale file; a file that cannot be removed is an error, not ignored.
    remove_others(paths.SETTINGS_DIR, {paths.settings_file(name) for name in names})
    print(f"settings: {len(study.variants)} variants and {len(study.sweep_points)} sweep points x "
          f"{len(study.seeds)} seeds on {study.backend} ({study.loop})")


if __name__ == "__main__":
    run_stage(main)
