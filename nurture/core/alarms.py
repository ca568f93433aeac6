"""Alarms on the figures that need someone today: sales treating too few of the leads
they receive, and complaints crossing what mailbox providers tolerate.

An alarm is raised once when its figure crosses the line and cleared once when it
comes back: the owner gets two emails, not one per check. A figure that cannot be
read yet (too few emails, no lead due) leaves the alarm as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

RAISED = "raised"
CLEARED = "cleared"


@dataclass(frozen=True)
class Alarm:
    name: str  # also the /metrics label
    label: str  # what the figure is, in words
    threshold: float  # a ratio (0.8 is 80 %)
    low_is_bad: bool  # True: alarm under the line (treatment); False: over it (complaints)
    advice: str  # what to do, for the email


@dataclass(frozen=True)
class Reading:
    alarm: Alarm
    value: float | None  # None: not enough to judge
    detail: str  # what it was computed from ("41 of 56 promotions due in 30 days")


def crossed(reading: Reading) -> bool | None:
    """Is the figure on the wrong side of its line? None when it cannot be judged."""
    if reading.value is None:
        return None
    alarm = reading.alarm
    if alarm.low_is_bad:
        return reading.value < alarm.threshold
    return reading.value > alarm.threshold


def change(was_raised: bool, reading: Reading) -> str | None:
    """RAISED or CLEARED when the alarm's state changes, else None."""
    now_raised = crossed(reading)
    if now_raised is None or now_raised == was_raised:
        return None
    return RAISED if now_raised else CLEARED


def percent(ratio: float) -> str:
    return f"{ratio * 100:.1f} %".replace(".0 %", " %")


def message(reading: Reading, what: str) -> tuple[str, str]:
    """The subject and text of the email telling the owner."""
    alarm = reading.alarm
    value = percent(reading.value) if reading.value is not None else "unknown"
    side = "under" if alarm.low_is_bad else "over"
    line = percent(alarm.threshold)
    if what == RAISED:
        subject = f"[nurture] {alarm.label}: {value}, {side} {line}"
        body = (
            f"{alarm.label} is {value}, {side} the {line} line.\n"
            f"Computed from {reading.detail}.\n\n{alarm.advice}\n\n"
            "You will get one more email when it is back on the right side.\n"
        )
    else:
        subject = f"[nurture] {alarm.label} back to {value}"
        body = (
            f"{alarm.label} is {value} again, no longer {side} the {line} line.\n"
            f"Computed from {reading.detail}.\n"
        )
    return subject, body
