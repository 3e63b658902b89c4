"""The curves' figures: each cost plotted against the work that makes it, with the command,
the machine and the date written on the figure (so a PNG read alone says where it came from).
`bench.curves` and `bench.memory --plot` draw with these.
"""

from pathlib import Path
from typing import Any


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _caption(result: dict[str, Any]) -> str:
    load = result.get("load_average")
    shared = f", load average {load[0]:.1f} at start (2 shared cores)" if load else ""
    return (f"{result['command']}\n{result['machine']}, {result['date']}, "
            f"Redis {result['redis']}{shared}")


def plot_memory(result: dict[str, Any], path: Path) -> str:
    """Redis bytes against jobs (running and finished, all-in), log-log, from
    `python -m bench.memory --curve ...`; the goals drawn as lines."""
    plt = _figure()
    points = result["curve"]
    jobs = [point["jobs"] for point in points]
    figure, (total, per_job) = plt.subplots(1, 2, figsize=(11, 4.6))
    for layout, style in (("previous", "s--"), ("current", "o-")):
        for name in ("running", "finished"):
            per = [point[layout][f"bytes_per_{name}_job"] for point in points]
            label = f"{name} jobs, {layout} layout"
            total.plot(jobs, [b * n / 1e6 for b, n in zip(per, jobs, strict=True)], style,
                       label=label)
            per_job.plot(jobs, per, style, label=label)
    total.set(xscale="log", yscale="log", xlabel="jobs", ylabel="Redis used_memory (MB)",
              title="Redis memory against jobs (all-in)")
    per_job.set(xscale="log", xlabel="jobs", ylabel="bytes per job",
                title="Bytes per job (flat: linear growth)")
    per_job.axhline(600, linestyle=":", color="grey", label="goal, running (600 B)")
    per_job.axhline(800, linestyle="--", color="grey", label="goal, finished (800 B)")
    per_job.set_ylim(bottom=0)
    total.legend(fontsize="small")
    per_job.legend(fontsize="small")
    figure.text(0.01, 0.01, _caption(result), fontsize=7, family="monospace")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return str(path)


def _axes_caption(figure: Any, result: dict[str, Any]) -> None:
    figure.text(0.01, 0.01, _caption(result), fontsize=7, family="monospace")
    figure.tight_layout(rect=(0, 0.08, 1, 1))


def _save(figure: Any, path: Path) -> str:
    plt = _figure()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return str(path)


def plot_db_reads(result: dict[str, Any], path: Path) -> str:
    """Job-table reads per second (PostgreSQL's counters) against jobs polled once a second,
    for each way of serving; the polls actually answered beside them."""
    plt = _figure()
    figure, (reads, rates) = plt.subplots(1, 2, figsize=(11, 4.6))
    for variant, style in (("before", "s--"), ("jobbox", "o-")):
        points = [p for p in result["points"] if p["variant"] == variant]
        if not points:
            continue
        jobs = [p["jobs"] for p in points]
        reads.plot(jobs, [p["job_reads_per_second"] for p in points], style,
                   label=f"{variant}: job-table reads/s")
        if variant == "jobbox":
            reads.plot(jobs, [p["all_reads_per_second"] for p in points], "x:",
                       label="jobbox: reads/s of every table")
        # Answered over the load run's whole time (a stalled run takes longer than asked).
        rates.plot(jobs, [p["achieved_rps"] * p["ok"] / max(1, p["polls"]) for p in points],
                   style, label=f"{variant}")
    reads.set(xlabel="jobs polled (1 poll/s each)", ylabel="reads per second (pg_stat)",
              title="Database reads against polled jobs")
    rates.set(xlabel="jobs polled (1 poll/s each)", ylabel="polls answered 200 per second",
              title="Polls answered (the rest timed out: the machine's limit)")
    reads.legend(fontsize="small")
    rates.legend(fontsize="small")
    _axes_caption(figure, result)
    return _save(figure, path)


def plot_streams(result: dict[str, Any], path: Path) -> str:
    """Memory per stream, transition -> client latency and Redis connections of the one
    process holding the streams, against its open streams."""
    plt = _figure()
    points = [p for p in result["points"] if "kb_per_stream" in p]
    streams = [p["opened"] for p in points]
    figure, (memory, latency, connections) = plt.subplots(1, 3, figsize=(13, 4.4))
    memory.plot(streams, [p["kb_per_stream"] for p in points], "o-")
    memory.set(xlabel="open streams (one process)", ylabel="KB per stream (RSS delta)",
               title="Memory per stream", ylim=(0, None))
    for key, style in (("p50_ms", "x:"), ("p99_ms", "o-"), ("max_ms", "s--")):
        latency.plot(streams, [p["latency_ms"][key] for p in points], style,
                     label=key.removesuffix("_ms"))
    for p in points:
        latency.annotate(f"load {p['load_average'][0]:.1f}", (p["opened"],
                         p["latency_ms"]["p99_ms"]), fontsize=6)
    latency.set(xlabel="open streams (one process)", yscale="log",
                ylabel="ms, transition's return -> client",
                title="Event latency (load average beside p99)")
    latency.legend(fontsize="small")
    connections.plot(streams, [p["redis_connections"] for p in points], "o-")
    connections.set(xlabel="open streams (one process)", ylabel="TCP connections to Redis",
                    title="Redis connections", ylim=(0, None))
    skipped = [f"{p['streams']:,}" for p in result["points"] if "not_run" in p]
    if skipped:
        figure.suptitle(f"not run: {', '.join(skipped)} streams (the JSON says why)",
                        fontsize=8, x=0.99, ha="right")
    _axes_caption(figure, result)
    return _save(figure, path)


def plot_outage(result: dict[str, Any], path: Path) -> str:
    """Job-table reads per second while Redis is stopped, per process and in all, against
    web processes, one line per number of polled jobs."""
    plt = _figure()
    figure, (each, total) = plt.subplots(1, 2, figsize=(11, 4.6))
    for jobs in sorted({p["jobs"] for p in result["points"]}):
        points = [p for p in result["points"] if p["jobs"] == jobs]
        processes = [p["processes"] for p in points]
        each.plot(processes, [p["outage_job_reads_per_second_per_process"] for p in points],
                  "o-", label=f"{jobs} jobs polled")
        total.plot(processes, [p["outage_job_reads_per_second"] for p in points], "o-",
                   label=f"{jobs} jobs polled")
    each.set(xscale="log", xlabel="web processes", ylabel="job-table reads/s per process",
             title="Redis stopped: reads per process", ylim=(0, None))
    total.set(xscale="log", xlabel="web processes", ylabel="job-table reads/s, all processes",
              title="Redis stopped: reads in all", ylim=(0, None))
    for axes in (each, total):
        axes.set_xticks(result["processes"], [str(n) for n in result["processes"]])
        axes.legend(fontsize="small")
    _axes_caption(figure, result)
    return _save(figure, path)


def plot_gc_pauses(result: dict[str, Any], path: Path) -> str:
    """The stream process's collections of 5 ms or more over the run, and the transitions'
    p99 and max per 10 s on the same time axis."""
    plt = _figure()
    run = result["run"]
    figure, (pauses, latency) = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True)
    for generation, colour in ((0, "tab:green"), (1, "tab:orange"), (2, "tab:red")):
        rows = [r for r in run["gc_pauses_a"]["long_pauses"] if r[1] == generation]
        pauses.scatter([r[0] for r in rows], [r[2] for r in rows], s=12, color=colour,
                       label=f"generation {generation}")
    summary = run["gc_pauses_a"]["all"]
    pauses.set(ylabel="collection pause (ms)", yscale="log",
               title=f"Garbage collections of 5 ms or more ({summary['collections']:,} in all:"
                     f" p99.9 {summary['p99_9_ms']} ms, max {summary['max_ms']} ms)")
    pauses.legend(fontsize="small")
    timeline = run["latency_timeline"]
    latency.plot([b["t"] for b in timeline], [b["p99_ms"] for b in timeline], "-",
                 label="p99 per 10 s")
    latency.plot([b["t"] for b in timeline], [b["max_ms"] for b in timeline], ":",
                 label="max per 10 s")
    latency.set(xlabel="seconds since the transitions began", yscale="log",
                ylabel="ms, transition's return -> client",
                title=f"{run['opened']['a']['opened']:,} streams opened on process A: "
                      "transition -> client")
    latency.legend(fontsize="small")
    _axes_caption(figure, result)
    return _save(figure, path)
