"""DVC stage `prepare`: split the raw data into train/val/test, scale it, and summarise the splits."""

from nnstudy.core import params, paths
from nnstudy.core.data import load_raw, prepare, save_prepared, split_summary
from nnstudy.core.errors import run_stage
from nnstudy.core.jsonio import write_json


def main() -> None:
    cfg = params.load()
    raw = load_raw(paths.RAW_DATA)
    data = prepare(raw, cfg.data.test_fraction, cfg.data.val_fraction, cfg.seed)
    save_prepared(data, paths.PREPARED_DIR)
    summary = split_summary(data)
    write_json(paths.SPLITS_SUMMARY, summary)
    sizes = ", ".join(f"{name} {split['size']}" for name, split in summary["splits"].items())
    print(f"prepared {raw.name}: {sizes} -> {paths.PREPARED_DIR}")


if __name__ == "__main__":
    run_stage(main)
