"""The page's own translation of the API's texts (academy/web/static/web/jobbox.js, run by
Node): each reason of a bad row is matched and translated on its own, never the joined text
by one pattern."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils import translation

from academy.web import messages

SCRIPT = Path(__file__).resolve().parents[2] / "academy" / "web" / "static" / "web" / "jobbox.js"
NODE = shutil.which("node")


def translate_in_page(texts: list[str]) -> list[str]:
    """The page's `compile` and `translate`, as written, over the Korean catalog."""
    source = SCRIPT.read_text()
    start = source.index("  function compile(catalog)")
    end = re.search(r"\n  function translate\(text, catalog\) \{.*?\n  \}\n", source[start:],
                    re.S).end() + start
    with translation.override("ko"):
        labels = {"steps": messages.steps(), "reasons": messages.reasons()}
    program = (f"const L = {json.dumps(labels, ensure_ascii=False)};\n{source[start:end]}\n"
               f"console.log(JSON.stringify({json.dumps(texts, ensure_ascii=False)}"
               ".map((text) => translate(text, REASONS))));")
    done = subprocess.run([NODE, "-e", program], capture_output=True, text=True, timeout=30,
                          check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="needs Node to run the page's script")
def test_each_reason_of_a_bad_row_is_translated_on_its_own():
    two_problems = ("score for 'Korean' is not a number ('abc'); "
                    "score for 'Math' is 120, outside 0 to 100")
    [translated, quoted] = translate_in_page([
        two_problems, f"No valid student rows (1 bad). row 2: {two_problems}"])
    with translation.override("ko"):
        reasons = dict(messages.reasons())
    first = reasons["score for {subject} is not a number ({value})"].format(
        subject="'Korean'", value="'abc'")
    second = reasons["score for {subject} is {score}, outside {low} to {high}"].format(
        subject="'Math'", score="120", low="0", high="100")
    assert translated == f"{first}; {second}"
    assert quoted.endswith(f"{first}; {second}")
    assert "score for" not in quoted and "not a number" not in quoted
