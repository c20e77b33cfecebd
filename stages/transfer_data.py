"""Stage transfer_data: the source and target tasks of the transfer study, from params.yaml.

digits (offline): the study's own prepared split, source_classes and target_classes of it.
cifar100: the CIFAR-100 python archive (downloaded once, SHA-256 checked), split 80/20.
"""

from nnstudy.core import params, paths
from nnstudy.core.data import load_prepared
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json
from nnstudy.transfer.data import (
    cifar100_task, digits_task, fetch_cifar100, read_cifar100, save_task, task_summary,
)


def main() -> None:
    study = params.load()
    transfer = study.transfer
    if transfer.dataset == "digits":
        prepared = load_prepared()
        every = range(prepared.num_classes)
        target = transfer.target_classes or tuple(c for c in every if c not in transfer.source_classes)
        data = digits_task(prepared, transfer.source_classes, target)
    else:
        train, test, names = read_cifar100(fetch_cifar100(transfer.cifar100_url, transfer.cifar100_sha256))
        target = transfer.target_classes or tuple(c for c in range(len(names)) if c not in transfer.source_classes)
        data = cifar100_task(train, test, names, transfer.source_classes, target, transfer.val_fraction, study.seed)
    save_task(data, paths.TRANSFER_DATA_DIR)
    write_json(paths.TRANSFER_DATA_SUMMARY, task_summary(data))
    source = "none" if data.source_train is None else f"{len(data.source_names)} classes, {len(data.source_train.y)} train"
    print(f"transfer data ({transfer.dataset}): source {source}; target {len(data.target_names)} classes, "
          f"{len(data.target_train.y)} train / {len(data.target_val.y)} val / {len(data.target_test.y)} test")


if __name__ == "__main__":
    run_stage(main)
