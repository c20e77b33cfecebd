"""docs/benchmarks.md and the README's times, from bench/*.json: every figure with the commit,
date and machine it was measured on, and the command that measured it. A file that is missing
gives "not measured yet", never a number.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Bench = dict[str, Any]   # file stem -> that file's JSON
STUDY_BUDGET_S = 15 * 60
SUITE_BUDGET_S = 10 * 60


def load(folder: Path) -> Bench:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def duration(seconds: float) -> str:
    """768.9 -> '12 min 49 s (768.9 s)'; under a minute, seconds alone."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s ({seconds:,.1f} s)"


def machine(found: Any) -> str:
    """The machine a file names, in words (files write it as a mapping or as a few keys)."""
    if isinstance(found, dict):
        words = [f"{found['cpus']} cores" if "cpus" in found else "",
                 found.get("gpu", "").split(",")[0], f"Python {found['python']}" if "python" in found else ""]
        return ", ".join(word for word in words if word)
    return str(found)


def provenance(entry: dict, fallback_machine: Any = None, command: str = "") -> str:
    """'commit abc1234, 2026-11-30, 2 cores, Python 3.11.7: `command`'."""
    date = str(entry.get("measured") or entry.get("started_utc") or "date not recorded")[:10]
    where = machine(entry.get("machine") if isinstance(entry.get("machine"), dict) else
                    fallback_machine or ({"cpus": entry["cpus"]} if "cpus" in entry else "machine not recorded"))
    command = entry.get("command") or command
    said = f"commit {entry.get('commit', 'not recorded')}, {date}, {where}"
    return f"*Measured: {said}" + (f"; `{command}`" if command else "") + ".*"


def yes(flag: bool) -> str:
    """A table's yes, or a bold no that a reader does not miss."""
    return "yes" if flag else "**no**"


def verdict(seconds: float, budget: float) -> str:
    return f"{budget / 60:g} min: {'met' if seconds <= budget else '**missed**'}"


def target(key: str, value: float) -> str:
    if key.endswith("_seconds"):
        return duration(value)
    return f"{value:.2f}" if key.endswith("_share") else f"{value}x"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows), ""]


# --- the two commands ---

def study_line(bench: Bench) -> tuple[str, str]:
    """(time, where it was measured) of `python3 run.py study`, two workers, from a fresh clone."""
    runs = bench.get("study_workers")
    if not runs:
        return "not measured yet", "`python -m bench.study_workers`"
    two = runs["runs"]["2"]
    seconds = two["seconds"]
    return duration(seconds), (f"commit {two['commit']}, {two['measured'][:10]}, {machine(runs['machine'])}; "
                               f"budget {verdict(seconds, STUDY_BUDGET_S)}")


def suite_line(bench: Bench) -> tuple[str, str]:
    suite = bench.get("suite")
    if not suite:
        return "not measured yet", "`python -m bench.suite` measures it"
    seconds = suite["seconds"]
    return duration(seconds), (f"commit {suite['commit']}, {suite['measured'][:10]}, {machine(suite['machine'])}; "
                               f"{suite['passed']} passed, {suite['skipped']} skipped"
                               + (f", **{suite['failed']} failed**" if suite.get("failed") else "") + "; "
                               f"budget {verdict(seconds, SUITE_BUDGET_S)}")


def readme_block(bench: Bench) -> list[str]:
    study, study_where = study_line(bench)
    suite, suite_where = suite_line(bench)
    return ["```bash",
            "python3 run.py study   # the whole default study",
            "python3 run.py test    # the test suite",
            "```", "",
            *table(["command", "time from a fresh clone", "measured"],
                   [["`python3 run.py study`", f"**{study}**", study_where],
                    ["`python3 run.py test`", f"**{suite}**", suite_where]])]


def two_commands(bench: Bench) -> list[str]:
    out = ["## The two commands", "",
           "Each from a fresh clone, its `.venv` already built (a link to a built one), so the time is the "
           "command's and not pip's.", ""]
    runs = bench.get("study_workers")
    if runs:
        rows = [[f"`NNSTUDY_STUDY_WORKERS={n}`" + (" (the default on 2 cores)" if n == "2" else ""),
                 f"{run['commit']}, {run['measured'][:10]}",
                 duration(run["seconds"]),
                 yes(run["dvc_status_clean"]),
                 yes(run["results_as_committed"])] for n, run in sorted(runs["runs"].items())]
        out += ["### `python3 run.py study`", "", provenance(runs), "",
                *table(["workers", "commit, date", "time", "`dvc status` clean", "results as committed"], rows)]
        if "2" in runs["runs"]:
            ratio = (f"Two workers against one, at one commit: {runs['speedup_2_vs_1']}x."
                     if "speedup_2_vs_1" in runs else "The two rows are of different commits: no ratio.")
            out += [f"Budget on 2 cores: {verdict(runs['runs']['2']['seconds'], STUDY_BUDGET_S)}. {ratio}", ""]
    else:
        out += ["### `python3 run.py study`", "", "Not measured yet: `python -m bench.study_workers`.", ""]
    suite = bench.get("suite")
    out += ["### `python3 run.py test`", ""]
    if suite:
        out += [provenance(suite), "",
                *table(["whole command", "pytest alone", "passed", "skipped", "failed", "budget"],
                       [[duration(suite["seconds"]), duration(suite["pytest_seconds"]), suite["passed"],
                         suite["skipped"], suite["failed"], verdict(suite["seconds"], SUITE_BUDGET_S)]])]
        if suite.get("slowest_modules"):
            out += table(["slowest test module", "seconds (its tests' durations)"],
                         [[f"`{name}`", seconds] for name, seconds in suite["slowest_modules"].items()])
    else:
        out += ["Not measured yet: `python -m bench.suite` times it from a fresh clone and writes "
                "`bench/suite.json`. Budget: 10 min on 2 cores.", ""]
    return out


# --- the benchmark (run.py bench) ---

def the_benchmark(bench: Bench) -> list[str]:
    result = bench.get("results")
    if not result:
        return ["## The benchmark", "", "Not measured yet: `python3 run.py bench`.", ""]
    targets, met = result["targets"], result["meets_targets"]
    figures = {"variants_speedup_default": f"{result['variants_speedup_vs_peer']['jax_compiled']}x the peer",
               "variants_speedup_tensorflow": f"{result['variants_speedup_vs_peer']['tensorflow_fit']}x the peer",
               "base_study_one_seed_seconds": duration(result["base_study_one_seed_seconds"]),
               "study_seconds": duration(result["study_seconds"]),
               "exp_sgd_share": f"{result['exp_sgd_share']} of retraining every variant "
                                f"({duration(result['exp_sgd_seconds'])})",
               "noop_seconds": f"{min(result['noop_seconds'])} s"}
    what = {"variants_speedup_default": "the 14 variants (one seed), JAX compiled, against the peer notebook",
            "variants_speedup_tensorflow": "the same on TensorFlow",
            "base_study_one_seed_seconds": "the base study, one seed",
            "study_seconds": "the whole default study from clean (one `dvc repro`)",
            "exp_sgd_share": "`dvc exp run -S optimizer=sgd` from the finished study",
            "noop_seconds": "a no-op `dvc repro`"}
    rows = [[what[key], figures[key], target(key, targets[key]), yes(ok)] for key, ok in met.items()]
    out = ["## The benchmark: `python3 run.py bench`", "",
           "The peer notebook script, the 14 variants on each backend, the study from clean, an experiment "
           "and a no-op, in one run on one machine (`bench/results.json`).", "",
           provenance(result, command="python3 run.py bench"), "",
           *table(["what", "measured", "target", "met"], rows),
           *table(["backend / loop", "14 variants, one seed", "against the peer"],
                  [[name.replace("_", " / ", 1), duration(seconds), f"{result['variants_speedup_vs_peer'][name]}x"]
                   for name, seconds in result["variants_total_seconds"].items()]),
           f"The peer notebook: {duration(result['peer_total_seconds'])}.", ""]
    peer = result.get("peer_side_by_side")
    if peer:
        total, speed = peer["variants_total"], peer["speedup_vs_peer"]
        out += ["### The peer, side by side: `python3 run.py bench --peer`", "", provenance(peer), "",
                *table(["", "seconds"],
                       [["the peer notebook", duration(peer["peer_total_seconds"])],
                        ["our 14 variants, stage time", duration(total["stage_seconds"])],
                        ["of which start-up", duration(total["startup_seconds"])],
                        ["of which fitting", duration(total["fit_seconds"])],
                        ["our 14 variants, wall time (DVC included)", duration(total["wall_seconds"])]]),
                f"By stage time {speed['by_stage_time']}x the peer (target {peer['target_by_stage_time']}x: "
                f"{'met' if peer['meets_target'] else '**missed**'}), by wall time {speed['by_wall_time']}x, "
                f"by fitting alone {speed['fitting_only']}x.", ""]
    transfer = result.get("transfer")
    if transfer:
        goal = targets.get("transfer_study_seconds")
        out += ["### The transfer study alone: `python3 run.py bench --transfer`", "",
                provenance(transfer, result.get("machine"), "python3 run.py bench --transfer"), "",
                f"{duration(transfer['transfer_study_seconds'])} from clean (target {duration(goal)}: "
                f"{'met' if transfer['meets_target'] else '**missed**'}), of which the zoo "
                f"{duration(transfer['transfer_zoo_seconds'])} and the source network "
                f"{duration(transfer['transfer_stages_seconds']['transfer_pretrain'])}.", ""]
    resume = result.get("resume")
    if resume:
        out += ["### What checkpoints cost: `python3 run.py bench --resume`", "",
                provenance(resume, result.get("machine"), "python3 run.py bench --resume"), "",
                *table(["checkpoints", f"`{resume['stage']}`, seconds per run"],
                       [[state, ", ".join(map(str, runs))] for state, runs in resume["seconds"].items()]),
                f"Median added: {resume['added_seconds_median']} s "
                f"(+{resume['added_share_median'] * 100:.0f} %).", ""]
    return out


# --- where the seeds go ---

def seeds_side_by_side(bench: Bench) -> list[str]:
    found = bench.get("seed_processes")
    if not found:
        return []
    rows = [[key.replace("/batch_", ", batch "), f"{entry['alone_epoch_seconds']} s",
             entry["2_side_by_side"]["gain"], entry["3_side_by_side"]["gain"]]
            for key, entry in found["results"].items()]
    out = ["## Seeds side by side: `python -m bench.seed_processes`", "",
           "How much more 2 and 3 training processes side by side train than one alone (1.0: one process "
           "already used every core). The median epoch of 3, the first left out.", "",
           provenance(found, command="python -m bench.seed_processes --stage"), "",
           *table(["data, batch size", "one process, an epoch", "gain, 2 side by side", "gain, 3 side by side"],
                  rows)]
    stage = found.get("stage")
    if stage:
        out += [f"`{stage['command']}`: " + ", ".join(
            f"{duration(seconds[0])} in {n} process{'es' if n != '1' else ''}" for n, seconds in stage["seconds"].items())
            + f" ({max(stage['speedup'].values())}x).", ""]
    return out


def seeds_in_one_program(bench: Bench) -> list[str]:
    found = bench.get("vmap_seeds")
    if not found:
        return []
    rows = [[key.replace("/", ", "), f"{entry['one_by_one']['epoch_seconds']} s",
             f"{entry['together']['epoch_seconds']} s", f"{entry['speedup']}x"]
            for key, entry in found["results"].items()]
    return ["## Seeds in one program: `python -m bench.vmap_seeds`", "",
            f"An epoch of all {len(found['seeds'])} seeds, one by one against vmapped together, on "
            f"`{found['device']}` (medians of {found['repeats']} repeats, compilation excluded; load average "
            f"{found['load_average_at_start']:.1f} at the start).", "",
            provenance(found, command="python -m bench.vmap_seeds"), "",
            *table(["data, variant", "one by one", "together", "together is"], rows)]


# --- at full size, on more machines, on a GPU ---

def full_size(bench: Bench) -> list[str]:
    found = bench.get("full")
    if not found:
        return []
    versus = found["tuned_vs_base"]
    out = ["## The study at full size: `python3 run.py bench --full`", "",
           f"The MLP study on {found['dataset']} from clean, 3 seeds, in a fresh clone.", "",
           provenance(found), "",
           *table(["part", "time"], [[part, duration(seconds)] for part, seconds in found["parts_seconds"].items()]
                  + [["**total**", f"**{duration(found['total_seconds'])}**"]]),
           f"Target {duration(found['target_seconds'])}: {'met' if found['meets_target'] else '**missed**'}. "
           f"The slowest stage: `train@batch_online`, {duration(found['stages_seconds']['train@batch_online'])}.", "",
           f"The tuned network {versus['tuned']['mean_test_accuracy'] * 100:.2f} % against the base network's "
           f"{versus['base']['mean_test_accuracy'] * 100:.2f} % ({versus['diff_points']:+.2f} points; Welch p "
           f"{versus['welch_p']:.3f} raw, {versus['welch_p_holm']:.2f} after Holm): {versus['verdict']}.", ""]
    adds = found.get("transfer_adds")
    if adds:
        out += ["### What the transfer study adds: `python3 run.py bench --full --transfer-only`", "",
                provenance(adds, found.get("machine")), "",
                f"{duration(adds['seconds'])} alone from clean, of which the source networks "
                f"(`transfer_pretrain`) {duration(adds['stages_seconds']['transfer_pretrain'])} and the zoo "
                f"{duration(adds['stages_seconds']['transfer_zoo'])}.", ""]
    return out


def scale_out(bench: Bench) -> list[str]:
    out = []
    for stem, title in (("scaleout", "the default study"), ("scaleout_full", "the study at full size")):
        found = bench.get(stem)
        if not found:
            continue
        command = "python -m bench.scaleout" + (" --full" if stem == "scaleout_full" else "")
        rows = [[n, duration(m["list_schedule_seconds"]) + f" ({m['speedup']}x)", duration(m["lower_bound_seconds"]),
                 duration(m["worker_split_seconds"])] for n, m in found["machines"].items()]
        out += [f"## Scale-out, {title}: `{command}`", "",
                f"Simulated from committed stage times and the DAG of `dvc.yaml` ({found['stages']} stages, "
                f"{found['timed_stages']} timed, the others {found['assumed_seconds_per_untimed_stage']} s each; "
                f"pulls and pushes not counted). In series {duration(found['serial_seconds'])}, critical path "
                f"{duration(found['critical_path_seconds'])}.", "",
                f"*Simulated at commit {found['commit']}" + ("; stage times from " + ", ".join(
                    f"{part} ({source['command']}, commit {source['commit']}, {source['measured'][:10]})"
                    for part, source in found["stage_times_from"].items()) if "stage_times_from" in found else "")
                + ".*", "",
                *table(["machines", "list scheduling", "lower bound", "`run.py worker` split + gather"], rows)]
    return out


def gpu(bench: Bench) -> list[str]:
    found = bench.get("gpu")
    if not found:
        return []
    study = found["study"]
    rows = [[part, entry["stages"], duration(entry["cpu_seconds"]), duration(entry["gpu_seconds"])]
            for part, entry in study["parts_seconds_gpu_vs_cpu"].items()]
    return ["## On a GPU: `python -m bench.gpu`", "",
            "The full-size study's stage commands in the DAG's order, 6 at a time, `seeds_together: true`, "
            f"stopped at a deadline of {duration(study['deadline_seconds'])}; DVC's own bookkeeping is not "
            "in these figures.", "",
            provenance(found), "",
            f"Target {duration(found['target_seconds'])}: {'met' if found['meets_target'] else '**missed**'}: "
            f"{study['stages_done']} of {study['stages']} stages done in {duration(study['wall_seconds'])}"
            + ("." if study["complete"] else ", the rest stopped at the deadline or not started."), "",
            *table(["part (the stages done)", "stages", f"2 cores ({study['cpu_from'].split(' (')[0]})", "GPU"],
                   rows)]


def gate(bench: Bench) -> list[str]:
    found = bench.get("gate_calibration")
    if not found:
        return []
    families = found["false_alarms"]["families"]
    rows = [[family, len(entry["seeds"]), f"{entry['splits']:,}", f"{entry['false_alarm_rate'] * 100:.1f} %",
             " – ".join(f"{v * 100:.0f} %" for v in entry.get("seed_subsample_95") or []) or "—"]
            for family, entry in families.items()]
    planted = [[name.replace("=", " → "), f"{entry['median_drop_points']:+.1f}", f"{entry['splits']:,}",
                f"{entry['gate_caught_rate'] * 100:.0f} %", f"{entry['verdict_caught_rate'] * 100:.0f} %"]
               for name, entry in found["planted_regressions"].items()]
    return ["## The gate and the verdicts, calibrated: `python -m bench.gate_calibration`", "",
            f"Every rate below is recomputed from the committed per-seed results, `{found['data']}` "
            f"(machines: {', '.join(found['machines'])}); [Statistics](statistics.md) explains the verdicts "
            "and the gate.", "",
            provenance(found), "",
            f"Whole studies with any false alarm: {found['false_alarms']['study_false_alarm_rate'] * 100:.1f} % "
            f"(target {found['false_alarms']['target'] * 100:.0f} %).", "",
            *table(["family", "seeds in the pool", "splits", "false alarms", "95 % over seed subsamples"], rows), "",
            "Planted regressions (a broken variant's seeds in place of the entry's):", "",
            *table(["planted", "median change (points)", "splits", "the gate fails it", "the verdict calls it different"],
                   planted), "",
            f"Smallest difference found with 80 % power after Holm, in points ({found['power_after_holm']['what']}):", "",
            *power_block(bench)]


# --- the statistics page's blocks (docs/statistics.md) ---

def _percent(value: float) -> str:
    return f"{value * 100:.1f}"


def gate_simulated_block(bench: Bench) -> list[str]:
    """The gate's false alarms in its simulation test's three cases, and its power, as committed
    and uncapped, from bench/gate_alternatives.json."""
    found = bench.get("gate_alternatives")
    if not found:
        return ["Not simulated yet: `python -m bench.gate_alternatives`."]
    methods = found["methods"]
    low, high = (f"{x * 100:g}" for x in found["target"])

    def rates(name: str, key: str = "rate") -> str:
        return " / ".join(_percent(case[key]) for case in methods[name]["cases"].values()) + " %"

    committed = methods["committed"]
    studies = next(iter(committed["cases"].values()))["studies"]
    lines = [f"**Simulated** (`tests/test_check.py`; `{found['command']}`: {studies:,} unchanged studies per case "
             f"of a {found['entries']}-entry family at {found['seeds_per_study']} seeds a study, the gate's own "
             f"vectorised code, prior worth at most {found['committed_prior_df_cap']:g} d.f.): family-wise false "
             f"alarms {rates('committed')} with one noise size for every entry, the MLP's spread of noise sizes "
             "(0.35-1.6 points, evenly on a log scale), and one entry collapsing to chance on a fifth of its "
             f"seeds; within {low}-{high} % in every case: {yes(committed['all_within_target'])}. A planted "
             f"{found['planted_points']:g}-point regression on one entry is caught in {rates('committed', 'planted_caught')} "
             f"of the studies. The fitted d0 is infinite (one noise size) in {rates('committed', 'fitted_d0_infinite')} "
             "of the unchanged studies."]
    if "uncapped" in methods:
        lines += ["", f"With the fitted d0 in full (the gate before the cap) the same cases gave {rates('uncapped')} "
                  f"false alarms and caught the planted regression in {rates('uncapped', 'planted_caught')}: more "
                  "power where the noise is one size, too many false alarms where it spreads."]
    if "cap_0" in methods:
        lines += [f"Each entry's own variance alone (no prior) gives {rates('cap_0')}, and catches "
                  f"{rates('cap_0', 'planted_caught')}: that is what the prior's one degree of freedom buys."]
    return [*lines, "", provenance(found) + " Every method tried: [benchmarks](benchmarks.md)."]


def gate_calibrated_block(bench: Bench) -> list[str]:
    """The gate and the verdict rule on committed per-seed data, from bench/gate_calibration.json."""
    found = bench.get("gate_calibration")
    if not found:
        return ["Not calibrated yet: `python -m bench.gate_calibration`."]
    alarms = found["false_alarms"]
    rows = []
    for family, entry in alarms["families"].items():
        where = (f"{family} family, every ordered split of its {len(entry['seeds'])} seeds into two studies "
                 f"({entry['splits']:,})")
        spread = entry.get("seed_subsample_95")
        rate = f"**{_percent(entry['false_alarm_rate'])} %** with a false alarm"
        rows.append([where, rate + (f"; {_percent(spread[0])}-{_percent(spread[1])} % over subsamples of 3 in 4 "
                                    f"of the seeds (Monte Carlo error of their mean "
                                    f"{_percent(entry['subsample_mean_monte_carlo_error'])} %)"
                                    if spread else " (too few seeds for an interval)")])
    for family, entry in found["replicates"].items():
        blocks = ", ".join(f"{b[0]}-{b[-1]}" for b in entry["blocks"])
        rows.append([f"replicate blocks ({family} seeds {blocks}: {entry['ordered_pairs']} ordered pairs)",
                     f"{entry['pairs_with_an_alarm']} with an alarm (at a true 5 %, none happens "
                     f"{_percent(entry['chance_of_none_at_5_percent'])} % of the time)"])
    for name, entry in found["planted_regressions"].items():
        gated, broken = name.split("=")
        rows.append([f"`{gated}` as `{broken}` ({entry['median_drop_points']:+.1f} points), {entry['splits']:,} splits",
                     f"caught **{entry['gate_caught_rate'] * 100:.0f} %**; the verdict, one pair at a time, "
                     f"{entry['verdict_caught_rate'] * 100:.0f} %"])
    self_test = found["verdict_self_comparison"]
    rows.append(["an entry against itself on disjoint seeds, the verdict rule before Holm",
                 f"significant in {_percent(self_test['mean_rate'])} % on average (nominal "
                 f"{self_test['nominal'] * 100:g} %)"])
    return [f"Whole studies with any false alarm: **{_percent(alarms['study_false_alarm_rate'])} %** (target "
            f"{alarms['target'] * 100:g} %), at {found['seeds_per_study']} seeds a study and a tolerance of "
            f"{found['tolerance_points']:g} points.", "",
            *table([f"measured ({found['seeds_per_study']} seeds a study)", "result"], rows),
            provenance(found, command=found["command"].strip())]


def pairing_block(bench: Bench) -> list[str]:
    found = (bench.get("gate_calibration") or {}).get("pairing")
    if not found:
        return ["Not measured yet: `python -m bench.gate_calibration`."]
    rows = [[f"`{step}`", f"{entry['correlation']:.2f}", f"{entry['efficiency']:.2f}"]
            for step, entry in found["steps"].items()]
    return [*table(["step", "seed correlation", "efficiency"], [*rows, ["every step (median)", "",
                                                                          f"{found['median_efficiency']:.2f}"]]),
            f"Over {found['seeds']} seeds; {found['what']}. Pairing pays for: "
            + (", ".join(f"`{step}`" for step in found["steps_where_pairing_pays"]) or "none") + "."]


def power_block(bench: Bench) -> list[str]:
    found = (bench.get("gate_calibration") or {}).get("power_after_holm")
    if not found:
        return ["Not measured yet: `python -m bench.gate_calibration`."]
    families = {name: entry for name, entry in found.items() if isinstance(entry, dict)}
    counts = sorted({int(n) for entry in families.values() for n in entry["detectable_points_at_80pct"]})
    rows = [[f"{name} ({entry['median_seed_std_points']:.2f} points, {entry['comparisons_in_holm_family']})",
             *(f"{entry['detectable_points_at_80pct'][str(n)]:.1f}" for n in counts)] for name, entry in families.items()]
    return table(["family (median seed std, comparisons under Holm)", *(f"{n} seeds" for n in counts)], rows)


# --- the fine-tune ---

def _config(hyper: dict) -> str:
    return (f"{hyper['units_1']}/{hyper['units_2']}, L2 {hyper['l2']:g}, lr {hyper['learning_rate']:g}, "
            f"dropout {hyper['dropout']:g}")


def tuning(bench: Bench) -> list[str]:
    """The pick over seeds: one lucky run's collapse, three tuner seeds, full size, the cost."""
    out = []
    collapse = bench.get("collapse_seeds")
    if collapse:
        out += ["## The fine-tune's pick, over seeds: `python -m bench.collapse_seeds`", "",
                f"The configuration one lucky Hyperband trial picked on another machine "
                f"({_config(collapse['configuration'])}), trained from scratch {collapse['epochs']} epochs a run "
                f"on seeds 1-10 of {collapse['dataset']}, four ways: how many runs collapsed to chance.", "",
                provenance(collapse), "",
                *table(["path", "collapsed"], [[name.replace("_", ", "), count]
                                               for name, count in collapse["collapsed"].items()])]
    replicates = bench.get("tune_replicates")
    if replicates:
        rows = [[r["tuner_seed"], r["search_best"]["trial_id"], f"{r['search_best']['single_run'] * 100:.2f}",
                 f"{r['pick']['trial_id']}: {_config(r['pick']['hyperparameters'])}",
                 f"{r['pick']['mean'] * 100:.2f} ± {r['pick']['se'] * 100:.2f}",
                 " / ".join(f"{a * 100:.1f}" for a in r["final"]["test_accuracy"]),
                 yes(r["final"]["holds_on_every_seed"])] for r in replicates["replicates"]]
        base = replicates["base"]
        agreement = replicates["agreement"]
        out += ["## Three searches, three tuner seeds: `python -m bench.tune_replicates`", "",
                "Three searches with different tuner seeds, standing in for three machines, on "
                f"{replicates['dataset']}; each pick retrained as `final` on the study's seeds.", "",
                provenance(replicates), "",
                *table(["tuner seed", "best single trial", "its val %", "pick (over seeds)",
                        "pick's val % ± SE", "final's test % per seed", "holds on every seed"], rows),
                f"The base network `{base['name']}`: {base['mean_test_accuracy'] * 100:.1f} %. Same pick every "
                f"time: {'yes' if agreement['same_pick'] else 'no'}; within one standard error of each other: "
                f"{yes(agreement['within_one_se'])}; every final holds: "
                f"{yes(replicates['every_final_holds'])}; every final at least the base: "
                f"{yes(replicates['every_final_at_least_base'])}.", ""]
    full = bench.get("tune_full")
    if full:
        out += ["## The fine-tune at full size: `python -m bench.tune_full`", "",
                provenance(full), "",
                f"On full Fashion-MNIST the pick is {full['pick']['trial_id']} ({_config(full['pick']['hyperparameters'])}; "
                f"the best single trial was {full['pick']['search_best']}). Tuned "
                f"{full['tuned']['mean_test_accuracy'] * 100:.2f} % against the base network's "
                f"{full['base']['mean_test_accuracy'] * 100:.2f} %: at least the base: "
                f"{yes(full['tuned_at_least_base'])}. The `tune` stage took "
                f"{duration(full['tune_timing']['stage_seconds'])} (search {duration(full['tune_timing']['search_seconds'])}, "
                f"the candidates over seeds {duration(full['tune_timing']['selection_seconds'])}).", ""]
    timing = bench.get("tune_timing")
    if timing:
        before, after = timing["baseline"], timing["replicates"][0]
        out += ["## What the pick over seeds costs: `tune` before and after", "",
                provenance(timing), "",
                *table(["", "commit", "wall", "CPU"],
                       [["before (one run decides)", before["commit"], duration(before["tune"]["wall_seconds"]),
                         duration(before["tune"]["cpu_seconds"])],
                        ["after (search, then candidates over seeds)", timing["commit"],
                         duration(after["stages"]["tune"]["wall_seconds"]), duration(after["stages"]["tune"]["cpu_seconds"])]]),
                f"Of the after: the search {duration(after['timing']['search_seconds'])}, the candidates over seeds "
                f"{duration(after['timing']['selection_seconds'])}. The trials now run on the compiled loop; the "
                "selection round is new work, so `tune` is "
                + ("faster." if after["stages"]["tune"]["wall_seconds"] <= before["tune"]["wall_seconds"] else
                   "**slower** than before."), ""]
    return out


def gate_alternatives(bench: Bench) -> list[str]:
    found = bench.get("gate_alternatives")
    if not found:
        return []
    low, high = found["target"]
    cases = list(next(iter(found["methods"].values()))["cases"])
    rows = [[f"`{name}`", *(f"{m['cases'][c]['rate'] * 100:.1f} ± {m['cases'][c]['se'] * 100:.1f} %" for c in cases),
             yes(m["all_within_target"]), *(f"{m['cases'][c]['planted_caught'] * 100:.0f} %" for c in cases)]
            for name, m in found["methods"].items()]
    return ["## The gate's false alarms, and what was tried: `python -m bench.gate_alternatives`", "",
            f"Family-wise false alarms of {found['entries']} entries at {found['seeds_per_study']} seeds a study "
            f"(alpha {found['family_alpha']}), in the three cases of the gate's simulation test, for the gate as "
            f"committed (its prior worth at most {found['committed_prior_df_cap']:g} d.f.) and for the other ways "
            "tried (the module's docstring says what each is), with how often each catches a planted "
            f"{found['planted_points']:g}-point regression on one entry. The aim: every case within "
            f"{low * 100:g}-{high * 100:g} %.", "",
            provenance(found), "",
            *table(["method", *(f"{c}: false alarms" for c in cases), f"all within {low * 100:g}-{high * 100:g} %",
                    *(f"{c}: planted caught" for c in cases)], rows)]


SECTIONS: tuple[Callable[[Bench], list[str]], ...] = (
    two_commands, the_benchmark, seeds_side_by_side, seeds_in_one_program, tuning, full_size, scale_out, gpu, gate, gate_alternatives)


def render(bench: Bench) -> str:
    out = ["# Benchmarks", "",
           "<!-- Generated by `python -m nnstudy.docs` from bench/*.json; do not edit. -->", "",
           "Every figure here is read from a committed file in `bench/`, with the commit, date and machine it "
           "was measured on and the command that measured it; rerun the command, commit its JSON and run "
           "`python -m nnstudy.docs` to update this page. Times on a shared machine vary with its load: compare "
           "figures measured in one run, side by side.", ""]
    for section in SECTIONS:
        out += section(bench)
    return "\n".join(out).rstrip() + "\n"
