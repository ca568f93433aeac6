"""The intake benchmark's data: the same realistic leads as API batches, a CSV file and raw rows.

Leads are drawn from a seeded generator, so every run and every path sees the same
people: French, Belgian, Swiss, Canadian, British, German, Spanish and American
contacts of manufacturing companies, with a job title, company size, country, locale,
source and campaign, two custom fields and zero to two tags. Emails are unique and
already in their normalised form (ASCII, lower case), so the raw insert stores exactly
what the engine stores after checking them.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nurture.identifiers import new_lead_id

SEED = 20260310
WARMUP_DOMAIN = "warmup.example"

FIRST = {
    "fr": ["Claire", "Hélène", "François", "Théo", "Amélie", "Jérôme", "Cécile", "Loïc"],
    "en": ["Oliver", "Emma", "James", "Sophie", "Harry", "Grace", "Liam", "Chloe"],
    "de": ["Jürgen", "Anna", "Matthias", "Lena", "Jörg", "Katrin", "Stefan", "Sabine"],
    "es": ["Lucía", "Javier", "Marta", "Andrés", "Nuria", "Sergio", "Inés", "Pablo"],
}
LAST = {
    "fr": ["Martin", "Durand", "Lefèvre", "Moreau", "Girard", "Rochat", "Berthier", "Faure"],
    "en": ["Smith", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright", "Hughes"],
    "de": ["Müller", "Schmidt", "Weber", "Becker", "Hoffmann", "Schäfer", "Koch", "Richter"],
    "es": ["García", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Díaz", "Ruiz"],
}
# country, locale, share of the leads
COUNTRIES = [
    ("FR", "fr", 38),
    ("BE", "fr", 8),
    ("CH", "fr", 6),
    ("CA", "fr", 6),
    ("GB", "en", 14),
    ("DE", "de", 12),
    ("ES", "es", 8),
    ("US", "en", 8),
]
COMPANY_WORDS = [
    "Moulages",
    "Décolletage",
    "Plasturgie",
    "Mécanique",
    "Tôlerie",
    "Fonderie",
    "Précision",
    "Emballages",
    "Composites",
    "Usinage",
]
COMPANY_FORMS = ["SAS", "SA", "SARL", "Ltd", "GmbH", "S.L.", "Inc.", "AG"]
TITLES = [
    "Directrice des opérations",
    "Directeur industriel",
    "Responsable de production",
    "Planificatrice",
    "Responsable méthodes",
    "Head of Operations",
    "Production Planner",
    "Supply Chain Manager",
    "Plant Manager",
    "Werkleiter",
    "Jefe de producción",
    "Industrial Engineer",
    "Étudiant en alternance",
    "Chief Financial Officer",
]
INDUSTRIES = ["manufacturing", "plastics", "metalworking", "food processing", "automotive supplier"]
ERPS = ["SAP Business One", "Sage X3", "Divalto", "Microsoft Dynamics", "Odoo", "none"]
SOURCES = [("webinar", 20), ("website", 40), ("trade-show", 20), ("referral", 10), ("partner", 10)]
CAMPAIGNS = ["spring-2026", "global-industrie-2026", "planifia-live-march", "newsletter"]
TAGS = ["evaluation", "newsletter", "trade-show-2026", "erp-project", "plastics"]
CSV_COLUMNS = [
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "company_size",
    "country",
    "locale",
    "source",
    "campaign",
    "tags",
    "fields.industry",
    "fields.erp",
]
# What a real file holds now and then; each is refused with its line by the import.
BAD_ROWS = [
    "not-an-email,Marc,Petit,Forges Petit SARL,Gérant,35,FR,fr,website,,,,",
    "anne.roux@forges-roux.example,Anne,Roux,Forges Roux,Planificatrice,120,France,fr,,,,,",
    "lena.graf@graf-guss.example,Lena,Graf,Graf Guss GmbH,Werkleiter,lots,DE,de,,,,,",
    "tom.hale@hale-tools.example,Tom,Hale,Hale Tools Ltd,Planner,80,GB,en,website,,,,,extra",
    ",Paul,Blanc,Blanc Industrie,Directeur,400,FR,fr,,,,,",
]


@dataclass(frozen=True)
class Dataset:
    leads: list[dict[str, Any]]  # as the API receives them
    bad_rows: int  # in the CSV file only

    def batches(self, size: int) -> list[list[dict[str, Any]]]:
        return [self.leads[i : i + size] for i in range(0, len(self.leads), size)]

    def bodies(self, size: int) -> list[tuple[int, bytes]]:
        """Encoded before the clock starts: (leads in it, JSON body)."""
        return [
            (len(b), json.dumps({"leads": b}, ensure_ascii=False).encode())
            for b in self.batches(size)
        ]

    def expected_enrolments(self, countries: frozenset[str]) -> int:
        """Leads the bench welcome sequence admits: webinar source or `evaluation` tag."""
        return sum(
            1
            for lead in self.leads
            if lead["country"] in countries
            and (lead.get("source") == "webinar" or "evaluation" in lead.get("tags", []))
        )


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


def _ascii(text: str) -> str:
    table = str.maketrans("éèêëàâäîïôöùûüçñóíáúÉÈÀÇ", "eeeeaaaiioouuucnoiaueeac")
    return "".join(c for c in text.translate(table).lower() if c.isalnum() or c == "-")


def make_leads(count: int, seed: int = SEED) -> Dataset:
    rng = random.Random(seed)
    leads = []
    for index in range(count):
        country, locale, _ = _pick(rng, COUNTRIES)
        pool = locale if locale in FIRST else "en"
        first, last = rng.choice(FIRST[pool]), rng.choice(LAST[pool])
        word = rng.choice(COMPANY_WORDS)
        company = f"{word} {rng.choice(LAST[pool])} {rng.choice(COMPANY_FORMS)}"
        domain = f"{_ascii(word)}-{_ascii(company.split()[1])}-{index % 997}.example"
        lead: dict[str, Any] = {
            "email": f"{_ascii(first)}.{_ascii(last)}.{index}@{domain}",
            "first_name": first,
            "last_name": last,
            "company": company,
            "job_title": rng.choice(TITLES),
            "company_size": int(rng.lognormvariate(5.0, 1.2)) + 5,
            "country": country,
            "locale": locale,
            "source": _pick(rng, SOURCES)[0],
            "campaign": rng.choice(CAMPAIGNS),
            "fields": {"industry": rng.choice(INDUSTRIES), "erp": rng.choice(ERPS)},
        }
        tags = sorted(set(rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))))
        if tags:
            lead["tags"] = tags
        leads.append(lead)
    return Dataset(leads, 0)


def warmup_leads(count: int, tag: str) -> list[dict[str, Any]]:
    """Leads outside the dataset, to warm a server up before the clock starts."""
    return [
        {"email": f"warm.{tag}.{i}@{WARMUP_DOMAIN}", "company": "Warm-up", "country": "FR"}
        for i in range(count)
    ]


def write_csv(dataset: Dataset, path: Path, bad: int) -> Dataset:
    """The leads as a CSV file, with `bad` bad rows spread through it; returns the dataset
    with its bad-row count."""
    every = max(1, len(dataset.leads) // (bad + 1)) if bad else 0
    written_bad = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for index, lead in enumerate(dataset.leads, start=1):
            writer.writerow(_csv_row(lead))
            if every and index % every == 0 and written_bad < bad:
                handle.write(BAD_ROWS[written_bad % len(BAD_ROWS)] + "\r\n")
                written_bad += 1
    return Dataset(dataset.leads, written_bad)


def _csv_row(lead: dict[str, Any]) -> list[str]:
    fields = lead.get("fields", {})
    return [
        lead["email"],
        lead["first_name"],
        lead["last_name"],
        lead["company"],
        lead["job_title"],
        str(lead["company_size"]),
        lead["country"],
        lead["locale"],
        lead["source"],
        lead["campaign"],
        ";".join(lead.get("tags", [])),
        fields.get("industry", ""),
        fields.get("erp", ""),
    ]


def raw_rows(dataset: Dataset, now: datetime) -> list[dict[str, Any]]:
    """The `leads` rows the engine would end up with, minus grade and score (no scoring)."""
    rows = []
    for lead in dataset.leads:
        touch = {"channel": lead["source"], "campaign": lead["campaign"], "at": now.isoformat()}
        rows.append(
            {
                "public_id": new_lead_id(),  # made by the engine; COPY needs it given
                "email": lead["email"],
                "first_name": lead["first_name"],
                "last_name": lead["last_name"],
                "company": lead["company"],
                "job_title": lead["job_title"],
                "company_size": lead["company_size"],
                "country": lead["country"],
                "locale": lead["locale"],
                "source": lead["source"],
                "campaign": lead["campaign"],
                "stage": "lead",
                "score": 0,
                "behaviour_points": 0.0,
                "cycle": 1,
                "tags": list(lead.get("tags", [])),
                "fields": dict(lead["fields"]),
                "first_touch": touch,
                "latest_touch": touch,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def fingerprint(lead: dict[str, Any]) -> tuple[Any, ...]:
    """What must arrive unchanged whatever the path (compared row by row after each run)."""
    return (
        lead["email"],
        lead["first_name"],
        lead["last_name"],
        lead["company"],
        lead["job_title"],
        lead["company_size"],
        lead["country"],
        lead["locale"],
        lead["source"],
        lead["campaign"],
        tuple(sorted(lead.get("tags") or ())),
        tuple(sorted((lead.get("fields") or {}).items())),
    )


def chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
