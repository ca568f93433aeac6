"""Label one open or click as a person's or a machine's, with the reasons.

Security gateways click every link of an email seconds after it arrives, and mail privacy
proxies fetch the open pixel whether or not anyone reads the message. A hit is labelled
`human`, `machine_open` (an open no person caused), `scanner` (a click no person made) or
`unknown`, with the reasons that led there. Labelling is all this module does: scoring,
elsewhere, counts human hits only. See docs/tracking.md for the rules and their order.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

Kind = Literal["open", "click"]
Classification = Literal["human", "machine_open", "scanner", "unknown"]


class Reason(StrEnum):
    """Why a hit got its label; stored with the hit, so the values never change."""

    HEAD_REQUEST = "head request"
    SCANNER_USER_AGENT = "scanner user agent"
    HONEYPOT = "honeypot link"
    NEAR_HONEYPOT = "near honeypot click"
    TOO_SOON = "too soon after delivery"
    EVERY_LINK = "every link clicked"
    LINK_BURST = "link burst"
    APPLE_PRIVACY = "apple privacy proxy"
    MACHINE_PROXY = "machine image proxy"
    IMAGE_PROXY = "image proxy"
    BROWSER = "browser user agent"
    MAIL_CLIENT = "mail client user agent"
    NO_USER_AGENT = "no user agent"
    BARE_USER_AGENT = "bare user agent"
    UNRECOGNISED = "unrecognised user agent"


# Case-insensitive regular expressions found anywhere in the user agent.
SCANNER_AGENTS: tuple[str, ...] = (
    # mail security gateways and link checkers
    r"bingpreview",
    r"barracuda",
    r"mimecast",
    r"proofpoint",
    r"symantec",
    r"forcepoint",
    r"mcafee",
    r"trend ?micro",
    r"edge/12\.246",  # a long-retired Edge build, seen from Microsoft's link scanners
    # HTTP libraries and command-line tools: no person reads mail with these
    r"python-requests",
    r"python-urllib",
    r"python-httpx",
    r"aiohttp",
    r"\bcurl/",
    r"\bwget/",
    r"go-http-client",
    r"okhttp",
    r"apache-httpclient",
    r"\bjava/",
    r"libwww-perl",
    r"node-fetch",
    r"\baxios/",
    r"scrapy",
    # headless browsers, crawlers and link-preview fetchers
    r"headlesschrome",
    r"phantomjs",
    r"(?<!cu)bot\b",  # Googlebot, bingbot, Slackbot…, but not the CUBOT phone brand
    r"spider",
    r"crawler",
    r"facebookexternalhit",
)

# Image fetchers that do not wait for a reader: Yahoo's proxy, Exchange servers.
MACHINE_PROXIES: tuple[str, ...] = (r"yahoomailproxy", r"microsoft exchange/")
# Image proxies that fetch when a person opens the message, but also cache and prefetch:
# an open through them is neither proven nor disproven.
AMBIGUOUS_PROXIES: tuple[str, ...] = (r"googleimageproxy",)


@dataclass(frozen=True)
class Rules:
    """The thresholds and lists `classify` uses; the defaults suit most senders."""

    click_too_soon: timedelta = timedelta(seconds=10)
    """A click this soon after delivery is a gateway's: no one reads that fast."""
    open_too_soon: timedelta = timedelta(seconds=2)
    """An open this soon after delivery is a machine's (mail has barely reached the box)."""
    burst_window: timedelta = timedelta(seconds=2)
    """Clicks on distinct links this close together belong to one burst."""
    burst_links: int = 3
    """This many distinct links in one burst is a scanner walking the email."""
    honeypot_window: timedelta = timedelta(seconds=10)
    """Hits this close to a honeypot click come from the same machine."""
    scanner_agents: tuple[str, ...] = SCANNER_AGENTS
    machine_proxies: tuple[str, ...] = MACHINE_PROXIES
    ambiguous_proxies: tuple[str, ...] = AMBIGUOUS_PROXIES
    apple_networks: tuple[str, ...] = ("17.0.0.0/8",)
    """Where Apple Mail Privacy Protection fetches images from."""

    _scanner: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _machine_proxy: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _ambiguous_proxy: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _apple: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("click_too_soon", "open_too_soon", "burst_window", "honeypot_window"):
            if getattr(self, name) < timedelta(0):
                raise ValueError(f"Rules.{name} must not be negative")
        if self.burst_links < 2:
            raise ValueError("Rules.burst_links must be at least 2")
        object.__setattr__(self, "_scanner", _any_of(self.scanner_agents))
        object.__setattr__(self, "_machine_proxy", _any_of(self.machine_proxies))
        object.__setattr__(self, "_ambiguous_proxy", _any_of(self.ambiguous_proxies))
        object.__setattr__(
            self, "_apple", tuple(ipaddress.ip_network(n) for n in self.apple_networks)
        )

    @property
    def lookback(self) -> timedelta:
        """How far around a hit `Hit.other_clicks` must reach for every rule to see it."""
        return max(self.burst_window, self.honeypot_window)


def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str]:
    if not patterns:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


@dataclass(frozen=True)
class Click:
    """Another click on the same delivery: when, and on which link index."""

    at: datetime
    link_index: int


@dataclass(frozen=True)
class Hit:
    """One request for a delivery's open pixel or one of its links, as the web layer saw it.

    All of it comes from the request and one query about the same delivery: its sending
    time, link count, honeypot index, and its clicks within `Rules.lookback` of this one.
    """

    kind: Kind
    at: datetime
    delivered_at: datetime | None
    """When our mail server accepted the message; None when unknown (no timing rule)."""
    method: str
    user_agent: str
    ip: str
    link_index: int | None = None
    """The clicked link's index in `Rewritten.links`; None for an open."""
    links_in_email: int = 0
    """Links a reader can click (`Rewritten.link_count`: the honeypot not included)."""
    honeypot_index: int | None = None
    """The delivery's honeypot link, if it has one."""
    other_clicks: tuple[Click, ...] = ()
    """The delivery's other clicks within `Rules.lookback` before (or after, when
    re-labelling) this hit; clicks further away are ignored."""

    def __post_init__(self) -> None:
        if self.kind not in ("open", "click"):
            raise ValueError(f"a hit is an 'open' or a 'click', not {self.kind!r}")
        for name in ("at", "delivered_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"Hit.{name} must be an aware datetime")
        if (self.kind == "click") != (self.link_index is not None):
            raise ValueError("a click has a link_index and an open has none")
        if self.links_in_email < 0:
            raise ValueError("Hit.links_in_email must not be negative")

    @property
    def honeypot(self) -> bool:
        """Whether this is a click on the honeypot link."""
        return self.link_index is not None and self.link_index == self.honeypot_index


@dataclass(frozen=True)
class Verdict:
    classification: Classification
    reasons: tuple[str, ...]

    @property
    def human(self) -> bool:
        """Whether the hit may count for scoring."""
        return self.classification == "human"


_BARE = "mozilla/5.0"
# A browser names its platform in brackets after the Mozilla token.
_BROWSER = re.compile(r"^Mozilla/\d+\.\d+ \((?=[^()]*\w)[^()]*\)", re.IGNORECASE)
_MAIL_CLIENT = re.compile(r"microsoft outlook|microsoft office/|thunderbird/", re.IGNORECASE)


def classify(hit: Hit, rules: Rules = Rules()) -> Verdict:
    """Label `hit`; precedence, first match wins:

    1. any machine signal: `scanner` for a click, `machine_open` for an open, with every
       machine signal found as reasons;
    2. an image proxy that may or may not mean a reader: `unknown`, "image proxy";
    3. the user agent: a browser or mail client is `human`; none, a bare `Mozilla/5.0`
       (outside Apple's networks) or anything else is `unknown`.
    """
    agent = hit.user_agent.strip()
    machine = _machine_signals(hit, agent, rules)
    if machine:
        return Verdict("scanner" if hit.kind == "click" else "machine_open", tuple(machine))
    if rules._ambiguous_proxy.search(agent) or (
        hit.kind == "click" and rules._machine_proxy.search(agent)
    ):
        return Verdict("unknown", (Reason.IMAGE_PROXY,))
    if not agent:
        return Verdict("unknown", (Reason.NO_USER_AGENT,))
    if agent.lower() == _BARE:
        return Verdict("unknown", (Reason.BARE_USER_AGENT,))
    if _MAIL_CLIENT.search(agent):
        return Verdict("human", (Reason.MAIL_CLIENT,))
    if _BROWSER.match(agent):
        return Verdict("human", (Reason.BROWSER,))
    return Verdict("unknown", (Reason.UNRECOGNISED,))


def _machine_signals(hit: Hit, agent: str, rules: Rules) -> list[str]:
    found: list[str] = []
    if hit.method.strip().upper() == "HEAD":
        found.append(Reason.HEAD_REQUEST)
    if agent and rules._scanner.search(agent):
        found.append(Reason.SCANNER_USER_AGENT)
    if hit.honeypot:
        found.append(Reason.HONEYPOT)
    if hit.honeypot_index is not None and any(
        c.link_index == hit.honeypot_index and abs(hit.at - c.at) <= rules.honeypot_window
        for c in hit.other_clicks
    ):
        found.append(Reason.NEAR_HONEYPOT)
    if hit.delivered_at is not None:
        limit = rules.click_too_soon if hit.kind == "click" else rules.open_too_soon
        if hit.at - hit.delivered_at < limit:
            found.append(Reason.TOO_SOON)
    if hit.kind == "click":
        burst = _links_in_burst(hit, rules.burst_window)
        if hit.links_in_email >= 2 and burst >= hit.links_in_email:
            found.append(Reason.EVERY_LINK)
        if burst >= rules.burst_links:
            found.append(Reason.LINK_BURST)
    else:
        if agent.lower() == _BARE and _in_networks(hit.ip, rules._apple):
            found.append(Reason.APPLE_PRIVACY)
        if rules._machine_proxy.search(agent):
            found.append(Reason.MACHINE_PROXY)
    return found


def _links_in_burst(hit: Hit, window: timedelta) -> int:
    """Distinct links clicked within `window` of this click, this one included."""
    links = {c.link_index for c in hit.other_clicks if abs(hit.at - c.at) <= window}
    if hit.link_index is not None:
        links.add(hit.link_index)
    if hit.honeypot_index is not None:
        links.discard(hit.honeypot_index)
    return len(links)


def _in_networks(
    ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
