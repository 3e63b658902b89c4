"""The dated Markdown report, its PNG plots and the README's headline table.

Everything here renders from the results dictionary `bench.run` collects (also saved as
JSON beside the report), so a report can be re-rendered and tested without a run.

Serves docs/explanation/architecture.md, "What we measured": ratios carry over, absolute figures
drift.
"""

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import analysis
from bench.analysis import format_ratio, per_second, per_seed_period
from bench.scenarios import BOX_VARIANT, VARIANT_TITLES

README_START = "<!-- bench:headline:start -->"
README_END = "<!-- bench:headline:end -->"
SCENARIO_TITLES = {
    "s1": "1. The seed's table: its running jobs (3 videos, and 2 AI jobs where the AI app is "
          "installed), each polled once a second",
    "s2": "2. A hundredfold: every running job polled once a second",
    "s3": "3. The job box: per-job polls vs one GET /api/jobbox/ vs the stream",
    "s4": "4. A cold key: concurrent polls of one job whose snapshot was just deleted",
    "s5": "5. Redis stopped under the scenario-2 load",
    "s6": "6. Jobs finished more than an hour ago (snapshot expired)",
}


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def records_of(results: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    return [r for r in results["records"] if r["scenario"] == scenario]


def variant_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-second, per-10-minute, per-poll and vs-"before" figures of polling phases."""
    records = list(records)
    before = next((r for r in records if r["variant"] == "before"), None)
    rows = []
    for r in records:
        window = r["window_seconds"]
        job_per_s = per_second(r["job_reads"], window)
        rows.append({
            "variant": r["variant"],
            "label": r["label"],
            "polls": r["polls"],
            "errors": sum(r["errors"].values()),
            "job_reads": r["job_reads"],
            "job_reads_per_s": job_per_s,
            "job_reads_per_10min": per_seed_period(r["job_reads"], window),
            "auth_reads_per_s": per_second(r["auth_reads"], window),
            "transactions_per_s": per_second(r["transactions"], window),
            "backend_cpu_ms_per_s": (None if r["backend_cpu_s"] is None
                                     else 1000 * per_second(r["backend_cpu_s"], window)),
            "app_cpu_ms_per_poll": 1000 * r["app_cpu_s"] / r["polls"] if r["polls"] else None,
            "job_reads_per_poll": r["job_reads"] / r["polls"] if r["polls"] else None,
            "p50": r["latency_ms"].get("p50"),
            "p99": r["latency_ms"].get("p99"),
            "vs_before": format_ratio(r["job_reads"], before["job_reads"]) if before else "—",
            "cpu_vs_before": (format_ratio(r["backend_cpu_s"], before["backend_cpu_s"])
                              if before and r["backend_cpu_s"] is not None else "—"),
            "autovacuum": r["autovacuum"],
        })
    return rows


def title(variant: str) -> str:
    return VARIANT_TITLES.get(variant, variant)


def polling_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| way | polls | errors | job SELECTs | per s | per 10 min (scaled) "
        "| vs before | auth-table scans/s | statements/s | DB backend CPU ms/s | CPU vs before "
        "| app CPU ms/poll | p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in variant_rows(records):
        flag = " †" if row["autovacuum"] else ""
        lines.append(
            f"| {title(row['variant'])}{flag} | {row['polls']:,} | {row['errors']:,} "
            f"| {fmt(row['job_reads'], 0)} | {fmt(row['job_reads_per_s'])} "
            f"| {fmt(row['job_reads_per_10min'], 0)} | {row['vs_before']} "
            f"| {fmt(row['auth_reads_per_s'])} | {fmt(row['transactions_per_s'])} "
            f"| {fmt(row['backend_cpu_ms_per_s'])} | {row['cpu_vs_before']} "
            f"| {fmt(row['app_cpu_ms_per_poll'], 2)} | {fmt(row['p50'])} / {fmt(row['p99'])} |")
    return lines


def decisive_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One step per rate: its last attempt (a retry that passed, or the final failure)."""
    by_rate: dict[float, dict[str, Any]] = {}
    for step in steps:
        by_rate[step["target_rps"]] = step
    return [by_rate[rate] for rate in sorted(by_rate)]


def best_step(steps: list[dict[str, Any]]) -> analysis.RateStep | None:
    return analysis.highest_sustained([analysis.RateStep(
        s["target_rps"], s["achieved_rps"], s["p99_ms"], s["requests"], s["errors"])
        for s in decisive_steps(steps)])


def rate_table(results: dict[str, Any]) -> list[str]:
    searches = results["extra"].get("rate_search", {})
    if not searches:
        return []
    best = {v: best_step(steps) for v, steps in searches.items()}
    base = best.get("before")
    ceiling = best.get("ceiling")
    lines = ["| way | highest rate sustained (p99 < 50 ms) | p99 there | vs before "
             "| share of the ceiling | app CPU ms/poll there | first rate not sustained |",
             "|---|---|---|---|---|---|---|"]
    for variant, steps in searches.items():
        found = best[variant]
        failed = next((s for s in decisive_steps(steps) if not s["sustained"]), None)
        rate = found.achieved_rps if found else 0.0
        failed_text = (f"{failed['target_rps']:,} req/s (p99 {fmt(failed['p99_ms'])} ms, "
                       f"{failed['achieved_rps']:,.0f} sent, {failed['errors']} errors)"
                       if failed else "none: every rate tried was sustained")
        lines.append(
            f"| {title(variant)} | {'≥ ' if not failed else ''}{rate:,.0f} req/s "
            f"| {fmt(found.p99_ms) if found else '—'} ms "
            f"| {format_ratio(rate, base.achieved_rps) if base else '—'} "
            f"| {format_ratio(rate, ceiling.achieved_rps) if ceiling else '—'} "
            f"| {cpu_text(steps, found)} | {failed_text} |")
    single, box = best.get("jobbox"), best.get(BOX_VARIANT)
    if single and box:
        lines += ["", f"The job box (one GET for a person's 20 jobs) sustains "
                      f"{format_ratio(box.achieved_rps, single.achieved_rps)} of the "
                      "single-job poll rate."]
    return lines


def cpu_table(results: dict[str, Any]) -> list[str]:
    """App CPU per poll of every way, measured in interleaved rounds at one rate."""
    found = results["extra"].get("cpu_per_poll")
    if not found:
        return []
    medians = {v: analysis.median_of(r) for v, r in found["ms_per_poll"].items()}
    ceiling, before = medians.get("ceiling"), medians.get("before")
    lines = [f"App CPU per poll side by side: each way polled at {found['rate']} req/s for "
             f"{found['seconds']:.0f} s, in {len(next(iter(found['ms_per_poll'].values())))} "
             "interleaved rounds (so other work on the machine falls on every way alike); the "
             "gunicorn workers' CPU time (/proc) divided by the polls answered.", "",
             "| way | app CPU ms/poll (median) | each round | vs the ceiling | vs before |",
             "|---|---|---|---|---|"]
    for variant, rounds in found["ms_per_poll"].items():
        median = medians[variant]
        each = ", ".join("—" if r is None else f"{r:.3f}" for r in rounds)
        lines.append(
            f"| {title(variant)} | {'—' if median is None else f'{median:.3f}'} | {each} "
            f"| {format_ratio(median, ceiling) if median and ceiling else '—'} "
            f"| {format_ratio(median, before) if median and before else '—'} |")
    return lines


def cpu_text(steps: list[dict[str, Any]], found: analysis.RateStep | None) -> str:
    """The workers' CPU per request at the highest sustained step (from /proc)."""
    if found is None:
        return "—"
    step = next((s for s in decisive_steps(steps) if s["target_rps"] == found.target_rps), {})
    value = step.get("app_cpu_ms_per_poll")
    return "—" if value is None else f"{value:.3f}"


def outage_table(results: dict[str, Any]) -> list[str]:
    timelines = results["extra"].get("s5", {})
    if not timelines:
        return []
    lines = ["| way | web processes | polls | failed polls | job SELECTs/s before the stop "
             "| during the stop | … per web process | DB statements/s during the stop "
             "| during the stop vs before (scenario 2) "
             "| after Redis returned, until reads and errors are back to normal "
             "| every job's true state again after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    records = {r["variant"]: r for r in records_of(results, "s5")}
    s2_before = next((r for r in variant_rows(records_of(results, "s2"))
                      if r["variant"] == "before"), None)
    s5_before = timelines.get("before")
    for variant, t in timelines.items():
        reads = t["reads_per_second"]
        stopped = int(t["stopped_at"])
        before = sum(reads[1:stopped]) / max(1, len(reads[1:stopped]))
        record = records.get(variant, {"polls": 0, "errors": {}})
        recovery = t["recovery_seconds"]
        recorded = len(reads) - t["returned_at"]
        recovered = (f"not within the {recorded} s recorded" if recovery is None
                     else f"{recovery} s")
        if s5_before:
            vs_before = format_ratio(t["outage_reads_per_second"],
                                     s5_before["outage_reads_per_second"])
        elif s2_before:
            vs_before = format_ratio(t["outage_reads_per_second"], s2_before["job_reads_per_s"])
        else:
            vs_before = "—"
        workers = t.get("workers")
        per_process = (fmt(t["outage_reads_per_second"] / workers, 2) if workers else "—")
        lines.append(
            f"| {title(variant)} | {workers or '—'} | {record['polls']:,} "
            f"| {sum(record['errors'].values()):,} "
            f"| {fmt(before)} | {fmt(t['outage_reads_per_second'])} | {per_process} "
            f"| {fmt(t.get('outage_statements_per_second'))} "
            f"| {vs_before} | {recovered} | {_true_state_text(t)} |")
    return lines


def _true_state_text(timeline: dict[str, Any]) -> str:
    stale = timeline.get("stale_jobs_per_second")
    if not stale:
        return "—"
    seconds = timeline.get("true_state_seconds")
    worst = max(stale)
    if seconds is None:
        return f"not within the {len(stale)} s recorded ({stale[-1]} jobs still older)"
    return f"{seconds} s ({worst} jobs older at most)" if worst else "at once (none older)"


def burst_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| way | polls | errors | job SELECTs | vs before | auth-table scans "
             "| p50 / p99 ms |", "|---|---|---|---|---|---|---|"]
    base = next((r for r in records if r["variant"] == "before"), None)
    for r in records:
        lines.append(
            f"| {title(r['variant'])} | {r['polls']:,} | {sum(r['errors'].values()):,} "
            f"| {fmt(r['job_reads'], 0)} "
            f"| {format_ratio(r['job_reads'], base['job_reads']) if base else '—'} "
            f"| {fmt(r['auth_reads'], 0)} | {fmt(r['latency_ms'].get('p50'))} / "
            f"{fmt(r['latency_ms'].get('p99'))} |")
    return lines


def expired_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| way | phase | polls | job SELECTs | per poll | vs before "
             "| auth-table scans per poll |", "|---|---|---|---|---|---|---|"]
    before = {r["label"]: r for r in records if r["variant"] == "before"}
    for r in records:
        polls = r["polls"] or 1
        base = before.get(r["label"])
        lines.append(f"| {title(r['variant'])} | {r['label']} | {r['polls']:,} "
                     f"| {fmt(r['job_reads'], 0)} | {r['job_reads'] / polls:.2f} "
                     f"| {format_ratio(r['job_reads'], base['job_reads']) if base else '—'} "
                     f"| {r['auth_reads'] / polls:.2f} |")
    return lines


def box_table(records: list[dict[str, Any]], results: dict[str, Any]) -> list[str]:
    """Jobbox's three ways to watch 20 jobs a person, against scenario 2's per-job "before"."""
    s2_before = next((r for r in records_of(results, "s2") if r["variant"] == "before"), None)
    lines = ["| way | requests | requests vs before per job (scenario 2) | job SELECTs "
             "| all table scans | app CPU s | DB backend CPU s | events | bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ratio_text = "—"
        if s2_before and r["window_seconds"]:
            ratio_text = format_ratio(r["polls"] / r["window_seconds"],
                                      s2_before["polls"] / s2_before["window_seconds"])
        lines.append(f"| {r['label']} | {r['polls']:,} | {ratio_text} "
                     f"| {fmt(r['job_reads'], 0)} "
                     f"| {fmt(r['job_reads'] + r['auth_reads'] + r['other_reads'], 0)} "
                     f"| {r['app_cpu_s']:.2f} | {r['backend_cpu_s']:.2f} | {r['events']:,} "
                     f"| {r['bytes_read']:,} |")
    return lines


def headline(results: dict[str, Any]) -> list[str]:
    """The README's table: the seed's figures, then the hundredfold, per way of serving."""
    variants = ["before", "seed", "cachalot", "jobbox"]
    s1 = {r["variant"]: r for r in variant_rows(records_of(results, "s1"))}
    s2 = {r["variant"]: r for r in variant_rows(records_of(results, "s2"))}
    lines = ["| | " + " | ".join(title(v) for v in variants) + " |",
             "|---|" + "---|" * len(variants)]

    def row(name: str, table: dict[str, Any], key: str, digits: int = 1) -> None:
        if table:
            lines.append(f"| {name} | " + " | ".join(
                fmt(table[v][key], digits) if v in table else "—" for v in variants) + " |")

    n1 = next(iter(s1.values()))["label"].split(" ")[0] if s1 else "5"
    row(f"seed's load ({n1} running jobs at 1 Hz): job SELECTs/s", s1, "job_reads_per_s")
    row("… per 10 minutes (scaled)", s1, "job_reads_per_10min", 0)
    row("… every DB statement/s (auth included)", s1, "transactions_per_s")
    n2 = next(iter(s2.values()))["label"].split(" ")[0] if s2 else "500"
    row(f"x100 ({n2} running jobs at 1 Hz): job SELECTs/s", s2, "job_reads_per_s")
    row("… every DB statement/s (auth included)", s2, "transactions_per_s")
    row("… DB backend CPU ms per second", s2, "backend_cpu_ms_per_s")
    row("… p99 latency ms", s2, "p99")
    return lines


def loads(values: Iterable[float] | None) -> str:
    return "/".join(f"{x:.1f}" for x in values) if values else "?"


def late_text(late: dict[str, int] | None) -> str:
    if late is None:
        return "(The quick profile skips the final 11 s check for late counters.)"
    return (f"After the last phase the run waited 11 s idle: {late['all_reads']} table reads "
            f"and {late['transactions']} transactions arrived late (the monitor's own "
            "transactions are among them).")


def markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    m, v, p = results["machine"], results["versions"], results["profile_settings"]
    out = [
        f"# Jobbox benchmark — {results['started_at']} ({results['profile']} profile)", "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Linux "
        f"{m['kernel']}; load average {loads(m['load_average'])} at the start and "
        f"{loads(results.get('load_average_at_end'))} at the end — the machine is shared "
        "with other work, so read the ratios, not the absolute numbers.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Servers: gunicorn gthread, {results['servers']['main']['workers']} workers x "
        f"{results['servers']['main']['threads']} threads each; one serves the service and the "
        "baseline views (bench.settings), one serves the same views under django-cachalot "
        "(bench.settings_cachalot). Every figure used persistent database connections "
        f"(CONN_MAX_AGE={results['conn_max_age']} s, with Django's health check) except the "
        "row marked CONN_MAX_AGE=0 (a third server, Django's default: a connection per "
        "request). "
        "PostgreSQL and a private Redis on 127.0.0.1; the load client is a separate process on "
        "loopback, on the same 2 cores. The run took "
        f"{results['duration_seconds']:.0f} s.", "",
        "How database work is counted: by PostgreSQL itself. *Job SELECTs* (job-table reads) "
        "are the scans (`seq_scan + idx_scan` in `pg_stat_user_tables`) of the job tables — "
        "a status read is one primary-key lookup, one scan: the seed's SELECTs. *Auth-table "
        "scans* are those of the token, user and membership tables, which stock DRF token "
        "auth reads on every request (a join there also counts the planner's index probes, "
        "so it is several scans per statement). *Statements* are `xact_commit` of "
        "`pg_stat_database`: one per statement in autocommit, Django's health-check "
        "`SELECT 1` included. *DB backend CPU* is utime + stime from `/proc/<pid>/stat` of "
        "every backend serving the benchmark database. Each phase first closes the servers' "
        "pooled connections, because PostgreSQL 15 sends an idle backend's counters only "
        "~10 s after its last statement and an exiting one at once; the monitor's own work "
        f"({fmt(results['calibration']['monitor']['transactions'])} transactions per phase) and "
        "the churn writer's (measured per step on an idle server: "
        f"{fmt(results['calibration']['churn_step']['job_reads'])} job-table reads, "
        f"{fmt(results['calibration']['churn_step']['transactions'])} transactions) are "
        f"subtracted. {late_text(results['late_counters'])} Autovacuum is turned off for the "
        "benchmark's tables (they are analyzed once after set-up); † marks a phase during "
        "which an autovacuum worker visited the database anyway. App CPU is the servers' "
        "CPU less their idle rate.", "",
    ]
    if results["availability"]:
        out += ["Not available in this build:", ""]
        out += [f"- {note}" for note in results["availability"].values()] + [""]
    out += ["## Headline", "", *headline(results), ""]
    if "rates" in plots:
        out += [f"![highest sustained rate]({plots['rates']})", ""]
    for scenario in ("s1", "s2", "s3", "s4", "s5", "s6"):
        records = records_of(results, scenario)
        if not records and not (scenario == "s2" and results["extra"].get("rate_search")):
            continue
        out += [f"## {SCENARIO_TITLES[scenario]}", ""]
        if scenario == "s1":
            out += [f"Each way was measured for {p['s1_window']:.0f} s; per 10 minutes is that "
                    "window scaled (x 600 / window), after one unmeasured poll of each job "
                    "(the steady state: caches a running service has are filled). Jobs driven by "
                    "`manage.py simulate_jobs`.",
                    "", *polling_table(records), ""]
        elif scenario == "s2":
            out += [f"Each way was measured for {p['s2_window']:.0f} s while one job elsewhere "
                    f"started and finished every {1 / p['churn_per_second']:.0f} s (an insert and "
                    "two updates on the job table: the writes an ORM cache must see; the writers "
                    "run with cachalot installed, as a team using it would run its workers, so "
                    "they invalidate its cache), after one unmeasured poll of each job.", "",
                    *polling_table(records), "",
                    f"Highest rate: open-loop steps of {p['rate_step_seconds']:.0f} s over all "
                    f"running jobs at {', '.join(str(r) for r in p['rate_steps'])} req/s, then "
                    f"{p.get('rate_refine_steps', 0)} bisection steps between the last rate "
                    "sustained and the first not; a "
                    "step passes with p99 < 50 ms, no failed poll and ≥ 95 % of the rate sent; the "
                    "ways take their steps in turn, each once the machine is quiet again "
                    "(under 15 % busy, waited for at most 10 s: an overloaded step leaves "
                    "work behind); a failed step is tried once more (other work shares the "
                    "machine). "
                    "The ceiling is one Redis GET through the same server stack, no auth. App "
                    "CPU ms/poll is the gunicorn workers' CPU time (utime + stime from /proc) "
                    "during that step divided by the requests it served.", "",
                    *rate_table(results), "", *cpu_table(results), ""]
        elif scenario == "s3":
            out += [*box_table(records, results), ""]
        elif scenario == "s4":
            out += [*burst_table(records), ""]
        elif scenario == "s5":
            out += [f"Redis stopped {p['s5_pre']:.0f} s into the load, for "
                    f"{p['s5_outage']:.0f} s, and came back empty (no persistence), as a "
                    "restarted cache does; \"Redis back lagging\" came back with what it held "
                    "at the stop (a replica promoted without the outage's writes). Each way ran "
                    f"on servers of {p.get('s5_workers', 2)} gunicorn processes of its own, "
                    f"each job polled {p.get('s5_poll_hz', 1.0):g} times a second. In "
                    f"the jobbox runs, {p.get('s5_finish_jobs', 0)} polled jobs were finished "
                    "at the stop (their Redis writes lost; their statements fall in the stop's "
                    "first second, which the \"during\" averages leave out, as the breaker's "
                    "opening); \"true state\" counts the polled jobs whose Redis snapshot was "
                    "older than the database's row, once a second after the return. Reads per "
                    "second come from the table counters, statements from the database's "
                    "committed transactions (autocommit: one per statement), sampled once a "
                    "second (up to a second late); failed polls are counted by the second they "
                    "were sent, so under a backlog they show before the stop.",
                    "",
                    *outage_table(results), ""]
            if "s5" in plots:
                out += [f"![Redis outage]({plots['s5']})", ""]
        elif scenario == "s6":
            out += ["The snapshot, progress and ORM cache of each finished job were deleted, as "
                    "an hour without a poll leaves them.", "", *expired_table(records), ""]
        notes = [f"- {title(r['variant'])} ({r['label']}): {note}"
                 for r in records for note in r["notes"]]
        if notes:
            out += ["Notes:", "", *notes, ""]
        if scenario == "s2" and "reads" in plots:
            out += [f"![database statements per second]({plots['reads']})", ""]
    out += ["## Commands", "", "```", *results["commands"], "```", ""]
    return "\n".join(out)


def plot(results: dict[str, Any], stem: Path) -> dict[str, str]:
    """PNG plots beside the report; returns their file names by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: dict[str, str] = {}
    panels = [(s, variant_rows(records_of(results, s))) for s in ("s1", "s2")]
    panels = [(s, rows) for s, rows in panels if rows]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
        for ax, (scenario, rows) in zip(axes[0], panels, strict=True):
            names = [title(r["variant"]) for r in rows]
            ax.bar(names, [r["transactions_per_s"] for r in rows], color="tab:orange",
                   label="all statements")
            ax.bar(names, [r["job_reads_per_s"] for r in rows], color="tab:blue",
                   label="job SELECTs")
            ax.set_title(f"scenario {scenario[1]}: database statements per second", fontsize=9)
            ax.tick_params(axis="x", labelrotation=20, labelsize=8)
            ax.legend(fontsize=8)
        fig.tight_layout()
        made["reads"] = _save(fig, stem, "reads")
    searches = results["extra"].get("rate_search", {})
    if searches:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        names, rates = [], []
        for variant, steps in searches.items():
            best = best_step(steps)
            names.append(title(variant))
            rates.append(best.achieved_rps if best else 0)
        ax.bar(names, rates, color="tab:green")
        ax.set_ylabel("polls/s with p99 < 50 ms")
        ax.tick_params(axis="x", labelrotation=15, labelsize=8)
        fig.tight_layout()
        made["rates"] = _save(fig, stem, "rates")
    timelines = results["extra"].get("s5", {})
    if timelines:
        fig, ax = plt.subplots(figsize=(8, 3.8))
        for variant, t in timelines.items():
            ax.plot(range(len(t["reads_per_second"])), t["reads_per_second"],
                    label=f"{title(variant)}: job SELECTs/s")
            if any(t["errors_per_second"]):
                ax.plot(range(len(t["errors_per_second"])), t["errors_per_second"], ":",
                        label=f"{title(variant)}: failed polls/s")
        any_t = next(iter(timelines.values()))
        ax.axvspan(any_t["stopped_at"], any_t["returned_at"], color="grey", alpha=0.2,
                   label="Redis stopped")
        ax.set_xlabel("seconds since the load began")
        ax.set_ylabel("per second")
        ax.legend(fontsize=7)
        fig.tight_layout()
        made["s5"] = _save(fig, stem, "redis-outage")
    return made


def _save(fig: Any, stem: Path, kind: str) -> str:
    import matplotlib.pyplot as plt

    path = stem.parent / f"{stem.name}-{kind}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    stamp = re.sub(r"[^0-9T]", "", results["started_at"][:16].replace(":", ""))
    stem = directory / f"{stamp[:8]}-{stamp[9:13]}Z-{results['profile']}"
    directory.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(results, indent=1))
    plots = plot(results, stem)
    md_path = stem.with_suffix(".md")
    md_path.write_text(markdown(results, plots))
    return {"markdown": md_path, "json": json_path}


def update_readme(readme: Path, results: dict[str, Any], report_path: Path) -> bool:
    """Replace the table between the README's bench markers; False if there are none."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    relative = report_path.relative_to(readme.parent) if report_path.is_absolute() else report_path
    block = "\n".join([
        README_START,
        f"Latest run: [{relative}]({relative}) ({results['profile']} profile, "
        f"{results['machine']['cores']} cores, {results['started_at']}), "
        f"command `{results['commands'][0]}`.", "",
        *headline(results), README_END])
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    readme.write_text(text[:start] + block + text[end:])
    return True
