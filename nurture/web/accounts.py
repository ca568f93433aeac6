"""Accounts over the JSON API: the same figures as `nurture accounts list` and `show`,
declared with `api.operation` so the OpenAPI document shows them (docs/accounts.md)."""

from __future__ import annotations

from typing import Annotated

from flask import Response, request
from pydantic import Field

from nurture.accounts import details, find, listing, shown
from nurture.core.formats import OneOf
from nurture.core.intake import checked
from nurture.core.payloads import AccountsQuery
from nurture.core.scoring import GRADES
from nurture.core.sequences import STAGES
from nurture.web import request_now, runtime
from nurture.web.answers import Answer, Time
from nurture.web.api import _answer, operation, problem

Grade = Annotated[str, OneOf(GRADES)]
Stage = Annotated[str, OneOf(STAGES)]


class AccountFigures(Answer):
    """An account: what it is known by, its fit and its engagement, computed now."""

    id: int = Field(description="The account's number: name it by it, its domain or company id.")
    domain: str | None = Field(description="The organisation domain its contacts' emails share.")
    company_id: str | None = Field(description="The contacts' `company_id` field, when given.")
    name: str | None = Field(description="What most of its contacts call their company.")
    contacts: int
    engaged_contacts: int = Field(
        description="Distinct contacts engaged (human clicks by default) within the window."
    )
    engaged_within: str = Field(description='The window, such as "30 days".')
    score: int = Field(
        description="The contacts' scores now, each counted from 0 up to the promotion threshold."
    )
    best_grade: Grade | None
    by_stage: dict[str, int] = Field(description="How many contacts at each stage.")


class AccountPerson(Answer):
    id: str
    email: str
    first_name: str | None
    last_name: str | None
    job_title: str | None
    stage: Stage
    grade: Grade | None
    score: int
    engaged_at: Time | None


class AccountPromotionAnswer(Answer):
    cycle: int
    at: Time
    reason: str
    lead: str | None = Field(description="The contact promoted (null once it was erased).")


class AccountDetails(AccountFigures):
    """An account with its contacts (engaged first, at most 200) and its promotions."""

    people: list[AccountPerson]
    promotions: list[AccountPromotionAnswer]


class AccountList(Answer):
    accounts: list[AccountFigures]


@operation(
    "GET", "/accounts", "read", tag="accounts", query=AccountsQuery,
    answers={200: (AccountList, "The accounts, the most engaged first.")},
)  # fmt: skip
def get_accounts() -> Response:
    """Accounts with their fit and engagement, the most engaged first

    What `nurture accounts list` prints: each account's contacts, best grade, contacts
    by stage, engaged contacts within the account rule's window and account score.
    """
    asked = checked(AccountsQuery, dict(request.args), "query")
    rt = runtime()
    with rt.sessions() as session:
        found = listing(
            session, rt.content, request_now(), asked.limit, engaged_only=asked.engaged == "true"
        )
        accounts = [AccountFigures(**shown(a.id, a.key, a.figures)) for a in found]
    return _answer(AccountList(accounts=accounts))


@operation(
    "GET", "/accounts/<path:account>", "read", tag="accounts",
    answers={200: (AccountDetails, "The account.")},
)  # fmt: skip
def get_account(account: str) -> Response:
    """One account: its figures, its contacts and its promotions

    `{account}` is the account's number, its domain (an address or a sub-domain finds it
    too) or its company id.
    """
    rt = runtime()
    with rt.sessions() as session:
        found = find(session, account)
        if found is None:
            return problem(404, "not_found", "no account with this number, domain or company id")
        return _answer(AccountDetails(**details(session, rt.content, found, request_now())))
