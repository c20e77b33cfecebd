"""Stage settings: write each variant's effective settings (base keys + its overrides) to a file.

train@<variant> depends on its own file, not on every base key: after `dvc exp run -S optimizer=sgd`
only the variants that inherit `optimizer` get a new file, and only they re-train.
"""

import shutil

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json


def main() -> None:
    study = params.load()
    shutil.rmtree(paths.SETTINGS_DIR, ignore_errors=True)  # a removed variant leaves no stale file
    for name in [*study.variants, *study.sweep_points]:
        write_json(paths.settings_file(name), params.effective_settings(study, name))
    print(f"settings: {len(study.variants)} variants and {len(study.sweep_points)} sweep points x "
          f"{len(study.seeds)} seeds on {study.backend} ({study.loop})")


if __name__ == "__main__":
    run_stage(main)
