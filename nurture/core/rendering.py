"""Email rendering: a template folder and a shared layout become subject, inlined HTML and text.

A template is `templates/emails/<name>/<locale>/{subject.txt,body.html,body.txt}` plus an
optional `templates/emails/<name>/style.css`; the body fragments are put textually into
`templates/layouts/<locale>/base.{html,txt}` at `{{ content }}`. The HTML's CSS is inlined
with premailer once per template version (Jinja constructs are protected from the HTML
parser by placeholder tokens), and each version is checked against "render first, then
inline" with sample leads before its fast path is trusted. See docs/templates.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import traceback
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import premailer
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from lxml import etree

from nurture.core.problems import Problem
from nurture.core.profile import SAMPLE_LEAD, LeadProfile, Rep

KNOWN_VARIABLES = frozenset(
    {"lead", "rep", "sender", "unsubscribe_url", "sequence", "step", "locale"}
)
"""The names a template may use; anything else is reported by validation."""


# --- values ------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """Who the emails come from; the layout footer shows the company and postal address."""

    name: str
    company: str
    email: str
    postal_address: str
    website: str


@dataclass(frozen=True)
class EmailContext:
    """Everything one email is rendered from. `subject_override` is a Jinja string."""

    lead: LeadProfile
    rep: Rep | None
    sender: Sender
    unsubscribe_url: str
    sequence: str
    step: str
    subject_override: str | None = None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    locale: str  # the locale whose files were used, after fallback
    template: str
    version: str


@dataclass(frozen=True)
class InliningCheck:
    """Whether a template version's inlined-once HTML matches inlining each email."""

    template: str
    locale: str
    version: str
    fast: bool
    reason: str | None = None  # why the slow path is used

    def __str__(self) -> str:
        verdict = "fast path" if self.fast else f"slow path: {self.reason}"
        return f"{self.template} ({self.locale}): {verdict}"


class RenderError(Exception):
    """An email could not be rendered; the message says where and why."""

    def __init__(self, template: str, locale: str, message: str) -> None:
        super().__init__(f"{template} ({locale}): {message}")
        self.template = template
        self.locale = locale
        self.message = message


SAMPLE_SENDER = Sender(
    name="Camille Durand",
    company="Example SAS",
    email="hello@example.com",
    postal_address="12 rue des Tisserands, 69002 Lyon, France",
    website="https://www.example.com",
)

SAMPLE_LEAD_EN = LeadProfile(
    email="sam.oneill@example.org",
    first_name="Sam",
    last_name="O'Neill",
    company="Northwind Logistics Ltd",
    job_title="Head of Operations",
    company_size=85,
    country="GB",
    timezone="Europe/London",
    locale="en",
    source="webinar",
    campaign="q3-webinar",
    score=30,
    fields=MappingProxyType({"industry": "logistics"}),
    rep=Rep(name="Priya Shah", email="priya.shah@example.com", title="Account Executive"),
)


def _sample(lead: LeadProfile, rep: Rep | None) -> EmailContext:
    return EmailContext(
        lead=lead,
        rep=rep,
        sender=SAMPLE_SENDER,
        unsubscribe_url="https://nurture.example.com/u/sample-token",
        sequence="sample-sequence",
        step="sample-step",
    )


SAMPLE_CONTEXTS: tuple[EmailContext, ...] = (
    _sample(SAMPLE_LEAD, SAMPLE_LEAD.rep),
    _sample(replace(SAMPLE_LEAD, rep=None), None),
    _sample(SAMPLE_LEAD_EN, SAMPLE_LEAD_EN.rep),
)
"""The leads every template is tried with: French with and without a rep, English."""


def _label(context: EmailContext) -> str:
    lead = context.lead
    who = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email
    return f"{who}, {f'rep {context.rep.name}' if context.rep else 'no rep'}"


# --- Jinja -------------------------------------------------------------------


def _none_as_empty(value: Any) -> Any:
    # "Hello None" is the classic personalisation bug; a missing value prints as nothing.
    return "" if value is None else value


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with its verdict on each attribute remembered.

    The checks look only at the object's type and the attribute's name, and they ran
    for every `{{ lead.first_name }}` of every email: a quarter of the rendering time.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._verdicts: dict[tuple[type, str], bool] = {}

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """`*` and `**` that would build something huge are refused before they run."""
        if operator == "**" and isinstance(right, int) and abs(right) > 1000:
            raise RenderLimit(f"an exponent of {right:,}: at most 1,000")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                repeats = isinstance(sequence, (str, list, tuple)) and isinstance(times, int)
                if repeats and len(sequence) * times > MAX_OUTPUT:
                    raise RenderLimit(f"a repetition of more than {MAX_OUTPUT:,} items")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = super().is_safe_attribute(obj, attr, value)
            if len(self._verdicts) < 10_000:  # bounded, whatever templates ask for
                self._verdicts[key] = verdict
        return verdict


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    # No loader: templates cannot include or extend files; the layout is the shared part.
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_none_as_empty,
    )
    env.globals["range"] = _Steps
    return env


# --- bounded work ----------------------------------------------------------------------
# A template is code: a loop in a loop can run for hours, `"x" * 10**9` can take a
# gigabyte. Each render has a budget of loop steps (`range`), a cap on what one
# operation may build and on the characters it writes; past one, it stops with a
# RenderError naming the template's line, and `validate` reports it with a sample lead.
# Counted work, not seconds: the same template fails the same way on every machine.

MAX_LOOP_STEPS = 1_000_000  # `range` items per render (an email needs a few hundred)
MAX_OUTPUT = 2_000_000  # characters per part (Gmail clips an email at about 102 KB)


class RenderLimit(Exception):
    """A render went past one of its limits."""


class _Budget:
    def __init__(self) -> None:
        self.steps = MAX_LOOP_STEPS

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise RenderLimit(
                f"more than {MAX_LOOP_STEPS:,} loop steps: a loop that runs away"
                " (a range inside a range?)"
            )


_budget: ContextVar[_Budget | None] = ContextVar("nurture_render_budget", default=None)


class _Steps:
    """`range` in templates: Jinja's sandboxed range (at most 100,000 items), each item
    taken from the render's budget as a loop reaches it."""

    def __init__(self, *args: int) -> None:
        self._numbers = safe_range(*args)

    def __len__(self) -> int:
        return len(self._numbers)

    def __contains__(self, item: object) -> bool:
        return item in self._numbers

    def __iter__(self) -> Iterator[int]:
        budget = _budget.get()
        for number in self._numbers:
            if budget is not None:
                budget.spend()
            yield number


def _render(template: Template, variables: dict[str, Any]) -> str:
    """`template.render` within the limits above."""
    token = _budget.set(_Budget())
    try:
        size = 0
        parts = []
        chunks = cast(Generator[str, None, None], template.generate(variables))  # it is one
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT:
                # Raised inside the template, where it wrote the last piece: the error
                # names that line.
                chunks.throw(RenderLimit(f"renders more than {MAX_OUTPUT:,} characters"))
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)


@dataclass(frozen=True)
class _Unit:
    """One Jinja source and how its lines map back to the files it was made from."""

    source: str
    marker: str  # the filename Jinja puts in tracebacks
    pieces: tuple[tuple[int, str, int], ...]  # (first line, file, line offset)

    def locate(self, line: int) -> tuple[str, int]:
        for start, path, offset in reversed(self.pieces):
            if line >= start:
                return path, line - offset
        return self.pieces[0][1], line

    @classmethod
    def single(cls, source: str, path: str) -> _Unit:
        return cls(source, path, ((1, path, 0),))


_CONTENT = re.compile(r"\{\{\s*content\s*\}\}")


def _join(layout: str, layout_path: str, fragment: str, fragment_path: str) -> _Unit:
    """Put the fragment source into the layout at `{{ content }}`, keeping a line map."""
    found = _CONTENT.search(layout)
    if found is None:
        raise _Broken(Problem(layout_path, 1, "the layout has no {{ content }} placeholder"))
    before, after = layout[: found.start()], layout[found.end() :]
    at = before.count("\n") + 1
    extra = fragment.count("\n")
    pieces = (
        (1, layout_path, 0),
        (at, fragment_path, at - 1),
        (at + extra + 1, layout_path, extra),
    )
    return _Unit(before + fragment + after, f"{fragment_path} in {layout_path}", pieces)


class _Broken(Exception):
    """A template cannot be built; carries the problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _compile(env: ImmutableSandboxedEnvironment, unit: _Unit) -> Template:
    try:
        code = env.compile(unit.source, name=unit.marker, filename=unit.marker)
    except TemplateSyntaxError as exc:
        path, line = unit.locate(exc.lineno)
        raise _Broken(Problem(path, line, exc.message or "syntax error")) from exc
    return env.template_class.from_code(env, code, env.make_globals(None))


def _where(exc: BaseException, unit: _Unit) -> tuple[str, int]:
    """The file and line of the template frame that raised, from Jinja's rewritten traceback."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == unit.marker and frame.lineno:
            line = frame.lineno
    return unit.locate(line) if line else (unit.pieces[0][1], 1)


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _variables(context: EmailContext, locale: str) -> dict[str, Any]:
    return {
        "lead": context.lead,
        "rep": context.rep,
        "sender": context.sender,
        "unsubscribe_url": context.unsubscribe_url,
        "sequence": context.sequence,
        "step": context.step,
        "locale": locale,
    }


def _one_line(subject: str) -> str:
    return " ".join(subject.split())


def _tidy_text(text: str) -> str:
    lines = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", lines).strip() + "\n"


# --- inlining ----------------------------------------------------------------

# A whole {% raw %} block, a comment, an expression or a statement; quoted strings may
# hold closing delimiters.
_JINJA = re.compile(
    r"""\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}
      | \{\#.*?\#\}
      | \{\{(?:[^}'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\}(?!\}))*\}\}
      | \{%(?:[^%'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|%(?!\}))*%\}""",
    re.S | re.X,
)

_PREMAILER_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "keep_style_tags": True,  # media queries must stay in a <style> block
        "remove_classes": False,
        "disable_validation": True,
        "strip_important": False,  # media queries need !important to beat inline styles
        "cssutils_logging_level": logging.CRITICAL,
        "allow_network": False,  # the core never opens sockets
        "disable_link_rewrites": True,
    }
)


def _protect(source: str) -> tuple[str, str, list[str]]:
    """Replace Jinja constructs by lower-case alphanumeric tokens an HTML parser keeps as is.

    Returns the protected source, the token prefix and the constructs in token order.
    """
    salt = hashlib.sha256(source.encode()).hexdigest()
    while f"jinja{salt[:10]}" in source:
        salt = hashlib.sha256(salt.encode()).hexdigest()
    prefix = f"jinja{salt[:10]}n"
    constructs: list[str] = []

    def token(match: re.Match[str]) -> str:
        constructs.append(match.group(0))
        return f"{prefix}{len(constructs) - 1}x"

    return _JINJA.sub(token, source), prefix, constructs


def _restore(html: str, prefix: str, constructs: list[str]) -> str:
    # A token where an attribute name goes comes back from the parser as `token=""`.
    pattern = re.compile(re.escape(prefix) + r'(\d+)x(?:="")?')
    return pattern.sub(lambda m: constructs[int(m.group(1))], html)


def _canonical(html: str) -> str:
    """The HTML as a parser reads it, whitespace collapsed: `&#39;` and `'` compare equal."""
    root = etree.fromstring(html.strip(), etree.HTMLParser())
    if root is None:
        return ""
    text = etree.tostring(root, method="html", encoding="unicode")
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", text)).strip()


def _first_difference(fast: str, slow: str) -> str:
    index = next(
        (i for i, (a, b) in enumerate(zip(fast, slow, strict=False)) if a != b),
        min(len(fast), len(slow)),
    )
    start, end = max(0, index - 40), index + 60
    return f"inlined once: …{fast[start:end]}… / inlined per email: …{slow[start:end]}…"


# --- the catalog -------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _language(locale: str) -> str:
    return re.split(r"[-_]", locale, maxsplit=1)[0].lower()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_mtime_ns, found.st_size)


@dataclass(frozen=True)
class _Sources:
    """The files one (template, locale) is made of, read from disk."""

    name: str
    locale: str
    paths: Mapping[str, Path]  # subject, body.html, body.txt, style.css, base.html, base.txt
    texts: Mapping[str, str | None]
    signature: tuple[tuple[int, int] | None, ...]  # to notice edits without reading
    version: str  # a hash of all the texts


def _version(texts: Mapping[str, str | None]) -> str:
    digest = hashlib.sha256()
    for key in sorted(texts):
        text = texts[key] or ""
        digest.update(f"{key}:{len(text)}:".encode() + text.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class _Entry:
    """A compiled template version, with the verdict on its inlined-once HTML."""

    sources: _Sources
    subject: Template | None  # None: subject.txt is missing, steps must set one
    subject_unit: _Unit
    html: Template  # the raw joined source: the slow path, and exact error locations
    html_unit: _Unit
    text: Template
    text_unit: _Unit
    css: str | None
    inlined: Template | None  # None: render then inline, per email
    check: InliningCheck


class TemplateCatalog:
    """The templates under `root`, rendered in a sandbox and checked for authoring mistakes.

    Files are read lazily and re-read when they change on disk; each template version is
    compiled and inlined once.
    """

    def __init__(self, root: Path, default_locale: str = "en") -> None:
        self.root = Path(root)
        self.default_locale = default_locale
        self.inliner_runs = 0  # premailer calls, for tests and benchmarks
        self._html_env = _environment(autoescape=True)
        self._text_env = _environment(autoescape=False)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._subjects: dict[str, Template] = {}
        self._problems: dict[tuple[str, str, bool, str], tuple[Problem, ...]] = {}
        self._lock = threading.RLock()
        # Files are checked for edits once per generation, not once per email.
        self._generation = 0
        self._checked: dict[tuple[str, str], int] = {}
        self._resolved: dict[tuple[str, str | None], str] = {}

    def refresh(self) -> None:
        """Look at the files again on next use (a worker calls this once per tick)."""
        with self._lock:
            self._generation += 1
            self._resolved.clear()

    # -- what exists ----------------------------------------------------------

    def templates(self) -> tuple[str, ...]:
        folder = self.root / "emails"
        if not folder.is_dir():
            return ()
        return tuple(
            sorted(p.name for p in folder.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))
        )

    def locales(self, name: str) -> tuple[str, ...]:
        """The locale folders of a template."""
        folder = self.root / "emails" / name
        if not _NAME.fullmatch(name) or not folder.is_dir():
            return ()
        return tuple(
            sorted(p.name for p in folder.iterdir() if p.is_dir() and _LOCALE.fullmatch(p.name))
        )

    def resolve_locale(self, name: str, locale: str | None) -> str:
        """The locale folder used for `locale`: itself, its language, then the default."""
        found = self._resolved.get((name, locale))
        if found is not None:
            return found
        found = self._find_locale(name, locale)
        self._resolved[(name, locale)] = found
        return found

    def _find_locale(self, name: str, locale: str | None) -> str:
        self._require(name, locale)
        for candidate in self._chain(locale):
            if (self.root / "emails" / name / candidate / "body.html").is_file():
                return candidate
        wanted = locale or self.default_locale
        raise RenderError(
            name,
            wanted,
            f"missing translation: {self._email_path(name, wanted, 'body.html')} "
            f"and no {self.default_locale} version to fall back to",
        )

    def version(self, name: str, locale: str | None) -> str:
        loc = self.resolve_locale(name, locale)
        return self._load(name, loc).version

    def versions(self) -> dict[tuple[str, str], str]:
        return {
            (name, loc): self._load(name, loc).version
            for name in self.templates()
            for loc in self.locales(name)
        }

    # -- rendering ------------------------------------------------------------

    def render(self, name: str, locale: str | None, context: EmailContext) -> RenderedEmail:
        """Subject, inlined HTML and plain text for one lead; raises RenderError."""
        loc = self.resolve_locale(name, locale)
        entry = self._entry(name, loc)
        variables = _variables(context, loc)
        if context.subject_override is not None:
            unit = _Unit.single(context.subject_override, "subject")
            template = self._subject(name, loc, context.subject_override)
            subject = self._run(name, loc, template, unit, variables)
        elif entry.subject is not None:
            subject = self._run(name, loc, entry.subject, entry.subject_unit, variables)
        else:
            missing = entry.sources.paths["subject.txt"]
            raise RenderError(name, loc, f"missing file: {missing} (and the step has no subject)")
        subject = _one_line(subject)
        if not subject:
            raise RenderError(name, loc, "the subject is empty")
        return RenderedEmail(
            subject=subject,
            html=self._render_html(entry, variables),
            text=_tidy_text(self._run(name, loc, entry.text, entry.text_unit, variables)),
            locale=loc,
            template=name,
            version=entry.sources.version,
        )

    def _render_html(self, entry: _Entry, variables: dict[str, Any]) -> str:
        name, loc = entry.sources.name, entry.sources.locale
        if entry.inlined is not None:
            try:
                return _render(entry.inlined, variables)
            except Exception as exc:
                # The raw source's traceback gives the exact file:line; it raises the same.
                self._run(name, loc, entry.html, entry.html_unit, variables)
                raise RenderError(name, loc, _error_text(exc)) from exc
        html = self._run(name, loc, entry.html, entry.html_unit, variables)
        return self._inline(html, entry.css)

    def _run(
        self, name: str, loc: str, template: Template, unit: _Unit, variables: dict[str, Any]
    ) -> str:
        try:
            return _render(template, variables)
        except Exception as exc:
            path, line = _where(exc, unit)
            raise RenderError(name, loc, f"{path}:{line}: {_error_text(exc)}") from exc

    def _subject(self, name: str, loc: str, source: str) -> Template:
        template = self._subjects.get(source)
        if template is None:
            try:
                template = _compile(self._text_env, _Unit.single(source, "subject"))
            except _Broken as exc:
                raise RenderError(name, loc, f"subject {source!r}: {exc.problem.message}") from exc
            if len(self._subjects) > 1000:  # overrides come from sequence files: few
                self._subjects.clear()
            self._subjects[source] = template
        return template

    def _inline(self, html: str, css: str | None) -> str:
        self.inliner_runs += 1
        options = dict(_PREMAILER_OPTIONS)
        if css:
            options["css_text"] = css
        result: str = premailer.transform(html, **options)
        return result

    # -- the inlined-once fast path and its check -----------------------------

    def check_inlining(
        self, name: str, locale: str | None, samples: Sequence[EmailContext]
    ) -> InliningCheck:
        """Render each sample both ways; on any difference this template takes the slow path."""
        loc = self.resolve_locale(name, locale)
        with self._lock:
            entry = self._entry(name, loc)
            result = self._verify(entry, samples)
            if not result.fast and entry.inlined is not None:
                self._entries[(name, loc)] = replace(entry, inlined=None, check=result)
        return result

    def inlining_report(self) -> list[InliningCheck]:
        """The verdict for every template version that builds (broken ones: see validate_all)."""
        report = []
        for name in self.templates():
            for loc in self.locales(name):
                try:
                    report.append(self._entry(name, loc).check)
                except RenderError:
                    continue
        return report

    def _verify(self, entry: _Entry, samples: Sequence[EmailContext]) -> InliningCheck:
        if entry.inlined is None:
            return entry.check
        sources = entry.sources
        verdict = InliningCheck(sources.name, sources.locale, sources.version, fast=True)
        failures = []
        for sample in samples:
            variables = _variables(sample, sources.locale)
            try:
                fast = _render(entry.inlined, variables)
                slow = self._inline(_render(entry.html, variables), entry.css)
            except Exception as exc:
                failures.append(_error_text(exc))
                continue
            fast_form, slow_form = _canonical(fast), _canonical(slow)
            if fast_form != slow_form:
                difference = _first_difference(fast_form, slow_form)
                reason = f"differs for sample {_label(sample)}: {difference}"
                return replace(verdict, fast=False, reason=reason)
        if samples and len(failures) == len(samples):
            reason = f"no sample lead renders, so the inlined HTML is unverified: {failures[0]}"
            return replace(verdict, fast=False, reason=reason)
        return verdict

    # -- building a version ---------------------------------------------------

    def _entry(self, name: str, loc: str) -> _Entry:
        with self._lock:
            cached = self._entries.get((name, loc))
            if cached is not None and self._checked.get((name, loc)) == self._generation:
                return cached
            self._checked[(name, loc)] = self._generation
            if cached is not None and self._unchanged(cached.sources):
                return cached
            sources = self._load(name, loc)
            if cached is not None and cached.sources.version == sources.version:
                entry = replace(cached, sources=sources)  # touched, not changed
            else:
                entry = self._build(sources)
            self._entries[(name, loc)] = entry
            return entry

    def _build(self, sources: _Sources) -> _Entry:
        """Compile a version, inline its HTML once, and check that against the samples."""
        name, loc = sources.name, sources.locale
        try:
            subject_unit, html_unit, text_unit = self._units(sources)
            subject = (
                None
                if sources.texts["subject.txt"] is None
                else _compile(self._text_env, subject_unit)
            )
            html = _compile(self._html_env, html_unit)
            text = _compile(self._text_env, text_unit)
        except _Broken as exc:
            raise RenderError(name, loc, str(exc.problem)) from exc
        css = sources.texts["style.css"]
        check = InliningCheck(name, loc, sources.version, fast=True)
        inlined: Template | None = None
        try:
            protected, prefix, constructs = _protect(html_unit.source)
            restored = _restore(self._inline(protected, css), prefix, constructs)
            inlined = _compile(self._html_env, replace(html_unit, source=restored))
        except Exception as exc:
            check = replace(check, fast=False, reason=f"the inliner failed: {_error_text(exc)}")
        entry = _Entry(
            sources, subject, subject_unit, html, html_unit, text, text_unit, css, inlined, check
        )
        check = self._verify(entry, SAMPLE_CONTEXTS)
        return replace(entry, check=check, inlined=inlined if check.fast else None)

    def _units(self, sources: _Sources) -> tuple[_Unit, _Unit, _Unit]:
        texts, paths = sources.texts, sources.paths
        for key in ("body.html", "body.txt", "base.html", "base.txt"):
            if texts[key] is None:
                raise _Broken(Problem(str(paths[key]), 1, "missing file"))
        html = _join(
            texts["base.html"] or "",
            str(paths["base.html"]),
            texts["body.html"] or "",
            str(paths["body.html"]),
        )
        text = _join(
            texts["base.txt"] or "",
            str(paths["base.txt"]),
            texts["body.txt"] or "",
            str(paths["body.txt"]),
        )
        subject = _Unit.single(texts["subject.txt"] or "", str(paths["subject.txt"]))
        return subject, html, text

    def _load(self, name: str, loc: str) -> _Sources:
        paths = self._paths(name, loc)
        signature = self._signature(paths)  # before reading: an edit in between re-reads
        texts = {key: _read(path) for key, path in paths.items()}
        return _Sources(
            name, loc, MappingProxyType(paths), MappingProxyType(texts), signature, _version(texts)
        )

    def _paths(self, name: str, loc: str) -> dict[str, Path]:
        email = self.root / "emails" / name
        layout = self.root / "layouts" / (self._layout_locale(loc) or self.default_locale)
        return {
            "subject.txt": email / loc / "subject.txt",
            "body.html": email / loc / "body.html",
            "body.txt": email / loc / "body.txt",
            "style.css": email / "style.css",
            "base.html": layout / "base.html",
            "base.txt": layout / "base.txt",
        }

    def _unchanged(self, sources: _Sources) -> bool:
        return sources.signature == self._signature(sources.paths)

    def _signature(self, paths: Mapping[str, Path]) -> tuple[tuple[int, int] | None, ...]:
        return tuple(_stat(paths[key]) for key in sorted(paths))

    def _layout_locale(self, loc: str) -> str | None:
        for candidate in self._chain(loc):
            if (self.root / "layouts" / candidate / "base.html").is_file():
                return candidate
        return None

    def _chain(self, locale: str | None) -> tuple[str, ...]:
        chain = []
        if locale and _LOCALE.fullmatch(locale):
            chain += [locale, _language(locale)]
        chain.append(self.default_locale)
        return tuple(dict.fromkeys(chain))

    def _require(self, name: str, locale: str | None) -> None:
        if not _NAME.fullmatch(name) or not (self.root / "emails" / name).is_dir():
            raise RenderError(name, locale or self.default_locale, self._unknown(name))

    def _unknown(self, name: str) -> str:
        return f"unknown template {name!r} (known: {', '.join(self.templates()) or 'none'})"

    def _email_path(self, name: str, loc: str, file: str) -> str:
        return str(self.root / "emails" / name / loc / file)

    # -- validation -----------------------------------------------------------

    def check(self, template: str, locales: tuple[str, ...], subject: str | None) -> list[str]:
        """Human messages on one use of a template by a sequence step (empty: all good)."""
        if not _NAME.fullmatch(template) or template not in self.templates():
            return [self._unknown(template)]
        messages: list[str] = []
        used: list[str] = []
        for locale in locales or (self.default_locale,):
            wanted = self._email_path(template, locale, "body.html")
            try:
                found = self.resolve_locale(template, locale)
            except RenderError:
                messages.append(
                    f"missing translation: {wanted} "
                    f"(and no {self.default_locale} version to fall back to)"
                )
                continue
            if found not in (locale, _language(locale)):
                messages.append(f"missing translation: {wanted} (would fall back to {found})")
            if found not in used:
                used.append(found)
        for loc in used:
            problems = self._locale_problems(template, loc, need_subject=subject is None)
            messages.extend(str(p) for p in problems)
        if subject is not None:
            unit = _Unit.single(subject, f"subject {subject!r}")
            for loc in used or [self.default_locale]:
                problems = self._unit_problems(self._text_env, unit, loc, is_subject=True)
                messages.extend(f"{p.path}: {p.message}" for p in problems)
        return list(dict.fromkeys(messages))

    def validate_all(self) -> list[Problem]:
        """Every problem in the layouts and in every template folder, with file:line."""
        problems = self._layout_problems()
        for name in self.templates():
            locales = self.locales(name)
            if self.default_locale not in locales:
                problems.append(
                    Problem(
                        self._email_path(name, self.default_locale, "body.html"),
                        1,
                        f"missing: every template needs a {self.default_locale} version "
                        "(the fallback for other locales)",
                    )
                )
            for loc in locales:
                problems += self._locale_problems(name, loc, need_subject=True)
        return sorted(set(problems))

    def _layout_problems(self) -> list[Problem]:
        folder = self.root / "layouts"
        locales = {self.default_locale}
        if folder.is_dir():
            locales |= {p.name for p in folder.iterdir() if p.is_dir()}
        problems = []
        for loc in sorted(locales):
            for file, env in (("base.html", self._html_env), ("base.txt", self._text_env)):
                path = folder / loc / file
                source = _read(path)
                if source is None:
                    problems.append(Problem(str(path), 1, "missing layout file"))
                    continue
                problems += self._layout_file_problems(source, str(path), env, loc)
        return problems

    def _layout_file_problems(
        self, source: str, path: str, env: ImmutableSandboxedEnvironment, loc: str
    ) -> list[Problem]:
        problems = []
        count = len(_CONTENT.findall(source))
        if count != 1:
            message = f"the layout needs exactly one {{{{ content }}}}, found {count}"
            problems.append(Problem(path, 1, message))
        for needed, what in (
            ("unsubscribe_url", "an unsubscribe link"),
            ("sender.postal_address", "the sender's postal address"),
        ):
            if not re.search(r"\{\{[^}]*\b" + re.escape(needed) + r"\b", source):
                message = f"the footer must show {what} ({{{{ {needed} }}}})"
                problems.append(Problem(path, 1, message))
        if count:
            problems += self._unit_problems(env, _join(source, path, "", path), loc)
        return problems

    def _locale_problems(self, name: str, loc: str, need_subject: bool) -> list[Problem]:
        # Every step of every sequence asks about its template: answer once per version.
        sources = self._load(name, loc)
        key = (name, loc, need_subject, sources.version)
        found = self._problems.get(key)
        if found is None:
            found = self._problems[key] = tuple(self._find_problems(sources, need_subject))
        return list(found)

    def _find_problems(self, sources: _Sources, need_subject: bool) -> list[Problem]:
        loc, paths, texts = sources.locale, sources.paths, sources.texts
        problems = []
        for file, why in (
            ("subject.txt", "every email needs a subject, unless each step sets one"),
            ("body.html", "the HTML part"),
            ("body.txt", "every email needs a plain-text part"),
        ):
            if texts[file] is None and (need_subject or file != "subject.txt"):
                problems.append(Problem(str(paths[file]), 1, f"missing file: {why}"))
        layout = self._layout_locale(loc)
        if layout is not None and _language(layout) != _language(loc):
            message = f"no layout for {loc!r}: the {layout} layout and its footer would be used"
            problems.append(Problem(str(paths["body.html"]), 1, message))
        if texts["base.html"] is None or texts["base.txt"] is None:
            return problems  # reported with the layouts
        for env, file, base in (
            (self._html_env, "body.html", "base.html"),
            (self._text_env, "body.txt", "base.txt"),
            (self._text_env, "subject.txt", None),
        ):
            fragment = texts[file]
            if fragment is None:
                continue
            alone = _Unit.single(fragment, str(paths[file]))
            try:
                env.parse(fragment)  # each file alone first: its own line numbers
            except TemplateSyntaxError as exc:
                problems.append(
                    Problem(str(paths[file]), exc.lineno, f"syntax error: {exc.message}")
                )
                continue
            if base is None:
                problems += self._unit_problems(env, alone, loc, is_subject=True)
                continue
            try:
                unit = _join(texts[base] or "", str(paths[base]), fragment, str(paths[file]))
            except _Broken:
                continue  # reported with the layouts
            problems += self._unit_problems(env, unit, loc)
        return problems

    def _unit_problems(
        self, env: ImmutableSandboxedEnvironment, unit: _Unit, loc: str, is_subject: bool = False
    ) -> list[Problem]:
        """Syntax, then unknown variables, then a render with every sample lead."""
        try:
            tree = env.parse(unit.source)
            template = _compile(env, unit)
        except TemplateSyntaxError as exc:
            return [Problem(*unit.locate(exc.lineno), f"syntax error: {exc.message}")]
        except _Broken as exc:
            return [replace(exc.problem, message=f"syntax error: {exc.problem.message}")]
        unknown = sorted(meta.find_undeclared_variables(tree) - KNOWN_VARIABLES - set(env.globals))
        if unknown:
            known = ", ".join(sorted(KNOWN_VARIABLES))
            return [
                Problem(
                    *unit.locate(_first_use(tree, name)),
                    f"unknown variable {name!r} (known: {known})",
                )
                for name in unknown
            ]
        problems: dict[tuple[str, int, str], Problem] = {}
        for sample in SAMPLE_CONTEXTS:
            try:
                rendered = _render(template, _variables(sample, loc))
            except Exception as exc:
                path, line = _where(exc, unit)
                text = _error_text(exc)
                problem = Problem(path, line, f"{text} (sample lead: {_label(sample)})")
                problems.setdefault((path, line, text), problem)
                continue
            if is_subject and not _one_line(rendered):
                path = unit.pieces[0][1]
                problems.setdefault((path, 1, ""), Problem(path, 1, "the subject renders empty"))
        return list(problems.values())


def _first_use(tree: nodes.Template, variable: str) -> int:
    for node in tree.find_all(nodes.Name):
        if node.name == variable:
            return int(node.lineno)
    return 1
