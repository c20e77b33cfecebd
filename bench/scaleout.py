"""The study's wall time on 1, 2, 4 and 8 machines, simulated from the committed per-stage timings
and the DAG of dvc.yaml (nnstudy.share), written to bench/scaleout.json:

- `list_schedule_seconds`: greedy list scheduling over the whole DAG (each free machine takes the
  ready stage with the longest path to the end), an ideal stage-level scheduler;
- `lower_bound_seconds`: max(critical path, serial time / machines): no schedule does better;
- `worker_split_seconds`: what `python3 run.py worker --workers N` does: every worker runs the
  trunk and its groups of stages, then one clone gathers (pull and push times not included);
- `slurm_dag_seconds`: what `python3 run.py slurm` submits (nnstudy.slurm.plan_jobs, with
  cluster.yaml's min_job_seconds): one job for the trunk, a job per stage after the jobs it reads
  from, run as Slurm runs them (a free machine takes a job whose dependencies are done, the longest
  path to the end first), then the gathering job (clones, pulls and pushes not included).

Stages without a timing file count nnstudy.share.DEFAULT_STAGE_SECONDS each.

    python -m bench.scaleout            # from the committed timings of this checkout
    python -m bench.scaleout --full     # from bench/full.json's full-size stage times (the MLP study
                                        # and transfer_adds), written to bench/scaleout_full.json
"""

import argparse
import json
from pathlib import Path

from bench.clone import head_commit
from nnstudy import share, slurm

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "scaleout.json"
FULL, FULL_RESULT = ROOT / "bench" / "full.json", ROOT / "bench" / "scaleout_full.json"
MACHINES = (1, 2, 4, 8)


def full_size_costs() -> tuple[dict[str, float], dict]:
    """Seconds per stage of the full-size benchmark (`python3 run.py bench --full`, then
    `--transfer-only`), and where they come from."""
    full = json.loads(FULL.read_text())
    costs = dict(full["stages_seconds"])
    source = {"mlp_study": {"commit": full["commit"], "measured": full["measured"], "command": full["command"]}}
    if "transfer_adds" in full:
        transfer = full["transfer_adds"]
        costs.update(transfer["stages_seconds"])
        source["transfer_study"] = {key: transfer[key] for key in ("commit", "measured", "command")}
    return costs, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full-size stage times of bench/full.json")
    full = parser.parse_args().full
    deps, outs = share.stage_graph(ROOT)
    costs, source = full_size_costs() if full else (share.timing_of(outs, ROOT), None)
    result = share.simulate(deps, costs, MACHINES)
    settings = slurm.load_settings(ROOT / slurm.SETTINGS)
    jobs, gather = slurm.plan_jobs(deps, costs, share.timed_stages(outs), settings.min_job_seconds)
    gather_seconds = sum(costs.get(s, share.DEFAULT_STAGE_SECONDS) for s in gather)
    for n in MACHINES:
        plan = share.partition(deps, costs, share.timed_stages(outs), n)
        overhead = sum(costs.get(s, share.DEFAULT_STAGE_SECONDS) for s in (*plan.trunk, *plan.gather))
        result["machines"][str(n)]["worker_split_seconds"] = round(max(plan.loads) + overhead, 1)
        result["machines"][str(n)]["slurm_dag_seconds"] = round(slurm.dag_schedule(jobs, gather_seconds, n), 1)
    result["slurm_jobs"] = {"jobs": len(jobs) + 1, "min_job_seconds": settings.min_job_seconds,
                            "gathered": list(gather)}
    result.update(commit=head_commit(), timed_stages=len(costs),
                  assumed_seconds_per_untimed_stage=share.DEFAULT_STAGE_SECONDS)
    if source:
        result["stage_times_from"] = source
    out = FULL_RESULT if full else RESULT
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'machines':>8} {'list schedule':>14} {'lower bound':>12} {'worker split':>13} {'slurm DAG':>10}")
    for n in MACHINES:
        row = result["machines"][str(n)]
        print(f"{n:>8} {row['list_schedule_seconds']:>12.0f} s {row['lower_bound_seconds']:>10.0f} s "
              f"{row['worker_split_seconds']:>11.0f} s {row['slurm_dag_seconds']:>8.0f} s")
    print(f"{result['stages']} stages, {len(costs)} timed; serial {result['serial_seconds']:.0f} s, "
          f"critical path {result['critical_path_seconds']:.0f} s; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
