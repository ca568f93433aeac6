"""Tracking links: what a reader clicks goes through us, and comes back to the real URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import html as lxml_html

from nurture.core.links import Rewritten, add_utm, rewrite, safe_redirect_target
from nurture.core.profile import SAMPLE_LEAD
from nurture.core.rendering import EmailContext, Sender, TemplateCatalog

BASE = "https://t.brightfield.example"
UNSUBSCRIBE = f"{BASE}/u/tok-123"
OPEN = f"{BASE}/o/tok-123.gif"
HONEYPOT = "https://brightfield.example/about"
GUIDE = "https://www.planifia.example/en/guide?utm_source=nurture&utm_medium=email"
STUDY = "https://www.planifia.example/en/study-2026"


def click(index: int, url: str = "") -> str:
    return f"{BASE}/c/tok-123/{index}"


def keep_unsubscribe(url: str) -> bool:
    return url.startswith(f"{BASE}/u/")


# {guide}, {study} and {home} are where tracked links go; everything else must survive as is.
EMAIL = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="stylesheet" href="https://fonts.example/inter.css">
<title>Brightfield</title>
</head>
<body style="margin:0; padding:0" bgcolor="#f3f4f6">
<p><a href="{home}" style="color:#1e3a8a">Brightfield</a></p>
<p id="top">Hi Claire, here is the <a href="{guide}">implementation guide</a>.</p>
<p><a class="button" href = "{guide}" style="color:#fff">Read the guide</a></p>
<p>Also see <a href='{study}' title="Étude 2026 &gt; marché">our 2026 study</a>.</p>
<p>Questions? <a href="mailto:julien.moreau@example.com?subject=Guide&amp;x=1">Write</a>
or call <a href="tel:+33184000000">+33 1 84 00 00 00</a>. <a href="#top">Back to top</a>.</p>
<p><span data-href="https://www.planifia.example/en/data">data</span>
<a href="/relative/path">relative</a></p>
<p><a href="{unsubscribe}" style="color:#4b5563">Unsubscribe</a></p>
</body>
</html>
"""

ORIGINAL = {
    "home": "https://brightfield.example",
    "guide": GUIDE.replace("&", "&amp;"),
    "study": STUDY,
    "unsubscribe": UNSUBSCRIBE,
}

TEXT = """Hi Claire,

Here is the implementation guide:
  https://www.planifia.example/en/guide?utm_source=nurture&utm_medium=email
The webinar replay (https://www.planifia.example/en/replay) is online too.
Our 2026 study: https://www.planifia.example/en/study-2026.

Unsubscribe in one click: https://t.brightfield.example/u/tok-123
"""


def rewritten(**kwargs: object) -> Rewritten:
    arguments: dict[str, object] = {
        "html": EMAIL.format(**ORIGINAL),
        "text": TEXT,
        "click_url": click,
        "open_url": OPEN,
        "honeypot_url": HONEYPOT,
        "keep": keep_unsubscribe,
    }
    arguments.update(kwargs)
    return rewrite(**arguments)  # type: ignore[arg-type]


def without_insertions(result: Rewritten) -> str:
    """The HTML with the pixel and the honeypot taken out again."""
    html = re.sub(r'<div style="display:none[^"]*" aria-hidden="true">.*?</div>', "", result.html)
    return re.sub(r'<img src="[^"]*" width="1" height="1"[^>]*>', "", html)


def test_links_are_the_real_urls_in_order_entities_decoded() -> None:
    result = rewritten()
    assert result.links == (
        "https://brightfield.example",
        GUIDE,  # stored with `&`, not `&amp;`: the redirect must land on the real page
        STUDY,
        "https://www.planifia.example/en/replay",  # only in the text part
        HONEYPOT,
    )
    assert result.honeypot_index == 4
    assert result.link_count == 4


def test_everything_but_tracked_hrefs_is_kept_byte_for_byte() -> None:
    result = rewritten()
    expected = EMAIL.format(home=click(0), guide=click(1), study=click(2), unsubscribe=UNSUBSCRIBE)
    assert without_insertions(result) == expected


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("https://x.example/?a=1&amp;b=2", "https://x.example/?a=1&b=2"),
        ("https://x.example/?a=1&#38;b=2&#x26;c=3", "https://x.example/?a=1&b=2&c=3"),
        ("https://x.example/?a=1&copy=2", "https://x.example/?a=1&copy=2"),  # not ©=2
        ("https://x.example/caf&eacute;", "https://x.example/café"),
        ("  https://x.example/a\n", "https://x.example/a"),
    ],
)
def test_stored_urls_are_what_a_browser_would_follow(written: str, stored: str) -> None:
    result = rewrite(f'<a href="{written}">x</a>', "", click, None, None)
    assert result.links == (stored,)
    assert result.html == f'<a href="{click(0)}">x</a>'


def test_the_same_url_gets_one_index() -> None:
    result = rewritten()
    assert result.html.count(f'href="{click(1)}"') == 1
    assert result.html.count(f'href = "{click(1)}"') == 1  # spaces around `=` are kept
    assert result.links.count(GUIDE) == 1


@pytest.mark.parametrize(
    "untouched",
    [
        'href="mailto:julien.moreau@example.com?subject=Guide&amp;x=1"',
        'href="tel:+33184000000"',
        'href="#top"',
        f'href="{UNSUBSCRIBE}"',
        '<link rel="stylesheet" href="https://fonts.example/inter.css">',
        'data-href="https://www.planifia.example/en/data"',
        'href="/relative/path"',
    ],
    ids=["mailto", "tel", "anchor", "unsubscribe", "stylesheet", "data-href", "relative"],
)
def test_links_that_are_not_tracked_stay_as_they_are(untouched: str) -> None:
    assert untouched in rewritten().html


def test_without_keep_the_unsubscribe_link_would_be_tracked() -> None:
    result = rewritten(keep=None)
    assert UNSUBSCRIBE in result.links
    assert f'href="{UNSUBSCRIBE}"' not in result.html


def test_plain_text_urls_use_the_same_indexes_and_keep_punctuation() -> None:
    text = rewritten().text
    assert text == (
        "Hi Claire,\n\n"
        "Here is the implementation guide:\n"
        f"  {click(1)}\n"
        f"The webinar replay ({click(3)}) is online too.\n"
        f"Our 2026 study: {click(2)}.\n\n"
        f"Unsubscribe in one click: {UNSUBSCRIBE}\n"
    )


@pytest.mark.parametrize(
    ("sentence", "url", "after"),
    [
        ("see https://x.example/a.", "https://x.example/a", "."),
        ("see https://x.example/a, then", "https://x.example/a", ", then"),
        ("(https://x.example/a)", "https://x.example/a", ")"),
        ("https://x.example/wiki/Gear_(machine)!", "https://x.example/wiki/Gear_(machine)", "!"),
        ("<https://x.example/a?b=1&c=2>", "https://x.example/a?b=1&c=2", ">"),
        ("HTTPS://X.EXAMPLE/A", "HTTPS://X.EXAMPLE/A", ""),
    ],
)
def test_text_url_boundaries(sentence: str, url: str, after: str) -> None:
    result = rewrite("", sentence, click, None, None)
    assert result.links == (url,)
    assert result.text.endswith(click(0) + after)


def test_click_urls_are_escaped_in_attributes_and_raw_in_text() -> None:
    def awkward(index: int, url: str) -> str:
        return f'{BASE}/c?d=7&l={index}&q="x"'

    result = rewrite(f'<a href="{STUDY}">s</a>', f"Study: {STUDY}", awkward, None, None)
    assert result.html == f'<a href="{BASE}/c?d=7&amp;l=0&amp;q=&quot;x&quot;">s</a>'
    assert result.text == f'Study: {BASE}/c?d=7&l=0&q="x"'


def test_click_url_is_asked_once_per_link_with_the_url_it_leads_to() -> None:
    asked: list[tuple[int, str]] = []

    def counting(index: int, url: str) -> str:
        asked.append((index, url))
        return click(index)

    result = rewritten(click_url=counting)
    assert asked == list(enumerate(result.links))  # the honeypot last, with its own URL
    assert asked[-1] == (4, HONEYPOT)


def test_unsafe_urls_are_left_as_direct_links() -> None:
    html = '<a href="https://good.example@evil.example/">x</a><a href="https://a.example/b c">y</a>'
    result = rewrite(html, "", click, None, None)
    assert result.html == html
    assert result.links == ()


def test_open_pixel_sits_just_before_the_end_of_the_body() -> None:
    html = rewritten().html
    pixel = f'<img src="{OPEN}" width="1" height="1" alt="" style="display:block;border:0">'
    assert html.endswith(f"{pixel}</body>\n</html>\n")
    assert html.count("<img") == 1


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hi</p></BODY></HTML>", "<p>Hi</p>PIXEL</BODY></HTML>"),
        ("<p>Hi</p>", "<p>Hi</p>PIXEL"),
    ],
    ids=["upper-case", "fragment"],
)
def test_open_pixel_without_a_lower_case_body_end(html: str, expected: str) -> None:
    pixel = (
        f'<img src="{BASE}/o?a=1&amp;b=2" width="1" height="1" alt=""'
        ' style="display:block;border:0">'
    )
    result = rewrite(html, "", click, f"{BASE}/o?a=1&b=2", None)
    assert result.html == expected.replace("PIXEL", pixel)


def test_honeypot_is_invisible_and_unannounced_and_reported() -> None:
    result = rewritten()
    after_body = result.html.split('<body style="margin:0; padding:0" bgcolor="#f3f4f6">', 1)[1]
    assert after_body.startswith('<div style="display:none')  # near the top of the body
    document = lxml_html.fromstring(result.html)
    (anchor,) = document.xpath(f'//a[@href="{click(result.honeypot_index or 0)}"]')
    wrapper = anchor.getparent()
    for element in (wrapper, anchor):
        assert "display:none" in element.get("style")
        assert "mso-hide:all" in element.get("style")
        assert element.get("aria-hidden") == "true"
    assert anchor.get("tabindex") == "-1"
    assert anchor.text_content() == ""
    assert click(4) not in result.text


def test_honeypot_has_its_own_index_even_for_a_url_of_the_email() -> None:
    result = rewritten(honeypot_url=STUDY)
    assert result.links == (
        "https://brightfield.example",
        GUIDE,
        STUDY,
        "https://www.planifia.example/en/replay",
        STUDY,
    )
    assert result.honeypot_index == 4  # a reader clicking the study is not a scanner


def test_no_honeypot_no_pixel() -> None:
    result = rewritten(honeypot_url=None, open_url=None)
    assert result.honeypot_index is None
    assert result.link_count == len(result.links) == 4
    assert "display:none" not in result.html
    assert "<img" not in result.html


def test_a_honeypot_that_could_not_redirect_is_refused() -> None:
    with pytest.raises(ValueError, match="honeypot URL"):
        rewritten(honeypot_url="/about")


def test_a_real_email_from_the_templates() -> None:
    templates = TemplateCatalog(Path(__file__).resolve().parent.parent / "templates")
    sender = Sender(
        name="Nadia Haddad",
        company="Brightfield Software",
        email="nadia@brightfield.example",
        postal_address="48 Harbour Street, Leith, Edinburgh EH6 6LX, United Kingdom",
        website="https://brightfield.example",
    )
    context = EmailContext(
        lead=SAMPLE_LEAD,
        rep=SAMPLE_LEAD.rep,
        sender=sender,
        unsubscribe_url=UNSUBSCRIBE,
        sequence="customer-growth",
        step="onboarding",
    )
    email = templates.render("customer-onboarding-first-30-days", "en", context)
    result = rewrite(email.html, email.text, click, OPEN, HONEYPOT, keep=keep_unsubscribe)

    before = lxml_html.fromstring(email.html).xpath("//a/@href")
    after = lxml_html.fromstring(result.html).xpath("//a/@href")
    assert len(after) == len(before) + 1  # the honeypot
    assert UNSUBSCRIBE in after and UNSUBSCRIBE in result.text
    tracked = [href for href in after if href != UNSUBSCRIBE]
    assert all(href.startswith(f"{BASE}/c/") for href in tracked)
    # every click lands where the author's link went, query string intact
    originals = {href for href in before if href != UNSUBSCRIBE}
    assert set(result.links) - {HONEYPOT} == originals
    assert "&amp;" not in "".join(result.links)
    assert "https://www.planifia.example" not in result.text


# --- safe_redirect_target -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.planifia.example/en/guide?utm_source=nurture&utm_medium=email#part-2",
        "http://planifia.example",
        "HTTPS://PLANIFIA.EXAMPLE/A",
        "https://planifia.example:8443/a%20b",
        "https://[2001:db8::1]/a",
        "https://café.example/menu",
    ],
)
def test_safe_redirect_targets_are_returned_unchanged(url: str) -> None:
    assert safe_redirect_target(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "https:/evil.example",
        "https:///evil.example",
        "https://good.example@evil.example",
        "https://user:pass@evil.example/",
        "https://good.example\\@evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://files.example/a",
        "https://good.example/\r\nLocation: https://evil.example",
        "https://good.example/a\nb",
        "https://good.example/a b",
        " https://good.example/",
        "https://good.example/\x00",
        "https://good.example/\u202egnp.exe",
        "https://good.example:99999/",
        "/relative/path",
        "relative/path",
        "",
    ],
)
def test_unsafe_redirect_targets_are_refused(url: str) -> None:
    assert safe_redirect_target(url) is None


# --- add_utm --------------------------------------------------------------------------

UTM = {"utm_source": "nurture", "utm_medium": "email", "utm_campaign": "whitepaper evaluation"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://planifia.example/guide",
            "https://planifia.example/guide?utm_source=nurture&utm_medium=email"
            "&utm_campaign=whitepaper%20evaluation",
        ),
        (
            "https://planifia.example/guide?lang=fr&ref=a%2Fb#section-2",
            "https://planifia.example/guide?lang=fr&ref=a%2Fb&utm_source=nurture"
            "&utm_medium=email&utm_campaign=whitepaper%20evaluation#section-2",
        ),
        (
            "https://planifia.example/?utm_source=partner&utm_campaign=",
            "https://planifia.example/?utm_source=partner&utm_campaign=&utm_medium=email",
        ),
        (
            "https://planifia.example/?utm_source=a&utm_medium=b&utm_campaign=c",
            "https://planifia.example/?utm_source=a&utm_medium=b&utm_campaign=c",
        ),
        (
            "https://planifia.example/?",
            "https://planifia.example/?utm_source=nurture&utm_medium=email"
            "&utm_campaign=whitepaper%20evaluation",
        ),
        ("mailto:julien@example.com", "mailto:julien@example.com"),
        ("#top", "#top"),
    ],
    ids=[
        "plain",
        "query-and-fragment",
        "some-present",
        "all-present",
        "empty-query",
        "mailto",
        "anchor",
    ],
)
def test_add_utm_adds_only_what_is_missing(url: str, expected: str) -> None:
    assert add_utm(url, UTM) == expected


def test_add_utm_refuses_other_parameters() -> None:
    with pytest.raises(ValueError, match="'ref' is not a utm_ parameter"):
        add_utm("https://planifia.example/", {"ref": "x"})
