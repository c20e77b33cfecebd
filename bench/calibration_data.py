"""Collect the per-seed results behind the gate's calibration into one committed file.

    python -m bench.calibration_data --study .:1,2,3:study --study /tmp/i28calib:4,5,6,7,8,9,10,11,12:calib

Each --study is FOLDER:SEEDS:MACHINE, a reproduced study (its results/ folder; the transfer stages
alone will do) and the seeds it trained. Writes bench/gate_calibration_seeds.csv: one row per
entry x seed, with the machine label, the family the gate puts the entry in, the test accuracy and
the diverged flag. bench/gate_calibration.py reads that file alone.
"""

import argparse
import csv
import json
from pathlib import Path

from nnstudy.check import FINAL, MLP_FAMILY

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "gate_calibration_seeds.csv"
COLUMNS = ["entry", "family", "seed", "machine", "accuracy", "diverged"]


def study_rows(folder: Path, seeds: list[int], machine: str) -> list[dict]:
    rows = []
    evaluated = json.loads((folder / "results/evaluate.json").read_text())
    final = folder / "results/final_evaluate.json"
    if final.exists():
        evaluated[FINAL] = json.loads(final.read_text())
    for name, per_seed in evaluated.items():
        for seed in seeds:
            live = folder / f"results/train/{name}/seed_{seed}/metrics.json"
            if f"seed_{seed}" in per_seed and live.exists():
                rows.append({"entry": name, "family": MLP_FAMILY, "seed": seed, "machine": machine,
                             "accuracy": per_seed[f"seed_{seed}"]["accuracy"],
                             "diverged": json.loads(live.read_text())["diverged"]})
    train = folder / "results/transfer/train"
    for run_dir in sorted(train.iterdir()) if train.exists() else []:
        settings = json.loads((folder / "results/transfer/settings" / f"{run_dir.name}.json").read_text())
        for seed in seeds:
            metrics = run_dir / f"seed_{seed}" / "metrics.json"
            if metrics.exists():
                raw = json.loads(metrics.read_text())
                rows.append({"entry": run_dir.name, "family": f"transfer@{settings['recipe']['labels']}", "seed": seed,
                             "machine": machine, "accuracy": raw["accuracy"], "diverged": raw["diverged"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", required=True, metavar="FOLDER:SEEDS:MACHINE")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows, seen = [], set()
    for spec in args.study:
        folder, seeds, machine = spec.rsplit(":", 2)
        for row in study_rows(Path(folder), [int(s) for s in seeds.split(",")], machine):
            key = (row["entry"], row["seed"])
            if key not in seen:  # a seed two folders hold counts once, from the first
                seen.add(key)
                rows.append(row)
    with args.out.open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["family"], r["entry"], r["seed"])))
    print(f"{args.out}: {len(rows)} rows, {len({r['entry'] for r in rows})} entries")


if __name__ == "__main__":
    main()
