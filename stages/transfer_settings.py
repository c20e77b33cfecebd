"""Stage transfer_settings: each transfer run's effective settings (and the source network's) in
a file of its own, so a change to one key re-trains only the runs that inherit it."""

import shutil

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.transfer.params import pretrain_settings, run_settings


def main() -> None:
    study = params.load()
    transfer = study.transfer
    shutil.rmtree(paths.TRANSFER_SETTINGS_DIR, ignore_errors=True)  # a removed run leaves no stale file
    for name in transfer.runs:
        write_json(paths.transfer_settings_file(name),
                   run_settings(transfer, name, study.seeds, study.backend, study.seed))
    write_json(paths.transfer_settings_file("pretrain"), pretrain_settings(transfer, study.seeds, study.backend))
    print(f"transfer settings: {len(transfer.runs)} runs x {len(study.seeds)} seeds on {study.backend}")


if __name__ == "__main__":
    run_stage(main)
