"""The gate's family-wise false alarms under the three cases of tests/test_check.py, for the gate
as committed and for three ways tried to bring every case within 4-6 %, written to
bench/gate_alternatives.json (issue #28; docs/statistics.md).

    python -m bench.gate_alternatives        # ~6 min on 2 cores

The cases: 12 entries (the MLP family's size), 3 seeds a study, normal seed noise of one size for
all (0.46 points), of the MLP's spread of sizes (0.35-1.6 points), and one size with an entry that
collapses to chance on a fifth of its seeds. Each rate is over unchanged studies drawn as the test
draws them, with its binomial standard error. The alternatives:

- bootstrap: per study, a parametric bootstrap of the whole statistic, every entry's moderated
  std taken as its true one; the critical value is the alpha-quantile of the simulated minimum T.
- conditional: the critical value as a function of the family's *fitted* prior d.f. (deciles),
  from families simulated over the gate's grid of prior d.f.
- cap: the fitted prior d.f. capped at 4 (less shrinkage), critical values simulated the same way.
"""

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nnstudy import check

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "gate_alternatives.json"
ENTRIES, SEEDS, ALPHA = 12, 3, 0.05
CASES = {"equal": ([0.46] * ENTRIES, [0.0] * ENTRIES),
         "unequal": (list(np.geomspace(0.35, 1.6, ENTRIES)), [0.0] * ENTRIES),
         "collapsing": ([0.46] * ENTRIES, [0.0] * (ENTRIES - 1) + [0.2])}


def studies(sigmas: list[float], collapse: list[float], draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, entries, seeds) accuracies of unchanged studies (tests/test_check.py draws with it):
    normal seed noise of `sigmas` points around 93 %, an entry collapsing to chance on a seed with
    its `collapse` probability."""
    shape = (draws, len(sigmas), SEEDS)
    seeds = rng.normal(0.93, np.asarray(sigmas)[None, :, None] / 100, shape)
    collapsed = rng.random(shape) < np.asarray(collapse)[None, :, None]
    return np.where(collapsed, rng.normal(0.10, 0.01, shape), seeds)


def committed(base: np.ndarray, now: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    calm = np.zeros(base.shape[:2], dtype=bool)
    return check.family_alarms(base, now, calm, calm, ALPHA, 0.0).any(axis=1)


def bootstrap(base: np.ndarray, now: np.ndarray, rng: np.random.Generator, families: int = 1000) -> np.ndarray:
    t, s, _ = check.family_statistics(base, now)
    alarms = np.zeros(len(base), dtype=bool)
    for k in range(len(base)):
        sigma = s[k][None, :, None]
        simulated, _, _ = check.family_statistics(sigma * rng.standard_normal((families, ENTRIES, SEEDS)),
                                                  sigma * rng.standard_normal((families, ENTRIES, SEEDS)))
        alarms[k] = np.any(t[k] < np.nanquantile(check.family_minimum(simulated), ALPHA))
    return alarms


def conditional(base: np.ndarray, now: np.ndarray, rng: np.random.Generator, per_grid: int = 20_000) -> np.ndarray:
    fitted, minimum = [], []
    for d0 in check.PRIOR_GRID:
        if d0 == 0:  # no common prior: sizes spread widely
            sigma = np.exp(rng.normal(0.0, 1.5, (per_grid, ENTRIES, 1)))
        elif math.isinf(d0):
            sigma = np.ones((per_grid, ENTRIES, 1))
        else:
            sigma = np.sqrt(d0 / rng.chisquare(d0, (per_grid, ENTRIES, 1)))
        t, _, d0_hat = check.family_statistics(sigma * rng.standard_normal((per_grid, ENTRIES, SEEDS)),
                                               sigma * rng.standard_normal((per_grid, ENTRIES, SEEDS)))
        fitted.append(1 / (1 + d0_hat))
        minimum.append(check.family_minimum(t))
    x, low = np.concatenate(fitted), np.concatenate(minimum)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)))
    cut = np.array([np.nanquantile(low[(x >= a) & (x <= b)], ALPHA) for a, b in zip(edges[:-1], edges[1:])])
    t, _, d0_hat = check.family_statistics(base, now)
    where = np.clip(np.searchsorted(edges, 1 / (1 + d0_hat), side="right") - 1, 0, len(cut) - 1)
    return np.any(t < cut[where][:, None], axis=1)


@contextmanager
def prior_df_capped(cap: float):
    fit = check.robust_prior

    def capped(variances, df):
        s02, d0, outlier = fit(variances, df)
        return s02, np.minimum(d0, cap), outlier

    check.robust_prior = capped
    check.grid_critical.cache_clear()
    try:
        yield
    finally:
        check.robust_prior = fit
        check.grid_critical.cache_clear()


def cap_4(base: np.ndarray, now: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    with prior_df_capped(4.0):
        return committed(base, now, rng)


METHODS: dict[str, tuple[Callable, int]] = {  # the method, its unchanged studies per case
    "committed": (committed, 3000), "bootstrap": (bootstrap, 3000), "conditional": (conditional, 3000),
    "cap_4": (cap_4, 3000)}


def main() -> None:
    result = {"measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True).stdout.strip(),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "command": "python -m bench.gate_alternatives", "entries": ENTRIES, "seeds_per_study": SEEDS,
              "family_alpha": ALPHA, "target": [0.04, 0.06], "methods": {}}
    for name, (method, draws) in METHODS.items():
        rates = {}
        for case, (sigmas, collapse) in CASES.items():
            rng = np.random.default_rng(1)
            started = time.perf_counter()
            alarms = method(studies(sigmas, collapse, draws, rng), studies(sigmas, collapse, draws, rng), rng)
            rate = float(alarms.mean())
            rates[case] = {"rate": round(rate, 4), "se": round(math.sqrt(rate * (1 - rate) / draws), 4),
                           "studies": draws, "seconds": round(time.perf_counter() - started, 1)}
            print(f"{name} {case}: {rate:.2%} ± {rates[case]['se']:.2%}", flush=True)
        within = all(0.04 <= r["rate"] <= 0.06 for r in rates.values())
        result["methods"][name] = {"cases": rates, "all_within_target": within}
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench: wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
