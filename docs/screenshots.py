"""Take the console's screenshots in docs/images/ from a fresh demo database.

    python docs/screenshots.py            # 800 demo leads over 4 months, then each page

It fills a throwaway SQLite database with `nurture demo`'s populate (the real engine
under a moving clock), signs in as an admin in headless Chromium (Debian's `chromium`,
or NURTURE_TEST_CHROMIUM) and saves one PNG per main page. Nothing else is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
PASSWORD = "correct horse battery staple"  # noqa: S105  a throwaway demo database
ADMIN = "claire@planifia.example"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=800)
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args()

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from nurture.app import create_app
    from nurture.config import load_settings
    from nurture.console import users
    from nurture.db import upgrade
    from nurture.demo import populate
    from nurture.runtime import Runtime

    os.chdir(ROOT)  # the shipped sequences, templates and rules files
    work = Path(tempfile.mkdtemp(prefix="nurture-shots-"))
    try:
        url = f"sqlite:///{work / 'demo.sqlite'}"
        upgrade(url)
        settings = load_settings(
            environ={
                "NURTURE_DATABASE_URL": url,
                "NURTURE_SECRET_KEY": "screenshots-only-0123456789abcdef",
                "NURTURE_OUTBOX_DIR": str(work / "outbox"),
                "NURTURE_SPOOL_DIR": str(work / "spool"),
                "NURTURE_JOURNAL_DIR": str(work / "journal"),
                "NURTURE_BASE_URL": "http://127.0.0.1",
            }
        )
        runtime = Runtime(settings)
        end = datetime.now(UTC)
        summary = populate(
            runtime, leads=args.leads, months=args.months, end=end, seed=42, progress=print
        )
        print(summary)
        with runtime.sessions.begin() as session:
            users.create_user(session, ADMIN, "admin", PASSWORD, end)
        app = create_app(runtime=runtime)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            shoot(f"http://127.0.0.1:{server.server_port}", args.out)
        finally:
            server.shutdown()
            runtime.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def shoot(origin: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("NURTURE_TEST_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        sys.exit("no Chromium found (apt-get install chromium, or NURTURE_TEST_CHROMIUM=path)")
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{origin}/console/login")
        page.fill("#email", ADMIN)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        for name, path, follow in PAGES:
            page.goto(origin + path)
            page.wait_for_load_state("networkidle")
            if follow is not None:
                page.click(follow)
                page.wait_for_load_state("networkidle")
            target = out / f"console-{name}.png"
            height = min(page.evaluate("document.documentElement.scrollHeight"), TALLEST)
            page.screenshot(
                path=str(target),
                full_page=True,
                clip={"x": 0, "y": 0, "width": 1280, "height": height},
            )
            print(f"{target}  {page.url.removeprefix(origin)}")
        browser.close()


# (file name, page, a link to follow from it first or None)
PAGES = [
    ("home", "/console/", None),
    ("sequences", "/console/sequences", None),
    ("sequence", "/console/sequences/whitepaper-evaluation", None),
    ("leads", "/console/leads", None),
    ("lead", "/console/leads?stage=sql", "main table a >> nth=0"),  # a promoted lead
    ("funnel", "/console/dashboards/funnel?by=source", None),
    ("sla", "/console/dashboards/sla?by=rep", None),
    ("sources", "/console/dashboards/sources", None),
    ("operations", "/console/operations", None),
]
TALLEST = 2400  # px: the top of a long page says what it is


if __name__ == "__main__":
    sys.exit(main())
