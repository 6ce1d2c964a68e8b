"""Routing rules: the rule table, keyword overrides in three languages, several legs, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.route import domain
from services.route.domain import RoutingInput
from shared.schemas import Priority
from shared.settings import CONFIG_DIR
from tests.support.services import service_levels_file

pytestmark = pytest.mark.unit

RULES = domain.load_rules(CONFIG_DIR / "routing.toml")
LEVELS = domain.load_service_levels(CONFIG_DIR / "service_levels.toml")


def route(
    category: str, description: str, groups: tuple[str, ...] = (), district: str | None = None
) -> list[tuple[str, str]]:
    subject = RoutingInput(category, description, groups, district)
    return [(leg.department, leg.rule_id) for leg in domain.plan(subject, RULES)]


@pytest.mark.parametrize(
    ("category", "department"),
    [
        ("epidemic_policy", "community"),
        ("transport", "police"),
        ("medical", "medical"),
        ("education", "community"),
        ("food_supply", "community"),
        ("health_code", "medical"),
        ("suggestion", "command"),
    ],
)
def test_every_category_has_its_default_department(category: str, department: str) -> None:
    assert route(category, "请帮忙") == [(department, f"default:{category}")]


@pytest.mark.parametrize(
    "description",
    [
        "家里没菜了，孩子发烧39度",
        "No food left and my son has a fever",
        "Нет еды, у ребёнка температура",
    ],
)
def test_food_request_with_fever_goes_to_medical(description: str) -> None:
    assert route("food_supply", description) == [("medical", "food-fever-to-medical")]


@pytest.mark.parametrize(
    "description",
    [
        "我老婆宫缩了，家里也没吃的",
        "My wife is in labour and we have no food",
        "У жены схватки, нет продуктов",
    ],
)
def test_food_request_with_labour_pains_goes_to_medical(description: str) -> None:
    assert route("food_supply", description, ("pregnant",)) == [
        ("medical", "food-labour-to-medical")
    ]


@pytest.mark.parametrize(
    "description",
    ["需要救护车送医院", "We need an AMBULANCE to the hospital", "Нужна скорая помощь в больницу"],
)
def test_transport_request_for_an_ambulance_goes_to_medical(description: str) -> None:
    assert route("transport", description) == [("medical", "transport-ambulance-to-medical")]


def test_transport_without_ambulance_stays_with_police() -> None:
    assert route("transport", "需要通行证去上班") == [("police", "default:transport")]


@pytest.mark.parametrize(
    "description",
    [
        "老人独居，家里没有吃的，胰岛素也快用完了",
        "Elderly man alone, no food, insulin running out",
        "Пожилой живёт один, нет еды и лекарств",
    ],
)
def test_food_and_medicine_make_two_legs(description: str) -> None:
    assert route("food_supply", description, ("elderly", "living_alone")) == [
        ("community", "default:food_supply"),
        ("medical", "food-medicine-also-medical"),
    ]


def test_the_brief_example_stays_one_medical_leg() -> None:
    assert route("medical", "需要胰岛素，家里老人独居", ("elderly", "chronic_illness")) == [
        ("medical", "default:medical")
    ]


def test_special_group_condition_limits_a_rule() -> None:
    without = route("transport", "需要去医院透析")
    with_group = route("transport", "需要去医院透析", ("chronic_illness",))
    assert without == [("police", "default:transport")]
    assert with_group == [
        ("police", "default:transport"),
        ("medical", "dialysis-chemo-also-medical"),
    ]


def table(**extra: Any) -> domain.Rules:
    data: dict[str, Any] = {
        "version": "t1",
        "defaults": {"food_supply": "community", "transport": "police"},
        "rules": [],
    }
    data.update(extra)
    return domain.parse_rules(data)


def test_district_condition_and_first_replace_rule_wins() -> None:
    rules = table(
        rules=[
            {
                "id": "airport",
                "mode": "replace",
                "districts": ["hangkonggang"],
                "departments": ["command"],
            },
            {
                "id": "later",
                "mode": "replace",
                "categories": ["transport"],
                "departments": ["medical"],
            },
        ]
    )
    at_airport = domain.plan(RoutingInput("transport", "x", (), "hangkonggang"), rules)
    elsewhere = domain.plan(RoutingInput("transport", "x", (), "jinshui"), rules)
    assert [(p.department, p.rule_id) for p in at_airport] == [("command", "airport")]
    assert [(p.department, p.rule_id) for p in elsewhere] == [("medical", "later")]


def test_add_rule_never_duplicates_a_department() -> None:
    rules = table(rules=[{"id": "again", "mode": "add", "departments": ["community", "medical"]}])
    legs = domain.plan(RoutingInput("food_supply", "x"), rules)
    assert [(p.department, p.rule_id) for p in legs] == [
        ("community", "default:food_supply"),
        ("medical", "again"),
    ]


@pytest.mark.parametrize(
    "broken",
    [
        {"rules": [{"id": "a", "departments": ["fire"]}]},
        {
            "rules": [
                {"id": "a", "departments": ["medical"]},
                {"id": "a", "departments": ["police"]},
            ]
        },
        {"rules": [{"id": "a", "mode": "sometimes", "departments": ["medical"]}]},
        {"rules": [{"id": "a", "categories": ["pizza"], "departments": ["medical"]}]},
        {"defaults": {"food_supply": "kitchen"}},
    ],
)
def test_bad_rule_tables_are_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"rules|defaults"):
        table(**broken)


@pytest.mark.parametrize(
    ("priority", "acknowledge", "resolve"),
    [
        ("P1", timedelta(minutes=15), timedelta(hours=2)),
        ("P2", timedelta(hours=1), timedelta(hours=24)),
        ("P3", timedelta(hours=4), timedelta(hours=72)),
        ("P4", timedelta(hours=24), timedelta(days=7)),
    ],
)
def test_deadlines_follow_the_priority(
    priority: Priority, acknowledge: timedelta, resolve: timedelta
) -> None:
    at = datetime(2026, 1, 9, 14, 0, tzinfo=UTC)
    assert domain.deadlines(priority, LEVELS, at) == (at + acknowledge, at + resolve)


def test_service_levels_take_fractional_minutes_and_seconds(tmp_path: Path) -> None:
    path = service_levels_file(
        tmp_path / "levels.toml", acknowledge_minutes=0.02, resolve_seconds=9
    )
    levels = domain.load_service_levels(path)
    assert levels["P1"].acknowledge == timedelta(seconds=1.2)
    assert levels["P4"].resolve == timedelta(seconds=9)


def test_dry_run_comparison_lists_only_changed_requests() -> None:
    candidate = domain.parse_rules(
        {
            "version": "next",
            "defaults": {**RULES.defaults, "education": "command"},
            "rules": [],
        }
    )
    requests = [
        ("r-edu", RoutingInput("education", "网课没有电脑")),
        ("r-food", RoutingInput("food_supply", "没有吃的")),
        ("r-fever", RoutingInput("food_supply", "孩子发烧")),
    ]
    compared, differences = domain.compare(RULES, candidate, requests)
    assert compared == 3
    assert [d.request_id for d in differences] == ["r-edu", "r-fever"]
    line = domain.describe(differences[1])
    assert "r-fever  food_supply  medical -> community" in line
    assert "food-fever-to-medical -> default:food_supply" in line
