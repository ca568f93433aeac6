"""Who may do what in the web console, and which passwords are refused: plain values.

Roles: `viewer` reads, `marketer` also edits marketing content, `admin` does
everything; each includes the ones before it. `sales` stands apart: a rep who sees the
leads assigned to them (the lead's `rep_email`) and nothing of the marketing side. An
admin is granted every role, `sales` included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES = ("viewer", "marketer", "sales", "admin")
# What each role is granted, itself included.
_GRANTED = {
    "viewer": frozenset({"viewer"}),
    "marketer": frozenset({"viewer", "marketer"}),
    "sales": frozenset({"sales"}),
    "admin": frozenset(ROLES),
}

MIN_PASSWORD = 12
# Argon2 costs the same for any length; the cap only keeps a request body sane.
MAX_PASSWORD = 1024
# Words that guessing tools try first, whatever digits or symbols come after them.
COMMON_WORDS = frozenset(
    {
        "password", "passwort", "motdepasse", "welcome", "bienvenue", "letmein",
        "admin", "administrator", "changeme", "qwerty", "azerty", "qwertz", "iloveyou",
        "monkey", "dragon", "football", "baseball", "sunshine", "princess", "master",
        "secret", "summer", "winter", "spring", "autumn", "nurture", "planifia",
        "marketing", "sales", "soleil", "trustno", "whatever", "starwars", "login",
    }
)  # fmt: skip
# Runs of keys or characters that make a password look long and guess in seconds
# (each three times over: "901234567890" is a run too), forwards and backwards.
_RUNS = tuple(
    run * 3
    for forward in (
        "abcdefghijklmnopqrstuvwxyz",
        "0123456789",
        "qwertyuiopasdfghjklzxcvbnm",
        "azertyuiopqsdfghjklmwxcvbn",
        "qwertzuiopasdfghjklyxcvbnm",
    )
    for run in (forward, forward[::-1])
)
_LEET = str.maketrans("013457@$!", "oieastasi")


def grants(role: str, needed: str) -> bool:
    """Does `role` open what `needed` opens?"""
    return needed in _GRANTED.get(role, frozenset())


@dataclass(frozen=True)
class Account:
    """A console user as the pages see it: no password, nothing to change."""

    id: int
    email: str
    role: str
    rep_email: str | None = None  # sales: the leads whose rep this is

    def may(self, *roles: str) -> bool:
        """Granted any of `roles` (none named: any signed-in user)."""
        return not roles or any(grants(self.role, needed) for needed in roles)

    @property
    def sees_every_lead(self) -> bool:
        return self.role != "sales"

    def sees_lead(self, rep_email: str | None) -> bool:
        """May this account see a lead whose rep is `rep_email`?"""
        if self.sees_every_lead:
            return True
        mine = (self.rep_email or "").strip().lower()
        return bool(mine) and mine == (rep_email or "").strip().lower()


def password_problem(password: str, email: str) -> str | None:
    """Why `password` is refused for the user `email`, or None: long enough, not a
    common word dressed up with digits, no run of keys, not the address itself."""
    if len(password) < MIN_PASSWORD:
        return (
            f"too short: at least {MIN_PASSWORD} characters (a few unrelated words make a good one)"
        )
    if len(password) > MAX_PASSWORD:
        return f"too long: at most {MAX_PASSWORD} characters"
    lowered = password.lower()
    if len(set(lowered)) < 5:
        return "too repetitive: use more different characters"
    # "P@ssw0rd2024!" is "password" with what people add to pass a rule.
    core = re.sub(r"[\W\d_]+$", "", lowered).translate(_LEET)
    core = re.sub(r"[\W\d_]+", "", core)
    if core in COMMON_WORDS or (len(core) >= 4 and any(core in run for run in _RUNS)):
        return "too common: it is among the first passwords guessed; choose another"
    if any(lowered in run for run in _RUNS):
        return "too common: it is a run of keys or characters; choose another"
    local, _, domain = email.lower().partition("@")
    parts = [local, *re.split(r"[.+_-]", local), domain.split(".")[0]]
    if any(len(part) >= 4 and part in lowered for part in parts):
        return "it contains your email address: choose one that does not"
    return None
