"""Telling a reader's opens and clicks from those of scanners and privacy proxies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nurture.core.engagement import Click, Hit, Reason, Rules, Verdict, classify

SENT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
LATER = SENT + timedelta(hours=2)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
EDGE = CHROME + " Edg/124.0.2478.80"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
CUBOT_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT P40) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36"
)
APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
THUNDERBIRD = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.9.0"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
APPLE_PROXY = "Mozilla/5.0"


def click(
    user_agent: str = CHROME,
    *,
    at: datetime = LATER,
    link: int = 0,
    links: int = 4,
    honeypot: int | None = 4,
    others: tuple[Click, ...] = (),
    method: str = "GET",
    ip: str = "203.0.113.7",
) -> Hit:
    return Hit(
        kind="click",
        at=at,
        delivered_at=SENT,
        method=method,
        user_agent=user_agent,
        ip=ip,
        link_index=link,
        links_in_email=links,
        honeypot_index=honeypot,
        other_clicks=others,
    )


def open_(
    user_agent: str = CHROME, *, at: datetime = LATER, ip: str = "203.0.113.7", method: str = "GET"
) -> Hit:
    return Hit(kind="open", at=at, delivered_at=SENT, method=method, user_agent=user_agent, ip=ip)


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        (CHROME, Reason.BROWSER),
        (EDGE, Reason.BROWSER),
        (FIREFOX, Reason.BROWSER),
        (IPHONE_SAFARI, Reason.BROWSER),
        (CUBOT_ANDROID, Reason.BROWSER),  # "bot" inside a phone's brand is not a crawler
    ],
    ids=["chrome", "edge", "firefox", "iphone", "cubot-phone"],
)
def test_a_browser_click_later_on_is_human(agent: str, reason: Reason) -> None:
    verdict = classify(click(agent))
    assert verdict == Verdict("human", (reason,))
    assert verdict.human


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        (APPLE_MAIL, Reason.BROWSER),
        (OUTLOOK, Reason.MAIL_CLIENT),
        (THUNDERBIRD, Reason.MAIL_CLIENT),
        (IPHONE_SAFARI, Reason.BROWSER),
    ],
    ids=["apple-mail-without-privacy-protection", "outlook", "thunderbird", "webmail-iphone"],
)
def test_an_open_from_a_mail_client_is_human(agent: str, reason: Reason) -> None:
    assert classify(open_(agent)) == Verdict("human", (reason,))


SCANNERS = {
    "defender-bingpreview": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "BingPreview/1.0b"
    ),
    "barracuda": "Barracuda Sentinel (EE)",
    "mimecast": "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    "proofpoint": "Proofpoint-URL-Defense/3.0",
    "symantec": "Symantec Email Security.cloud Link Following",
    "forcepoint": "Forcepoint Email Security",
    "microsoft-legacy-edge": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246"
    ),
    "python-requests": "python-requests/2.31.0",
    "curl": "curl/8.5.0",
    "go": "Go-http-client/1.1",
    "java": "Java/17.0.2",
    "okhttp": "okhttp/4.12.0",
    "headless-chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/124.0.6367.60 Safari/537.36"
    ),
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "slack": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "baidu": "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "crawler": "Mozilla/5.0 (compatible; SomeCrawler/1.0)",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
}


@pytest.mark.parametrize("agent", SCANNERS.values(), ids=SCANNERS.keys())
def test_scanner_user_agents_are_scanners(agent: str) -> None:
    assert classify(click(agent)) == Verdict("scanner", (Reason.SCANNER_USER_AGENT,))
    assert classify(open_(agent)) == Verdict("machine_open", (Reason.SCANNER_USER_AGENT,))


def test_head_requests_are_machines() -> None:
    assert classify(click(method="HEAD")) == Verdict("scanner", (Reason.HEAD_REQUEST,))
    assert classify(open_(method="head")) == Verdict("machine_open", (Reason.HEAD_REQUEST,))


@pytest.mark.parametrize("ip", ["17.58.63.214", "17.0.0.1", "::ffff:17.58.63.214"])
def test_apple_mail_privacy_protection_opens_are_machine_opens(ip: str) -> None:
    verdict = classify(open_(APPLE_PROXY, ip=ip))
    assert verdict == Verdict("machine_open", (Reason.APPLE_PRIVACY,))
    assert not verdict.human


@pytest.mark.parametrize("ip", ["203.0.113.7", "18.0.0.1", "2001:db8::1", "not-an-ip", ""])
def test_a_bare_user_agent_elsewhere_is_unknown(ip: str) -> None:
    # Outlook's image fetcher can send the same stripped agent: without Apple's network
    # there is no telling who it was.
    assert classify(open_(APPLE_PROXY, ip=ip)) == Verdict("unknown", (Reason.BARE_USER_AGENT,))


def test_apple_networks_are_configurable() -> None:
    rules = Rules(apple_networks=("17.0.0.0/8", "2620:149::/32"))
    verdict = classify(open_(APPLE_PROXY, ip="2620:149:a:1::5"), rules)
    assert verdict.classification == "machine_open"


def test_a_gmail_proxy_open_is_ambiguous() -> None:
    assert classify(open_(GMAIL_PROXY, ip="66.249.84.1")) == Verdict(
        "unknown", (Reason.IMAGE_PROXY,)
    )


def test_a_gmail_proxy_open_with_machine_signals_is_a_machine_open() -> None:
    verdict = classify(open_(GMAIL_PROXY, at=SENT + timedelta(seconds=1)))
    assert verdict == Verdict("machine_open", (Reason.TOO_SOON,))


@pytest.mark.parametrize(
    "agent", [YAHOO_PROXY, "Microsoft Exchange/15.20 (Windows NT 10.0; Win64; x64)"]
)
def test_proxies_that_prefetch_make_machine_opens(agent: str) -> None:
    assert classify(open_(agent)) == Verdict("machine_open", (Reason.MACHINE_PROXY,))


def test_a_proxy_clicking_is_not_a_reader() -> None:
    assert classify(click(YAHOO_PROXY)) == Verdict("unknown", (Reason.IMAGE_PROXY,))
    assert classify(click(GMAIL_PROXY)) == Verdict("unknown", (Reason.IMAGE_PROXY,))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-3, "scanner"),
        (0, "scanner"),
        (4, "scanner"),
        (9.9, "scanner"),
        (10, "human"),
        (600, "human"),
    ],
)
def test_a_click_right_after_delivery_is_a_scanner(seconds: float, expected: str) -> None:
    verdict = classify(click(at=SENT + timedelta(seconds=seconds)))
    assert verdict.classification == expected
    if expected == "scanner":
        assert verdict.reasons == (Reason.TOO_SOON,)


def test_the_delivery_window_is_configurable() -> None:
    rules = Rules(click_too_soon=timedelta(seconds=30))
    assert classify(click(at=SENT + timedelta(seconds=20)), rules).classification == "scanner"
    assert classify(click(at=SENT + timedelta(seconds=20))).classification == "human"


@pytest.mark.parametrize(("seconds", "expected"), [(1, "machine_open"), (5, "human")])
def test_an_open_right_after_delivery_is_a_machine_open(seconds: int, expected: str) -> None:
    assert classify(open_(at=SENT + timedelta(seconds=seconds))).classification == expected


def test_no_delivery_time_no_timing_rule() -> None:
    hit = replace(click(at=SENT), delivered_at=None)
    assert classify(hit).classification == "human"


def test_the_honeypot_click_is_a_scanner() -> None:
    assert classify(click(link=4, honeypot=4)) == Verdict("scanner", (Reason.HONEYPOT,))


@pytest.mark.parametrize(("gap", "expected"), [(-8, "scanner"), (4, "scanner"), (30, "human")])
def test_clicks_near_a_honeypot_click_are_scanners(gap: int, expected: str) -> None:
    honeypot_click = Click(at=LATER - timedelta(seconds=gap), link_index=4)
    verdict = classify(click(link=1, honeypot=4, others=(honeypot_click,)))
    assert verdict.classification == expected
    if expected == "scanner":
        assert verdict.reasons == (Reason.NEAR_HONEYPOT,)


def test_an_open_near_a_honeypot_click_is_a_machine_open() -> None:
    hit = replace(open_(), honeypot_index=4, other_clicks=(Click(LATER, 4),))
    assert classify(hit) == Verdict("machine_open", (Reason.NEAR_HONEYPOT,))


def test_every_link_clicked_within_a_second_is_a_scanner() -> None:
    others = (Click(LATER - timedelta(milliseconds=600), 0), Click(LATER, 1))
    verdict = classify(click(link=2, links=3, others=others))
    assert verdict == Verdict("scanner", (Reason.EVERY_LINK, Reason.LINK_BURST))


def test_both_links_of_a_two_link_email_at_once_is_a_scanner() -> None:
    others = (Click(LATER - timedelta(milliseconds=300), 0),)
    verdict = classify(click(link=1, links=2, honeypot=None, others=others))
    assert verdict == Verdict("scanner", (Reason.EVERY_LINK,))


def test_three_distinct_links_in_a_burst_is_a_scanner_even_in_a_long_email() -> None:
    others = (Click(LATER, 3), Click(LATER - timedelta(seconds=1), 7))
    verdict = classify(click(link=0, links=12, others=others))
    assert verdict == Verdict("scanner", (Reason.LINK_BURST,))


@pytest.mark.parametrize(
    ("links", "others"),
    [
        (1, ()),  # the only link of the email, clicked once
        (3, (Click(LATER - timedelta(seconds=20), 1), Click(LATER - timedelta(seconds=45), 2))),
        (3, (Click(LATER - timedelta(milliseconds=400), 0),)),  # a double click
    ],
    ids=["single-link", "spread-out", "double-click"],
)
def test_a_reader_clicking_through_is_human(links: int, others: tuple[Click, ...]) -> None:
    hit = click(link=0, links=links, others=others, honeypot=None if links == 1 else 9)
    assert classify(hit).classification == "human"


def test_the_honeypot_is_not_one_of_the_links_a_burst_counts() -> None:
    others = (Click(LATER - timedelta(seconds=1), 4), Click(LATER, 1))
    verdict = classify(click(link=0, links=3, honeypot=4, others=others))
    assert verdict == Verdict("scanner", (Reason.NEAR_HONEYPOT,))


def test_every_machine_signal_is_given_as_a_reason() -> None:
    hit = click(
        "curl/8.5.0",
        method="HEAD",
        at=SENT + timedelta(seconds=2),
        link=2,
        links=3,
        others=(Click(SENT + timedelta(seconds=2), 0), Click(SENT + timedelta(seconds=2), 1)),
    )
    assert classify(hit) == Verdict(
        "scanner",
        (
            Reason.HEAD_REQUEST,
            Reason.SCANNER_USER_AGENT,
            Reason.TOO_SOON,
            Reason.EVERY_LINK,
            Reason.LINK_BURST,
        ),
    )


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ("", Reason.NO_USER_AGENT),
        ("   ", Reason.NO_USER_AGENT),
        (APPLE_PROXY, Reason.BARE_USER_AGENT),
        ("Mozilla/5.0 ()", Reason.UNRECOGNISED),
        ("ExampleMailer/2.0", Reason.UNRECOGNISED),
        ("Mozilla/5.0 (" + "a" * 20_000, Reason.UNRECOGNISED),  # no catastrophic backtracking
    ],
    ids=["empty", "blank", "bare", "empty-platform", "unknown-tool", "very-long"],
)
def test_clicks_without_a_recognisable_agent_are_unknown(agent: str, reason: Reason) -> None:
    assert classify(click(agent)) == Verdict("unknown", (reason,))


def test_reasons_are_plain_strings_for_storage() -> None:
    verdict = classify(open_(GMAIL_PROXY))
    assert verdict.reasons == ("image proxy",)


def test_lookback_covers_every_window() -> None:
    assert Rules().lookback == timedelta(seconds=10)
    assert Rules(burst_window=timedelta(seconds=15)).lookback == timedelta(seconds=15)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"at": datetime(2026, 3, 10, 11, 30)}, "Hit.at must be an aware datetime"),
        ({"delivered_at": datetime(2026, 3, 10, 9, 30)}, "Hit.delivered_at must be an aware"),
        ({"kind": "view"}, "a hit is an 'open' or a 'click'"),
        ({"link_index": None}, "a click has a link_index"),
        ({"links_in_email": -1}, "must not be negative"),
    ],
)
def test_malformed_hits_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(click(), **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"burst_links": 1}, "burst_links must be at least 2"),
        ({"click_too_soon": timedelta(seconds=-1)}, "click_too_soon must not be negative"),
        ({"apple_networks": ("17.0.0.0/33",)}, "17.0.0.0/33"),
    ],
)
def test_malformed_rules_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rules(**change)  # type: ignore[arg-type]


GOAL = """\
id: wake-up
name: Wake up
locales: [en]
entry:
  triggers: [lead_created]
exit:
  events: [email_clicked, email_opened]
steps:
  - id: news
    email: {template: example, kind: newsletter}
  - id: later
    wait: 3 days
  - id: again
    email: {template: example, kind: newsletter}
"""


def test_a_scanner_click_or_a_machine_open_meets_no_goal(
    make_runtime: Any, content_dirs: tuple[Any, Any]
) -> None:
    """A sequence that ends on a click keeps a lead whose "click" was a link scanner's
    or whose "open" was a privacy proxy's; a person's click ends it."""
    from sqlalchemy import select

    from nurture.core.intake import parse_lead
    from nurture.evidence import record
    from nurture.intake import take
    from nurture.models import Enrollment

    sequences, templates = content_dirs
    (sequences / "wake-up.yaml").write_text(GOAL)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with runtime.sessions.begin() as session:
        lead, _ = take(session, runtime.content, runtime.settings,
                       parse_lead({"email": "ana@example.com"}), now)  # fmt: skip

        def status() -> str:
            found = session.scalars(select(Enrollment.status)).one()
            return str(found)

        for name, classification in (("email_clicked", "scanner"),
                                     ("email_opened", "machine_open")):  # fmt: skip
            record(session, runtime.content, runtime.settings, lead, name, {}, now,
                   classification=classification)  # fmt: skip
        assert status() == "active"
        record(session, runtime.content, runtime.settings, lead, "email_clicked", {}, now,
               classification="human")  # fmt: skip
        assert status() == "exited"
