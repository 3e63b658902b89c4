"""MkDocs hook: the settings and metrics references, generated from the library's own objects.

A page holding a marker gets a table in its place when the site is built, so the reference
cannot drift from the code:

- `<!-- jobbox:settings -->` in reference/settings.md: every `JOBBOX` setting with its
  default, unit and meaning, from `jobbox.conf.JobboxSettings` (a frozen dataclass whose
  fields carry `metadata["doc"]` and `metadata["unit"]`), plus `jobbox.conf.RENAMED_SETTINGS`
  (old name -> new name). A `jobbox.conf` that still holds a plain `DEFAULTS` dict is read too:
  the meaning is then the comment written above each key, the unit the name's suffix.
- `<!-- jobbox:metrics -->` in reference/metrics.md: every prometheus_client object of
  `jobbox.metrics` with its type, labels and help text.
"""

import dataclasses
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The library documented is the one beside these docs, whatever else the environment has
# installed (an editable install may point at another checkout).
REPOSITORY = Path(__file__).resolve().parents[2]

SETTINGS_MARKER = "<!-- jobbox:settings -->"
METRICS_MARKER = "<!-- jobbox:metrics -->"

# A name's suffix says its unit where no metadata does (the older settings module).
UNIT_SUFFIXES = {"_SECONDS": "seconds", "_MILLISECONDS": "milliseconds", "_MS": "milliseconds",
                 "_BYTES": "bytes", "_ENTRIES": "entries", "_JOBS": "jobs",
                 "_PER_MINUTE": "per minute", "_MAXLEN": "entries", "_EVENTS": "events",
                 "_LIMIT": "rows", "_THRESHOLD": "failures"}
# Comments of the older settings module may point at notes kept outside the repository (an
# upper-case Markdown file name, a tracker's number): the generated page leaves them out.
OUTSIDE_CLAUSE = re.compile(r";\s*[A-Z]+\.md[^;)]*")
OUTSIDE_POINTER = re.compile(r"\s*\([^()]*?(?:[A-Z]+\.md|[Ii]ssue \d+)[^()]*\)")
DEFAULT_KEY = re.compile(r'^\s*"(?P<name>[A-Z0-9_]+)":')


def on_page_markdown(markdown: str, **_: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_reference())
    if METRICS_MARKER in markdown:
        markdown = markdown.replace(METRICS_MARKER, metrics_reference())
    return markdown


def _configure_django() -> None:
    """jobbox modules read Django's settings on use; a bare configuration is enough."""
    if str(REPOSITORY) not in sys.path:
        sys.path.insert(0, str(REPOSITORY))
    from django.conf import settings

    if not settings.configured:
        settings.configure()


def settings_reference() -> str:
    _configure_django()
    from jobbox import conf

    rows = list(_dataclass_rows(conf) if hasattr(conf, "JobboxSettings") else _dict_rows(conf))
    table = ["| setting | default | unit | what it does |", "|---|---|---|---|",
             *(f"| `{name}` | {_code(default)} | {unit} | {_cell(doc)} |"
               for name, default, unit, doc in rows)]
    renamed = getattr(conf, "RENAMED_SETTINGS", {})
    if renamed:
        table += ["", "Renamed settings: the old name still works, with a deprecation warning.",
                  "", "| old name | new name |", "|---|---|",
                  *(f"| `{old}` | `{new}` |" for old, new in sorted(renamed.items()))]
    return "\n".join(table)


def _dataclass_rows(conf: Any) -> Iterator[tuple[str, Any, str, str]]:
    for field in dataclasses.fields(conf.JobboxSettings):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        yield (field.name.upper(), default, field.metadata.get("unit", ""),
               field.metadata.get("doc", ""))


def _dict_rows(conf: Any) -> Iterator[tuple[str, Any, str, str]]:
    comments = _comments_above_keys(inspect.getsource(conf))
    for name, default in conf.DEFAULTS.items():
        yield name, default, _unit_of(name), comments.get(name, "")


def _comments_above_keys(source: str) -> dict[str, str]:
    """The `# ...` lines written right above each `"NAME":` line of the DEFAULTS dict."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("# ---"):
            pending = []
        elif stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
        elif match := DEFAULT_KEY.match(line):
            comments[match["name"]] = _joined(pending)
            pending = []
        else:
            pending = []
    return comments


def _joined(lines: list[str]) -> str:
    """Comment lines as one text; a dotted name wrapped after a dot is joined back whole."""
    text = ""
    for line in lines:
        wrapped_name = text.endswith(".") and line[:1].islower()
        text = f"{text}{line}" if wrapped_name else f"{text} {line}".strip()
    return text


def _unit_of(name: str) -> str:
    return next((unit for suffix, unit in UNIT_SUFFIXES.items() if name.endswith(suffix)), "")


def _code(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 10_000:
        return f"`{value:_}`"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    """One table cell: no pipe may end it early, no pointer to a document outside the site."""
    text = OUTSIDE_POINTER.sub("", OUTSIDE_CLAUSE.sub("", text))
    return text.replace("|", "\\|")


def metrics_reference() -> str:
    _configure_django()
    from prometheus_client.metrics import MetricWrapperBase

    from jobbox import metrics

    table = ["| metric | type | labels | what it counts |", "|---|---|---|---|"]
    for name, value in sorted(vars(metrics).items()):
        if isinstance(value, MetricWrapperBase):
            table.append(_metric_row(name, value))
    return "\n".join(table)


def _metric_row(python_name: str, metric: Any) -> str:
    kind = metric._type
    exposed = f"{metric._name}_total" if kind == "counter" else metric._name
    labels = ", ".join(f"`{label}`" for label in metric._labelnames) or "—"
    return (f"| `{exposed}` | {kind} | {labels} | {_cell(metric._documentation)} "
            f"(`jobbox.metrics.{python_name}`) |")
