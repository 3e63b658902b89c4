"""Curves, not points: each cost plotted against the work that makes it, with the command,
the machine and the date written on the figure (so a PNG read alone says where it came from).
"""

from pathlib import Path
from typing import Any


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _caption(result: dict[str, Any]) -> str:
    return f"{result['command']}\n{result['machine']}, {result['date']}, Redis {result['redis']}"


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
