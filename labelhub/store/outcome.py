"""What a change to the shadow index did."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    """One event's effect, for the answer, the log and the audit trail.

    `status` is `applied`, `duplicate` (already there), `stale` (older than
    what the index holds), `pending` (kept until its task is known) or
    `ignored`; `changed_tasks` are the tasks whose label must be derived again.
    """

    status: str
    detail: str = ""
    changed_tasks: set[int] = field(default_factory=set)
