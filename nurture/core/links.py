"""Rewrite one rendered email's links for tracking: click redirects, an open pixel, a honeypot.

Runs once per email sent, so it is a handful of regular expressions over the finished HTML
and text, never an HTML parser: only the `href` values it rewrites change, and the pixel and
the honeypot are inserted; every other byte is kept. The URLs it reports are the real ones
(HTML entities decoded) so the click route can redirect to exactly what the author wrote.
See docs/tracking.md.
"""

from __future__ import annotations

import html as htmlmod
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlsplit


@dataclass(frozen=True)
class Rewritten:
    """An email's bodies with tracked links, and the original URL behind each click index.

    `links[i]` is the URL a click on index i redirects to. The honeypot, when there is one,
    is in `links` too (so the click route needs no special case) at `honeypot_index`.
    """

    html: str
    text: str
    links: tuple[str, ...]
    honeypot_index: int | None = None

    @property
    def link_count(self) -> int:
        """The links a reader can click: the honeypot is not one of them."""
        return len(self.links) - (self.honeypot_index is not None)


# An href attribute's value, double- or single-quoted. The pattern starts at the `=` and
# looks back for the name: a literal first character lets the regex engine skip ahead
# (ten times faster than a case-insensitive `href`). The space before the name keeps
# `data-href` out.
_HREF = re.compile(
    r"""=(?:(?<=\s[hH][rR][eE][fF]=)|(?<=\s[hH][rR][eE][fF]\s=))(\s*)"""
    r"""(?:"([^"]*)"|'([^']*)')"""
)
_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_TAG_NAME = re.compile(r"[A-Za-z][\w:.-]*")
# Tags whose href is not something a reader clicks: a stylesheet, the document's base.
_NOT_CLICKABLE = frozenset({"link", "base"})
_HTTP = re.compile(r"https?://", re.IGNORECASE)
# A bare URL, found from its `://` for the same reason; the scheme is read backwards.
_TEXT_URL = re.compile(
    r"""://(?:(?<=[hH][tT][tT][pP]://)|(?<=[hH][tT][tT][pP][sS]://))"""
    r"""[^\s<>"]+"""
)
_BODY_OPEN = re.compile(r"""<body\b(?:"[^"]*"|'[^']*'|[^'">])*>""", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
# Punctuation that ends a sentence rather than a URL ("see https://x.example/a.").
_TRAILING = ".,;:!?'*"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_HTML_SPACE = " \t\n\r\f"


def rewrite(
    html: str,
    text: str,
    click_url: Callable[[int, str], str],
    open_url: str | None,
    honeypot_url: str | None,
    *,
    keep: Callable[[str], bool] | None = None,
) -> Rewritten:
    """Point every http(s) link of the email at `click_url(index, url)`; add the pixel and
    honeypot.

    - `html`: every double- or single-quoted `href` holding an http(s) URL, except on
      `<link>` and `<base>`, is replaced by the escaped `click_url(i, url)`. `mailto:`, `tel:`,
      `#anchors` and other schemes stay as they are.
    - `text`: every bare http(s) URL is replaced by `click_url(i, url)`; sentence punctuation
      after it stays outside.
    - A URL for which `keep(url)` is true (the unsubscribe link) stays untouched in both
      parts, and so does one that `safe_redirect_target` would refuse (credentials, spaces):
      it keeps working as a direct link rather than becoming a click that cannot redirect.
    - `i` indexes `links`, the decoded original URLs in order of first appearance, HTML
      first; the same URL shares one index across both parts. `click_url` is called once per
      index.
    - `open_url`: a 1×1 image just before `</body>` (appended when there is none).
    - `honeypot_url`: a link no reader sees or hears, just after `<body ...>` (prepended
      when there is none), with an index of its own even when the URL also appears in the
      email, reported as `honeypot_index`: a click on it is a machine's.
    """
    if honeypot_url is not None and safe_redirect_target(honeypot_url) is None:
        raise ValueError(f"the honeypot URL {honeypot_url!r} is not an absolute http(s) URL")
    index: dict[str, int] = {}
    clicks: list[str] = []

    def track(url: str) -> str | None:
        """The click URL for `url`, or None when the link must stay as it is."""
        position = index.get(url)
        if position is None:
            if (keep is not None and keep(url)) or safe_redirect_target(url) is None:
                return None
            position = index[url] = len(clicks)
            clicks.append(click_url(position, url))
        return clicks[position]

    def href(match: re.Match[str]) -> str:
        double, single = match.group(2), match.group(3)
        raw = double if double is not None else single
        url = _decode_attribute(raw).strip(_HTML_SPACE)
        if not _HTTP.match(url) or _tag_name(match.string, match.start()) in _NOT_CLICKABLE:
            return match.group(0)
        tracked = track(url)
        if tracked is None:
            return match.group(0)
        quote_char = '"' if double is not None else "'"
        return f"={match.group(1)}{quote_char}{htmlmod.escape(tracked)}{quote_char}"

    new_html = _HREF.sub(href, html)
    new_text = _rewrite_text(text, track)
    links = list(index)
    honeypot_index = None
    if honeypot_url is not None:
        honeypot_index = len(links)
        links.append(honeypot_url)
        new_html = _after_body_open(new_html, _honeypot(click_url(honeypot_index, honeypot_url)))
    if open_url is not None:
        new_html = _before_body_close(new_html, _pixel(open_url))
    return Rewritten(new_html, new_text, tuple(links), honeypot_index)


def _decode_attribute(value: str) -> str:
    """An attribute's value as a browser reads it: `&amp;` is `&`, but `&copy=2` is not `©=2`.

    In attributes, browsers leave a reference without its `;` alone when a letter, digit
    or `=` follows (the HTML standard's rule for query strings written with a bare `&`);
    decoding only references that end with `;` keeps those query strings intact.
    """
    if "&" not in value:
        return value
    return _REFERENCE.sub(lambda m: htmlmod.unescape(m.group(0)), value)


def _rewrite_text(text: str, track: Callable[[str], str | None]) -> str:
    pieces: list[str] = []
    done = 0
    for match in _TEXT_URL.finditer(text):
        start = match.start() - (5 if text[match.start() - 1] in "sS" else 4)
        url, _ = _split_trailing(text[start : match.end()])
        tracked = track(url)
        if tracked is not None:
            pieces += (text[done:start], tracked)
            done = start + len(url)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _tag_name(document: str, position: int) -> str:
    """The lower-cased name of the tag an attribute at `position` belongs to."""
    start = document.rfind("<", 0, position) + 1
    name = _TAG_NAME.match(document, start)
    return name.group(0).lower() if name else ""


def _split_trailing(url: str) -> tuple[str, str]:
    """Split sentence punctuation and unbalanced closing brackets off the end of a URL."""
    end = len(url)
    while end:
        last = url[end - 1]
        opener = _CLOSERS.get(last)
        unbalanced = opener is not None and url.count(opener, 0, end) < url.count(last, 0, end)
        if last not in _TRAILING and not unbalanced:
            break
        end -= 1
    return url[:end], url[end:]


def _pixel(open_url: str) -> str:
    return (
        f'<img src="{htmlmod.escape(open_url)}" width="1" height="1" alt=""'
        ' style="display:block;border:0">'
    )


def _honeypot(click: str) -> str:
    # display:none hides it in browsers and most clients, mso-hide:all in Outlook's Word
    # engine; aria-hidden and no text keep it out of screen readers, tabindex out of the
    # keyboard's reach. Scanners follow every href they find, visible or not.
    return (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all"'
        ' aria-hidden="true">'
        f'<a href="{htmlmod.escape(click)}" tabindex="-1" aria-hidden="true"'
        ' style="display:none;mso-hide:all"></a></div>'
    )


def _after_body_open(document: str, fragment: str) -> str:
    body = _BODY_OPEN.search(document)
    if body is None:
        return fragment + document
    return document[: body.end()] + fragment + document[body.end() :]


def _before_body_close(document: str, fragment: str) -> str:
    position = document.rfind("</body>")
    if position < 0:  # rare: upper case or spaces; the last one wins as with rfind
        closings = [m.start() for m in _BODY_CLOSE.finditer(document)]
        position = closings[-1] if closings else len(document)
    return document[:position] + fragment + document[position:]


# --- the click redirect's last guard --------------------------------------------------

# Whitespace, C0/C1 controls, and the backslash that browsers read as a slash.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\\]")
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs"})


def safe_redirect_target(stored: str) -> str | None:
    """`stored` if it is an absolute http(s) URL a redirect may carry, else None.

    Refused: another scheme or none (`javascript:`, `//host`, `https:host`, relative
    paths), credentials (`https://good@evil.example`), an empty host or a bad port,
    whitespace, control or invisible formatting characters, and backslashes (browsers
    read `/\\evil.example` as `//evil.example`). The click route redirects only to the URL
    stored for that link of that delivery; this is the last guard, not the first.
    """
    if not stored or _UNSAFE.search(stored):
        return None
    if not stored.isascii() and any(unicodedata.category(c) in _INVISIBLE for c in stored):
        return None
    scheme, separator, _ = stored.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return None
    parts = urlsplit(stored)
    if "@" in parts.netloc or not parts.hostname:
        return None
    try:
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:
        return None
    return stored


# --- campaign parameters -------------------------------------------------------------


def campaign_target(url: str, sequence_id: str, step_id: str) -> str:
    """Where a click on `url`, sent by that step of that sequence, leads: the URL with our
    campaign parameters (those it does not carry already)."""
    return add_utm(
        url,
        {
            "utm_source": "nurture",
            "utm_medium": "email",
            "utm_campaign": sequence_id,
            "utm_content": step_id,
        },
    )


def add_utm(url: str, params: Mapping[str, str]) -> str:
    """`url` with each `utm_*` parameter of `params` it does not already carry appended.

    The existing query and fragment are kept as they are (not re-encoded); a parameter the
    URL already has, even empty, wins over ours. URLs that are not absolute http(s) are
    returned unchanged. A name that does not start with `utm_` raises ValueError.
    """
    for name in params:
        if not name.startswith("utm_"):
            raise ValueError(f"{name!r} is not a utm_ parameter")
    if not _HTTP.match(url):
        return url
    before_fragment, hash_sign, fragment = url.partition("#")
    path, _, query = before_fragment.partition("?")
    present = {unquote_plus(pair.partition("=")[0]) for pair in query.split("&") if pair}
    extra = "&".join(
        f"{quote(name, safe='')}={quote(value, safe='')}"
        for name, value in params.items()
        if name not in present
    )
    if not extra:
        return url
    joiner = "&" if query and not query.endswith("&") else ""
    return f"{path}?{query}{joiner}{extra}{hash_sign}{fragment}"
