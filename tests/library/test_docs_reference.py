"""The documentation's generated references (docs/hooks/reference.py): every setting of the
library's settings object, with its default and unit, and every metric of `jobbox.metrics`."""

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

import jobbox
from jobbox import conf, metrics

HOOK_PATH = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "reference.py"


def load_hook() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference_hook", HOOK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setting_names() -> list[str]:
    if hasattr(conf, "JobboxSettings"):
        return [field.name.upper() for field in dataclasses.fields(conf.JobboxSettings)]
    return list(conf.DEFAULTS)


def test_the_settings_page_lists_every_setting_of_the_library():
    page = load_hook().on_page_markdown("# Settings\n\n<!-- jobbox:settings -->\n")
    assert "<!-- jobbox:settings -->" not in page
    for name in setting_names():
        assert f"| `{name}` |" in page


def test_a_settings_dataclass_gives_each_row_its_default_unit_and_doc(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class JobboxSettings:
        running_ttl_seconds: int = dataclasses.field(
            default=7200, metadata={"doc": "How long a running job's snapshot lives.",
                                    "unit": "seconds"})
        principal_models: list[str] = dataclasses.field(
            default_factory=list, metadata={"doc": "Models that move a user's tenant | a pipe.",
                                            "unit": ""})

    fake = types.SimpleNamespace(JobboxSettings=JobboxSettings,
                                 RENAMED_SETTINGS={"JOBBOX_MAX_JOBS": "BOX_MAX_JOBS"})
    # The hook reads `from jobbox import conf`: the settings module that replaces today's.
    monkeypatch.setitem(sys.modules, "jobbox.conf", fake)
    monkeypatch.setattr(jobbox, "conf", fake, raising=False)
    table = load_hook().settings_reference()
    assert ("| `RUNNING_TTL_SECONDS` | `7200` | seconds "
            "| How long a running job's snapshot lives. |") in table
    assert ("| `PRINCIPAL_MODELS` | `[]` |  "
            "| Models that move a user's tenant \\| a pipe. |") in table
    assert "| `JOBBOX_MAX_JOBS` | `BOX_MAX_JOBS` |" in table


def test_the_metrics_page_lists_every_metric_with_its_exposed_name():
    page = load_hook().on_page_markdown("<!-- jobbox:metrics -->")
    assert "| `jobbox_reads_total` | counter | `kind`, `source` |" in page
    assert "| `jobbox_redis_breaker_state` | gauge |" in page
    assert page.count("(`jobbox.metrics.") == sum(
        1 for value in vars(metrics).values() if hasattr(value, "_documentation"))
