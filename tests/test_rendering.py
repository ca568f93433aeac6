"""Rendering emails: the real layouts with small template folders written per test."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import premailer
import pytest

from nurture.core.profile import SAMPLE_LEAD, LeadProfile
from nurture.core.rendering import (
    SAMPLE_CONTEXTS,
    EmailContext,
    RenderError,
    Sender,
    TemplateCatalog,
)

REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

SENDER = Sender(
    name="Nadia Haddad",
    company="Brightfield Software",
    email="nadia@brightfield.example",
    postal_address="48 Harbour Street, Leith, Edinburgh EH6 6LX, United Kingdom",
    website="https://brightfield.example",
)
UNSUBSCRIBE = "https://mail.brightfield.example/u/tok-123"


def context(lead: LeadProfile = SAMPLE_LEAD, subject: str | None = None) -> EmailContext:
    return EmailContext(
        lead=lead,
        rep=lead.rep,
        sender=SENDER,
        unsubscribe_url=UNSUBSCRIBE,
        sequence="welcome",
        step="guide",
        subject_override=subject,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A templates folder holding the real layouts and no emails yet."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES / "layouts", templates / "layouts")
    (templates / "emails").mkdir()
    return templates


def write_email(
    root: Path,
    name: str,
    locale: str = "en",
    *,
    subject: str = "News for {{ lead.company }}",
    html: str = "<p>Hello {{ lead.first_name }}</p>",
    text: str | None = "Hello {{ lead.first_name }}",
    css: str | None = None,
) -> Path:
    folder = root / "emails" / name / locale
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.txt").write_text(subject + "\n", encoding="utf-8")
    (folder / "body.html").write_text(html, encoding="utf-8")
    if text is not None:
        (folder / "body.txt").write_text(text, encoding="utf-8")
    if css is not None:
        (root / "emails" / name / "style.css").write_text(css, encoding="utf-8")
    return folder


BUTTON = '<p><a class="button" href="{{ sender.website }}/guide">Read the guide</a></p>'


# --- what a lead receives ------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "unsubscribe_word", "why"),
    [
        ("en", "Unsubscribe", "You are receiving this email"),
        ("fr", "Se désabonner", "Vous recevez"),
    ],
)
def test_email_has_inlined_button_and_a_footer_with_address_and_unsubscribe_link(
    root: Path, locale: str, unsubscribe_word: str, why: str
) -> None:
    write_email(root, "guide", locale, html=BUTTON)
    email = TemplateCatalog(root).render("guide", locale, context())

    button = re.search(r'<a class="button"[^>]*>', email.html)
    assert button is not None and 'style="' in button.group(0)
    assert "background-color:#1d4ed8" in button.group(0)
    assert f'<html lang="{locale}"' in email.html
    assert f'<a href="{UNSUBSCRIBE}"' in email.html and unsubscribe_word in email.html
    for part in (email.html, email.text):
        assert SENDER.postal_address in part
        assert why in part
        assert UNSUBSCRIBE in part
    assert "{{" not in email.html and "{%" not in email.html


def test_lead_fields_and_rep_personalise_the_email(root: Path) -> None:
    write_email(
        root,
        "guide",
        html=(
            "<p>{{ lead.company }} ({{ lead.company_size }} people) in "
            "{{ lead.fields.industry }}</p>"
            "{% if rep %}<p>{{ rep.name }}, {{ rep.phone }}</p>{% endif %}"
            "<p>{{ lead.fields.budget | default('your budget') }}</p>"
        ),
    )
    catalog = TemplateCatalog(root)

    with_rep = catalog.render("guide", "en", context()).html
    without = catalog.render("guide", "en", context(replace(SAMPLE_LEAD, rep=None))).html

    assert "Atelier Martin SAS (240 people) in manufacturing" in with_rep
    assert "Julien Moreau, +33 1 84 00 00 00" in with_rep
    assert "Julien Moreau" not in without
    assert "your budget" in with_rep


def test_a_missing_value_prints_nothing_rather_than_none(root: Path) -> None:
    write_email(
        root, "guide", html="<p>Hello {{ lead.job_title }}!</p>", text="Hi {{ lead.job_title }}!"
    )
    lead = replace(SAMPLE_LEAD, job_title=None)
    email = TemplateCatalog(root).render("guide", "en", context(lead))
    assert "None" not in email.html and "Hello !" in email.html
    assert "Hi !" in email.text


def test_a_hostile_name_is_escaped_in_html_and_left_plain_in_text(root: Path) -> None:
    write_email(root, "guide", subject="For {{ lead.first_name }}")
    lead = replace(SAMPLE_LEAD, first_name="<script>alert(1)</script>")
    email = TemplateCatalog(root).render("guide", "en", context(lead))

    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "Hello <script>alert(1)</script>" in email.text
    assert email.subject == "For <script>alert(1)</script>"


def test_plain_text_part_uses_the_text_layout(root: Path) -> None:
    write_email(root, "guide", text="Hello {{ lead.first_name }},\n\n\n\nThe guide is ready.   \n")
    email = TemplateCatalog(root).render("guide", "en", context())
    assert email.text.startswith("Brightfield Software\n\nHello Claire,\n\nThe guide is ready.\n")
    assert f"Unsubscribe in one click: {UNSUBSCRIBE}\n" in email.text
    assert "<" not in email.text


def test_an_unknown_attribute_is_a_render_error_with_file_and_line(root: Path) -> None:
    write_email(root, "guide", html="<p>Hello</p>\n<p>{{ lead.nonexistent }}</p>\n")
    with pytest.raises(RenderError) as caught:
        TemplateCatalog(root).render("guide", "en", context())
    message = str(caught.value)
    assert "emails/guide/en/body.html:2:" in message
    assert "no attribute 'nonexistent'" in message


def test_the_sandbox_refuses_internals(root: Path) -> None:
    write_email(root, "guide", html="{{ lead.__class__.__init__.__globals__ }}")
    with pytest.raises(RenderError, match=r"body\.html:1:"):
        TemplateCatalog(root).render("guide", "en", context())


@pytest.mark.parametrize(
    "unsafe",
    [
        "{{ lead.__class__ }}",
        "{{ lead.first_name.__class__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
)
def test_the_sandbox_refuses_internals_every_time(root: Path, unsafe: str) -> None:
    """Verdicts are remembered per type and name: the second email is refused as well."""
    write_email(root, "guide", html="{{ lead.first_name }} " + unsafe)
    catalog = TemplateCatalog(root)
    for _ in range(2):
        with pytest.raises(RenderError, match=r"body\.html:1:"):
            catalog.render("guide", "en", context())


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            "<p>Hi</p>\n{% for i in range(100000) %}{% for j in range(100000) %}"
            "{% endfor %}{% endfor %}",
            "more than 1,000,000 loop steps",
        ),
        ("<p>Hi</p>\n{{ 'x' * 1000000000 }}", "a repetition of more than 2,000,000 items"),
        ("<p>Hi</p>\n{{ 10 ** 100000000 }}", "an exponent of 100,000,000"),
        (
            "<p>Hi</p>\n{% for i in range(100000) %}{{ lead.company }} {{ i }} {% endfor %}",
            "renders more than 2,000,000 characters",
        ),
    ],
)
def test_a_template_that_runs_away_stops_with_its_line_and_validate_names_it(
    root: Path, body: str, why: str
) -> None:
    """Work is bounded, not timed: the same template fails the same way everywhere."""
    write_email(root, "guide", html=body)
    catalog = TemplateCatalog(root)
    with pytest.raises(RenderError, match=r"body\.html:[12]: ") as caught:
        catalog.render("guide", "en", context())
    assert why in str(caught.value)
    problems = [str(p) for p in catalog.validate_all()]
    assert any("emails/guide/en/body.html" in p and why in p for p in problems), problems


def test_loops_an_email_needs_stay_within_the_limits(root: Path) -> None:
    write_email(
        root,
        "guide",
        html="{% for i in range(3) %}<p>{{ i }}</p>{% endfor %}{{ range(5)|length }}"
        "{{ 3 in range(5) }}{{ '-' * 20 }}{{ 2 ** 10 }}",
    )
    html = TemplateCatalog(root).render("guide", "en", context()).html
    assert re.findall(r"<p[^>]*>(\d)</p>", html) == ["0", "1", "2"]
    assert "</p>5True--------------------1024" in html


# --- locale and subject ---------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "used"),
    [("fr-CA", "fr"), ("fr", "fr"), ("de", "en"), ("en-GB", "en"), (None, "en"), ("../fr", "en")],
)
def test_locale_falls_back_to_the_language_then_the_default(
    root: Path, requested: str | None, used: str
) -> None:
    write_email(root, "guide", "en", subject="Your guide")
    write_email(root, "guide", "fr", subject="Votre guide")
    email = TemplateCatalog(root).render("guide", requested, context())
    assert email.locale == used
    assert email.subject == {"en": "Your guide", "fr": "Votre guide"}[used]
    assert f'<html lang="{used}"' in email.html


def test_subject_override_is_a_template_collapsed_to_one_line(root: Path) -> None:
    write_email(root, "guide")
    override = "  {{ lead.first_name }}, a guide\n  from {{ sender.company }}  "
    email = TemplateCatalog(root).render("guide", "en", context(subject=override))
    assert email.subject == "Claire, a guide from Brightfield Software"


def test_an_unknown_template_is_a_render_error_naming_the_known_ones(root: Path) -> None:
    write_email(root, "guide")
    with pytest.raises(RenderError, match=r"unknown template 'guid' \(known: guide\)"):
        TemplateCatalog(root).render("guid", "en", context())


# --- inlining once per version ----------------------------------------------------


def test_the_inliner_runs_once_per_template_version_not_once_per_email(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = premailer.transform

    def counting(html: str, **options: object) -> str:
        calls.append(html)
        return real(html, **options)

    monkeypatch.setattr(premailer, "transform", counting)
    folder = write_email(root, "guide", html="<p>Hello {{ lead.first_name }}</p>" + BUTTON)
    catalog = TemplateCatalog(root)

    first = catalog.render("guide", "en", context())
    per_version = len(calls)
    # Once on the template itself, then once per sample lead to check it.
    assert [("{{" in html) or ("jinja" in html) for html in calls].count(True) == 1
    assert per_version == 1 + len(SAMPLE_CONTEXTS)

    for index in range(25):
        lead = replace(SAMPLE_LEAD, first_name=f"Lead{index}", email=f"l{index}@example.com")
        assert f"Lead{index}" in catalog.render("guide", "en", context(lead)).html
    assert len(calls) == per_version
    assert catalog.inliner_runs == per_version

    (folder / "body.html").write_text(BUTTON + "<p>Now with a second paragraph.</p>")
    catalog.refresh()  # a worker does this once per tick
    second = catalog.render("guide", "en", context())
    assert second.version != first.version
    assert "second paragraph" in second.html
    assert len(calls) == 2 * per_version


ROWS = """<table class="agenda">
<tr><th>Agenda</th></tr>
{% for session in ["Audit", "Plan", "Launch"] %}
<tr><td>{{ session }}</td></tr>
{% endfor %}
</table>
"""
# The last row closes the agenda: position selectors see one row in the template.
ROWS_CSS = ".agenda tr:last-child { background-color: #eff6ff; }"


def test_a_loop_between_table_rows_is_detected_and_sent_on_the_slow_path(root: Path) -> None:
    write_email(root, "agenda", html=ROWS, css=ROWS_CSS)
    catalog = TemplateCatalog(root)

    email = catalog.render("agenda", "en", context())

    rows = re.findall(r"<tr[^>]*>\s*<t[dh][^>]*>(\w+)", email.html.split('class="agenda"')[1])
    assert rows[:4] == ["Agenda", "Audit", "Plan", "Launch"]
    highlighted = re.findall(
        r'<tr style="background-color:#eff6ff"[^>]*>\s*<td[^>]*>(\w+)', email.html
    )
    assert highlighted == ["Launch"]  # only the last row, as in a browser
    [check] = [c for c in catalog.inlining_report() if c.template == "agenda"]
    assert not check.fast
    assert str(check).startswith("agenda (en): slow path: differs for sample")


def test_a_loop_kept_inside_an_element_stays_on_the_fast_path(root: Path) -> None:
    write_email(
        root,
        "agenda",
        html=(
            '<table class="agenda">{% for session in ["Audit", "Plan"] %}'
            '<tr><td class="slot">{{ session }}</td></tr>{% endfor %}</table>'
        ),
        css=".slot { font-weight: 700; }",
    )
    catalog = TemplateCatalog(root)
    email = catalog.render("agenda", "en", context())
    slots = re.findall(r'<td class="slot" style="[^"]*font-weight:700[^"]*"[^>]*>(\w+)', email.html)
    assert slots == ["Audit", "Plan"]
    assert [str(c) for c in catalog.inlining_report()] == ["agenda (en): fast path"]


def test_check_inlining_with_own_samples_moves_a_template_to_the_slow_path(root: Path) -> None:
    # A class computed by Jinja is invisible to the inliner; only leads with a rep show it.
    write_email(root, "guide", html="<p class=\"{{ 'callout' if rep else 'plain' }}\">Hi</p>")
    catalog = TemplateCatalog(root)
    with_rep = [s for s in SAMPLE_CONTEXTS if s.rep is not None]

    check = catalog.check_inlining("guide", "en", with_rep)

    assert not check.fast and check.reason and "differs for sample" in check.reason
    email = catalog.render("guide", "en", context())
    assert re.search(r'<p class="callout" style="[^"]*border-left:4px solid #1d4ed8', email.html)


def test_an_apostrophe_in_a_name_keeps_the_fast_path(root: Path) -> None:
    write_email(root, "guide", html='<p title="{{ lead.last_name }}">{{ lead.last_name }}</p>')
    catalog = TemplateCatalog(root)
    lead = replace(SAMPLE_LEAD, last_name="O'Neill")
    check = catalog.check_inlining("guide", "en", [context(lead)])
    assert check.fast
    assert "O&#39;Neill" in catalog.render("guide", "en", context(lead)).html


# --- what validation tells the marketer -------------------------------------------


def test_check_names_the_known_templates_for_an_unknown_one(root: Path) -> None:
    write_email(root, "guide")
    write_email(root, "webinar")
    assert TemplateCatalog(root).check("guidee", ("en",), None) == [
        "unknown template 'guidee' (known: guide, webinar)"
    ]


def test_check_reports_a_missing_translation_and_its_fallback(root: Path) -> None:
    write_email(root, "guide", "en")
    messages = TemplateCatalog(root).check("guide", ("en", "fr"), None)
    assert messages == [
        f"missing translation: {root}/emails/guide/fr/body.html (would fall back to en)"
    ]


def test_check_accepts_a_complete_template(root: Path) -> None:
    write_email(root, "guide", "en", html=BUTTON)
    write_email(root, "guide", "fr", html=BUTTON)
    assert TemplateCatalog(root).check("guide", ("en", "fr", "fr-CA"), None) == []


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        (
            "body.html",
            "<p>Hi</p>\n<p>{{ firstname }}</p>",
            "body.html:2: unknown variable 'firstname'",
        ),
        ("body.html", "<p>Hi</p>\n\n{% if rep %}<p>x</p>", "body.html:3: syntax error:"),
        ("body.txt", "Hi\n{{ lead.first_name }", "body.txt:2: syntax error: unexpected '}'"),
        ("body.txt", "Hi\n{{ lead.nonexistent }}", "body.txt:2: 'nurture.core.profile"),
        ("subject.txt", "{{ lead.first_name | nosuchfilter }}", "subject.txt:1: syntax error:"),
    ],
)
def test_check_locates_template_mistakes(root: Path, file: str, source: str, expected: str) -> None:
    folder = write_email(root, "guide", "fr")
    write_email(root, "guide", "en")
    (folder / file).write_text(source, encoding="utf-8")
    messages = TemplateCatalog(root).check("guide", ("en", "fr"), None)
    assert any(f"emails/guide/fr/{expected}" in m for m in messages), messages


def test_check_reports_a_bad_subject_override(root: Path) -> None:
    write_email(root, "guide")
    catalog = TemplateCatalog(root)
    assert catalog.check("guide", ("en",), "Hello {{ lead.first_name }") == [
        "subject 'Hello {{ lead.first_name }': syntax error: unexpected '}'"
    ]
    assert catalog.check("guide", ("en",), "Hello {{ lead.first_name }}") == []


def test_a_missing_plain_text_part_is_a_problem(root: Path) -> None:
    write_email(root, "guide", text=None)
    problems = [str(p) for p in TemplateCatalog(root).validate_all()]
    assert problems == [
        f"{root}/emails/guide/en/body.txt:1: missing file: every email needs a plain-text part"
    ]


def test_the_shipped_layouts_and_example_email_validate_cleanly(root: Path) -> None:
    shutil.copytree(REPO_TEMPLATES / "emails" / "_example", root / "emails" / "_example")
    catalog = TemplateCatalog(root)
    assert catalog.validate_all() == []
    assert [str(c) for c in catalog.inlining_report()] == [
        "_example (en): fast path",
        "_example (fr): fast path",
    ]


def test_a_layout_without_unsubscribe_link_is_a_problem(root: Path) -> None:
    layout = root / "layouts" / "fr" / "base.html"
    source = layout.read_text(encoding="utf-8")
    layout.write_text(source.replace("{{ unsubscribe_url }}", "#"), encoding="utf-8")
    problems = [str(p) for p in TemplateCatalog(root).validate_all()]
    assert problems == [
        f"{layout}:1: the footer must show an unsubscribe link ({{{{ unsubscribe_url }}}})"
    ]


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_a_shipped_email_without_a_rep_is_signed_by_the_team(locale: str) -> None:
    """Not "Planifia, Planifia SAS": a team signs, in the email's language."""
    catalog = TemplateCatalog(REPO_TEMPLATES)
    planifia = replace(SENDER, name="Planifia", company="Planifia SAS")
    team = {"en": "The Planifia team", "fr": "L’équipe Planifia"}[locale]
    signed = 0
    for name in catalog.templates():
        if name.startswith("_") or locale not in catalog.locales(name):
            continue
        lead = replace(SAMPLE_LEAD, rep=None, locale=locale)
        rendered = catalog.render(name, locale, replace(context(lead), sender=planifia))
        assert "Planifia, Planifia SAS" not in rendered.text, name
        signed += team in rendered.text
    assert signed >= 10
