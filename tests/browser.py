"""Debian's Chromium driven by Playwright, for the page tests: never a downloaded browser."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = os.environ.get("JOBBOX_CHROMIUM", "/usr/bin/chromium")
# The machine has no outside network: nothing Chromium would fetch on its own is wanted.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# How long a page may take to show what a test waits for (not a speed assertion).
PAGE_WAIT_MS = 30_000
# Screenshots of the key screens, kept after the run for a person to look at (gitignored).
SCREENSHOTS = Path(os.environ.get("JOBBOX_SCREENSHOTS")
                   or Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots")
# A desktop window: the width a teacher's laptop shows the report at.
VIEWPORT = {"width": 1280, "height": 900}


def require_chromium() -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")


@contextmanager
def browsers() -> Iterator:
    """Yields `open_browser()`: each call a new Chromium with a fresh user-data folder."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    folders: list[str] = []
    contexts = []
    with sync_playwright() as playwright:

        def open_browser():
            folder = tempfile.mkdtemp(prefix="jobbox-chromium-")
            folders.append(folder)
            context = playwright.chromium.launch_persistent_context(
                folder, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport=VIEWPORT,
            )
            context.set_default_timeout(PAGE_WAIT_MS)
            contexts.append(context)
            return context

        try:
            yield open_browser
        finally:
            # The test's ORM calls made while Playwright's loop runs use their own connection:
            # closed here, or the test database cannot be dropped at the end.
            connections.close_all()
            for context in contexts:
                context.close()
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)


def sign_in(context, base: str, username: str, password: str):
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(f"{base}/")
    page.wait_for_url("**/login/**")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def password_of(member) -> str:
    """The password tests.members gives a tenant's member."""
    return f"pw-{member.tenant.slug}"


def live_page(context, base: str, member):
    """`member` signed in on the page, its event stream connected."""
    page = sign_in(context, base, member.user.username, password_of(member))
    page.wait_for_selector("#connection[data-mode=live]")
    return page


def job_row(page, video):
    return page.locator(f"li.job[data-kind=video][data-id='{video.pk}']")


def screenshot(page, name: str) -> Path:
    """The whole page as a PNG under SCREENSHOTS (kept), for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
