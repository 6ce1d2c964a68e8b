"""The command centre's re-dispatch: a leg the command centre owns goes to the department that
should do the work, with a new category if the request was filed under the wrong one.

The command centre owns a leg when the leg is its own: a job rejected twice or left without a
team, a reopened request, a suggestion, or the oversight job of a missed deadline (whose work
leg is still with the team that missed it). Re-dispatching it replaces that leg — and, for a
missed deadline, the work leg it watches — by one new leg of the chosen department, so exactly
one team owns the job again. Pure: the rule reads the stored legs and the directory and
returns a plan (or a refusal); :mod:`services.route.actions` applies it.

The new leg's id is derived from the leg it replaces, so the cause (this command leg) keys the
whole action: a retry after a crash finishes the same plan, a retry after success is answered
as a replay, and a second desk acting on the same leg gets a refusal, never a second job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from services.route import domain, legs
from services.route.models import Leg
from services.route.teams import Directory, choose_team, other_team
from shared.db import Document
from shared.kafka import effect_id
from shared.schemas import Category
from shared.topics import Department

RULE_ID = "redispatch"
RefusalCode = Literal[
    "not_command_leg", "closed", "superseded", "nothing_to_change", "stays_with_command"
]


@dataclass(frozen=True, slots=True)
class Ask:
    """What a desk asks for: a department, a category, or both; and why (required)."""

    desk: str
    reason: str
    department: Department | None = None
    category: Category | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The re-dispatch to apply: the new leg and the legs it replaces."""

    request_id: str
    source: str
    replaces: tuple[str, ...]
    new_leg_id: str
    slot: str
    cycle: int
    department: Department
    team_id: str
    category: Category
    recategorised: bool
    reason: str
    actor: str

    @property
    def event_id(self) -> str:
        """The timeline entry's id: the new leg's dispatch (shared with its job's ``ce_id``)."""
        return effect_id("dispatch", self.new_leg_id)

    def detail(self, from_department: str) -> Document:
        detail: Document = {
            "department": self.department,
            "team_id": self.team_id,
            "leg_id": self.new_leg_id,
            "from_leg": self.source,
            "from_department": from_department,
        }
        if self.recategorised:
            detail["category"] = self.category
        return detail


@dataclass(frozen=True, slots=True)
class Replay:
    """The leg was re-dispatched already (by this action): the answer is the one it got."""

    request_id: str
    new_leg_id: str


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    message: str


Decision = Plan | Replay | Refusal


def new_leg_id(source: Leg) -> str:
    return domain.leg_id(source.request_id, slot_of(source))


def slot_of(source: Leg) -> str:
    """The new leg's slot: named after the leg it replaces, so it is that leg's one successor
    (a later rejection of it re-routes within this slot, attempt 2, then the command centre)."""
    return f"redispatch:{source.leg_id}"


def decide(
    source: Leg,
    ask: Ask,
    *,
    watched: Leg | None,
    rules: domain.Rules,
    directory: Directory,
    load: Mapping[str, int],
) -> Decision:
    """The re-dispatch of ``source`` (a command leg), or why not. ``watched`` is the work leg an
    oversight leg watches (its parent), if there is one."""
    successor = new_leg_id(source)
    if source.superseded_by == successor:
        return Replay(source.request_id, successor)
    if source.department != "command":
        return Refusal("not_command_leg", "Only a leg the command centre owns is re-dispatched.")
    if source.superseded_by is not None or not source.current:
        return Refusal("superseded", "This leg was replaced by another one.")
    if source.progress in legs.TERMINAL:
        return Refusal("closed", "This leg is finished.")
    if ask.department is None and ask.category is None:
        return Refusal("nothing_to_change", "Name a department, a category, or both.")
    category = ask.category or source.job.category
    department = ask.department or _department_for(source, category, rules)
    if department == "command":
        return Refusal(
            "stays_with_command",
            f"Category {category} stays with the command centre; name a department.",
        )
    replaces = [source.leg_id]
    exclude: list[str] = []
    if watched is not None and not source.blocking and watched.open:
        replaces.append(watched.leg_id)  # the team that missed its deadline hands it over
        if watched.department == department:
            exclude.append(watched.team_id)
    district = source.job.location.district
    team = other_team(directory, department, district, load, exclude=exclude) or (
        choose_team(directory, department, district, load)
    )
    return Plan(
        request_id=source.request_id,
        source=source.leg_id,
        replaces=tuple(replaces),
        new_leg_id=successor,
        slot=slot_of(source),
        cycle=source.cycle,
        department=department,
        team_id=team.id,
        category=category,
        recategorised=category != source.job.category,
        reason=ask.reason,
        actor=f"command:{ask.desk}",
    )


def _department_for(source: Leg, category: Category, rules: domain.Rules) -> Department:
    """The first department the rules give the request under ``category``."""
    subject = domain.RoutingInput(
        category=category,
        description=source.job.description,
        special_groups=tuple(source.job.special_groups),
        district=source.job.location.district,
    )
    return domain.plan(subject, rules)[0].department


def owned(leg: Leg) -> bool:
    """Whether a stored leg is one the command centre owns and may re-dispatch."""
    return leg.department == "command" and leg.open
