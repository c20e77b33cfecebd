"""Stage transfer_settings: each transfer run's effective settings (and the source network's) in
a file of its own, so a change to one key re-trains only the runs that inherit it."""

from nnstudy.core import params, paths
from nnstudy.core.errors import run_stage
from nnstudy.core.files import remove_others
from nnstudy.core.jsonio import write_json
from nnstudy.transfer.params import pretrain_settings, run_settings


def main() -> None:
    study = params.load()
    transfer = study.transfer
    for name in transfer.runs:
        write_json(paths.transfer_settings_file(name),
                   run_settings(transfer, name, study.seeds, study.backend, study.seed))
    write_json(paths.transfer_settings_file("pretrain"), pretrain_settings(transfer, study.seeds, study.backend))
    # A removed run leaves no stale file; a file that cannot be removed is an error, not ignored.
    remove_others(paths.TRANSFER_SETTINGS_DIR,
                  {paths.transfer_settings_file(name) for name in [*transfer.runs, "pretrain"]})
    counts = sorted({len(transfer.run_seeds(name, study.seeds)) for name in transfer.runs})
    print(f"transfer settings: {len(transfer.runs)} runs x {' or '.join(map(str, counts))} seeds on {study.backend}")


if __name__ == "__main__":
    run_stage(main)
