"""The Sequences section in a real browser (headless Chromium, with the fixtures of
tests/test_browser_pages.py and the visitor of tests/test_console_browser.py): signing
in, opening a sequence, its SVG diagram drawn with the counts in it, an email previewed
for a lead chosen through the search box, and the console's policy (and the preview's
stricter one) broken by nothing on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from argon2 import PasswordHasher
from test_browser_pages import Serving
from test_browser_pages import browser as browser  # the module's Chromium, reused
from test_console_browser import PASSWORD, Visitor
from test_console_sequences import T0, TRIAL, history

from nurture.app import create_app
from nurture.console import users
from nurture.mail import MemoryMailer
from nurture.runtime import Runtime

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass
class Site:
    runtime: Runtime
    origin: str


@pytest.fixture
def site(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Iterator[Site]:
    sequences, templates = content_dirs
    (sequences / "trial.yaml").write_text(TRIAL)
    mailer = MemoryMailer()
    runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    history(runtime)
    with runtime.sessions.begin() as session:
        users.create_user(session, "ana@planifia.example", "marketer", PASSWORD, T0)
    serving = Serving(create_app(runtime=runtime))
    try:
        yield Site(runtime, f"http://127.0.0.1:{serving.server.server_port}")
    finally:
        serving.stop()


@pytest.fixture
def visitor(browser: Browser, site: Site) -> Iterator[Callable[[], Visitor]]:
    contexts: list[BrowserContext] = []

    def make() -> Visitor:
        context = browser.new_context()  # never bypass_csp: the policy is what is tested
        contexts.append(context)
        return Visitor(context, site, [])  # type: ignore[arg-type]  # only .origin is read

    yield make
    for context in contexts:
        context.close()


def test_a_sequence_its_diagram_and_an_email_previewed_for_a_chosen_lead(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    ana = visitor()
    home = ana.sign_in("ana@planifia.example")
    listed = ana.click(home, "nav >> text=Sequences")
    assert listed.page.url == f"{site.origin}/console/sequences"
    row = listed.page.locator("#sequence-trial")
    assert row.locator("td.entered").inner_text() == "5"
    opened = ana.click(listed, "text=Trial follow-up")
    page = opened.page
    assert opened.status == 200 and page.url == f"{site.origin}/console/sequences/trial"

    # The diagram is drawn: a box of its own size, every node with its counts in it.
    diagram = page.locator("svg.flow")
    box = diagram.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 600
    assert page.locator("svg.flow g.node").count() == 9
    assert page.locator("svg.flow path.edge").count() >= 7
    pause = page.locator("#flow-step-pause")
    assert pause.is_visible()
    assert pause.locator("text.figures").text_content() == "now 1 · passed 3 · left 1"
    node = pause.locator("rect").bounding_box()
    assert node is not None and node["width"] > 100 and node["height"] > 40
    assert page.locator("#flow-entry text.figures").text_content() == "entered 5"
    condition = page.locator('svg.flow g.label[data-target="offer"] text.condition')
    assert condition.text_content() == "if score ≥ 40"
    # Styled by the console's own sheet: the nodes are filled, the edges are lines.
    fill = page.evaluate("getComputedStyle(document.querySelector('#flow-step-pause rect')).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)")
    stroke = page.evaluate("getComputedStyle(document.querySelector('path.edge')).fill")
    assert stroke == "none"

    # A lead chosen through the search box.
    page.fill("#lead-search", "Lefèvre")
    found = ana.click(opened, "form[role=search] button")
    assert "q=Lef%C3%A8vre" in found.page.url
    chosen = ana.click(found, "a.lead >> text=Zoé Lefèvre")
    page = chosen.page
    assert page.locator("#reader").inner_text() == "Zoé Lefèvre"
    section = page.locator("#preview-welcome-en")
    frame_element = section.locator("iframe.html-part")
    assert frame_element.get_attribute("sandbox") == ""
    frame = frame_element.element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state("load")
    body = frame.locator("body").inner_text()
    assert "Hello Zoé," in body
    hrefs = frame.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert any("/guide?utm_source=nurture" in href for href in hrefs)
    assert not [h for h in hrefs if "/c/" in h or "/o/" in h or "/t/" in h]
    assert frame.locator("img").count() == 0  # no open pixel
    assert "Hello Zoé," in section.locator("pre.text-part").inner_text()
    assert section.locator(".subject strong").inner_text().startswith("Zoé")

    # Nothing broke either policy, nothing failed on the way.
    page.wait_for_timeout(200)
    assert chosen.violations() == []
    assert [m for m in chosen.console if "page error" in m or "Refused" in m] == []
    assert ana.dialogs == []
