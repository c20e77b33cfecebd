"""DVC stage `fetch`: get the data set that params.yaml names and save it as it came."""

from nnstudy.core import params, paths
from nnstudy.core.data import fetch, save_raw
from nnstudy.core.errors import run_stage


def main() -> None:
    cfg = params.load()
    raw = fetch(cfg.data)
    save_raw(raw, paths.RAW_DATA)
    height, width = raw.x_train.shape[1:]
    test = "no own test split" if raw.x_test is None else f"{len(raw.x_test)} test"
    print(f"fetched {raw.name}: {len(raw.x_train)} train, {test}, {height}x{width} images -> {paths.RAW_DATA}")


if __name__ == "__main__":
    run_stage(main)
