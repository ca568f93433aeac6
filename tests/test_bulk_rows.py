"""Rows written and read in bulk the same way on SQLite and PostgreSQL (nurture.db)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from nurture.db import among, insert_rows, update_rows
from nurture.models import Delivery, Enrollment, Lead
from nurture.runtime import Runtime

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def _lead_and_enrollments(runtime: Runtime, count: int) -> list[int]:
    with runtime.sessions.begin() as session:
        lead_id = session.scalars(
            insert(Lead).returning(Lead.id),
            [{"email": "zoé@exemple.fr", "created_at": T0, "updated_at": T0, "tags": []}],
        ).one()
        rows = [
            {
                "lead_id": lead_id,
                "sequence_id": "s",
                "version": "v1",
                "cycle": n + 1,
                "status": "active",
                "step_id": "first",
                "step_started_at": T0,
                "due_at": T0,
                "priority": 0,
                "trigger": "test",
                "entered_at": T0,
            }
            for n in range(count)
        ]
        return list(session.scalars(insert(Enrollment).returning(Enrollment.id), rows))


def _delivery(enrollment_id: int, lead_id: int, step: str, links: list[str]) -> dict[str, Any]:
    return {
        "enrollment_id": enrollment_id,
        "lead_id": lead_id,
        "sequence_id": "s",
        "version": "v1",
        "step_id": step,
        "template": "example",
        "kind": "guide",
        "attempts": 0,
        "message_id": f"{enrollment_id}.{step}@exemple.fr",
        "to_email": "zoé@exemple.fr",
        "created_at": T0,
        "links": links,
        "status": "claimed",
        "lease_until": T0 + timedelta(minutes=5),
        "updated_at": T0,
    }


def test_inserted_rows_come_back_with_their_keys_and_values(make_runtime: Any) -> None:
    runtime = make_runtime()
    enrollments = _lead_and_enrollments(runtime, 3)
    with runtime.sessions() as session:
        lead_id = session.scalars(select(Lead.id)).one()
    links = [[], ["https://exemple.fr/guide?a=1&b=é"], ["https://a.example", "https://b.example"]]
    rows = [_delivery(e, lead_id, "first", ls) for e, ls in zip(enrollments, links, strict=True)]
    with runtime.sessions.begin() as session:
        returned = insert_rows(session, Delivery, rows, ("id", "enrollment_id", "step_id"))
    assert sorted((e, s) for _, e, s in returned) == [(e, "first") for e in sorted(enrollments)]
    with runtime.sessions() as session:
        stored = {
            d.id: (d.enrollment_id, d.links, d.lease_until, d.to_email)
            for d in session.scalars(select(Delivery))
        }
    assert stored == {
        new_id: (e, ls, T0 + timedelta(minutes=5), "zoé@exemple.fr")
        for (new_id, e, _), ls in zip(sorted(returned, key=lambda r: r[1]), links, strict=True)
    }


def test_each_row_gets_its_own_values_and_the_others_are_untouched(make_runtime: Any) -> None:
    runtime = make_runtime()
    first, second, third = _lead_and_enrollments(runtime, 3)
    later = T0 + timedelta(hours=2)
    with runtime.sessions.begin() as session:
        update_rows(
            session,
            Enrollment,
            [
                {"id": first, "status": "finished", "due_at": None, "note": "done"},
                {"id": second, "due_at": later, "note": "deferred: frequency cap"},
                {"id": first - 1000, "due_at": later, "note": "no such row"},  # matches none
            ],
        )
    with runtime.sessions() as session:
        rows = {
            e.id: (e.status, e.due_at, e.note)
            for e in session.scalars(select(Enrollment).order_by(Enrollment.id))
        }
    assert rows == {
        first: ("finished", None, "done"),
        second: ("active", later, "deferred: frequency cap"),
        third: ("active", T0, None),
    }


def test_among_selects_the_listed_values_only(make_runtime: Any) -> None:
    runtime = make_runtime()
    enrollments = _lead_and_enrollments(runtime, 250)
    wanted = set(enrollments[::3])
    with runtime.sessions() as session:
        found = set(
            session.scalars(select(Enrollment.id).where(among(session, Enrollment.id, wanted)))
        )
        none = session.scalars(select(Enrollment.id).where(among(session, Enrollment.id, [])))
        assert found == wanted
        assert list(none) == []


def test_updated_values_come_back_exactly_whatever_they_hold(make_runtime: Any) -> None:
    """Text with the characters an encoding must escape, JSON values and their absence,
    numbers, and a time given in another zone: each stored as given."""
    from zoneinfo import ZoneInfo

    import pytest

    runtime = make_runtime()
    _lead_and_enrollments(runtime, 1)
    with runtime.sessions() as session:
        lead_id = session.scalars(select(Lead.id)).one()
    tricky = 'O\'Brien "Bob", {a,b} \\ back\\slash; zoé 東京 🚀 NULL'
    paris = datetime(2026, 3, 29, 4, 15, tzinfo=ZoneInfo("Europe/Paris"))
    values = {
        "id": lead_id,
        "first_name": tricky,
        "company": "",
        "fields": {"erp": 'sap "4"', "seats": 12, "nested": {"list": [1, None, "x"]}},
        "tags": ["a,b", 'c"d', "{e}"],
        "first_touch": None,
        "score": -7,
        "behaviour_points": 12.125,
        "last_activity_at": paris,
    }
    with runtime.sessions.begin() as session:
        update_rows(session, Lead, [values])
    with runtime.sessions() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        stored = {name: getattr(lead, name) for name in values}
    assert stored == values
    assert stored["last_activity_at"] == datetime(2026, 3, 29, 2, 15, tzinfo=UTC)
    with runtime.sessions.begin() as session, pytest.raises(Exception, match="naive"):
        update_rows(session, Lead, [{"id": lead_id, "updated_at": datetime(2026, 3, 29)}])
