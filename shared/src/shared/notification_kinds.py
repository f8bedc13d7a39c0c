"""The one table of message kinds: who each is for, how urgent, whether it pages.

The assessor's rules take a kind's audience and urgency from here (and carry them in the
``notification.send`` payload), the notifier's templates label a page by it, and its
escalation and metrics read the urgency the payload carries. Adding a message kind is one
row here (and the kind in ``shared.events.NotificationKind``) plus its templates in
``notifier.templates``; a unit test checks the three agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import get_args

from shared.events import Audience, NotificationKind, Urgency


@dataclass(frozen=True)
class KindSpec:
    """What is decided about a kind once, wherever it is sent or counted."""

    audience: Audience
    urgency: Urgency

    @property
    def pages(self) -> bool:
        """An urgent care-team alert: sent at once to on-call and backup, acknowledged with
        its code, escalated while unacknowledged."""
        return self.audience == "care_team" and self.urgency == "urgent"


KINDS: Mapping[NotificationKind, KindSpec] = MappingProxyType(
    {
        # patient messages
        "checkin_prompt": KindSpec("patient", "routine"),
        "reassurance": KindSpec("patient", "routine"),
        "remission_congrats": KindSpec("patient", "routine"),
        "care_team_notified": KindSpec("patient", "routine"),
        "monitoring_complete": KindSpec("patient", "routine"),
        # care-team alerts
        "six_month_persistence": KindSpec("care_team", "routine"),
        "worsening": KindSpec("care_team", "urgent"),
        "recurrence": KindSpec("care_team", "routine"),
        "red_flag": KindSpec("care_team", "urgent"),
        "lost_to_follow_up": KindSpec("care_team", "routine"),
    }
)
if set(KINDS) != set(get_args(NotificationKind)):  # pragma: no cover - caught at import
    raise RuntimeError("shared.notification_kinds.KINDS must have one row per NotificationKind")

#: Messages to the patient, in table order.
PATIENT_KINDS: tuple[NotificationKind, ...] = tuple(
    k for k, spec in KINDS.items() if spec.audience == "patient"
)
#: Care-team alerts (pages), in table order.
PAGE_KINDS: tuple[NotificationKind, ...] = tuple(
    k for k, spec in KINDS.items() if spec.audience == "care_team"
)
