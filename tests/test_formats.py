"""Email addresses: the fast path for plain addresses gives exactly what
email-validator gives, address for address, refusals included."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.core.formats import normalise_email

ATOM = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
LOCAL = st.text(alphabet=ATOM + ".", min_size=0, max_size=70)
LABEL = st.text(alphabet="abcz09-AZ", min_size=0, max_size=12)
SPECIAL = ["test", "local", "localhost", "invalid", "onion", "arpa", "home.arpa", "example"]
DOMAIN = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.tuples(st.lists(LABEL, min_size=1, max_size=3).map(".".join),
              st.sampled_from(SPECIAL)).map(".".join),
    st.sampled_from(
        ["example.com", "Example.COM", "bücher.de", "xn--bcher-kva.de", "b.test", "localhost",
         "sub.acme.co.uk", "x" * 63 + ".com", "x" * 64 + ".com", ("y" * 60 + ".") * 4 + "com",
         ("y" * 62 + ".") * 4 + "com", "[127.0.0.1]", "ab--c.com", "xn--a.com", "a.c0m", "a.1",
         "a-.com", "a.-b.com", "a.com.", ".a.com", "a..com", "ACME.Co.UK", "a.b-c.io", "a_b.com",
         "a b.com", "ａ.com", "a.ｃom"]
    ),
)  # fmt: skip


def library(raw: str) -> str:
    try:
        return str(validate_email(raw, check_deliverability=False).normalized).lower()
    except EmailNotValidError as error:
        return f"refused: {error}"


def ours(raw: str) -> str:
    try:
        return normalise_email(raw)
    except ValueError as error:
        return f"refused: {error}"


@settings(max_examples=800, deadline=None)
@given(local=LOCAL, domain=DOMAIN, separator=st.sampled_from(["@", "@", "@", " @", "@@"]))
def test_every_address_comes_out_as_email_validator_says(
    local: str, domain: str, separator: str
) -> None:
    raw = local + separator + domain
    assert ours(raw) == library(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Anna.B+News@Example.COM", "anna.b+news@example.com"),
        ("a@xn--bcher-kva.de", "a@bücher.de"),
        ("a..b@example.com", "refused: An email address cannot have two periods in a row."),
        ("a@b.test", "refused: The part after the @-sign is a special-use or reserved name"
         " that cannot be used with email."),
    ],
)  # fmt: skip
def test_a_plain_address_is_normalised_and_a_bad_one_refused_in_words(
    raw: str, expected: str
) -> None:
    assert ours(raw) == expected
