"""Verification rules on realistic, messy input in Chinese, English and Russian."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.verify import domain
from services.verify.domain import Config, History, HistoryEntry
from shared.schemas import HelpRequest, Priority, SubmittedRequest
from shared.settings import CONFIG_DIR
from shared.topics import Topic

pytestmark = pytest.mark.unit

CONFIG: Config = domain.load_config(CONFIG_DIR)
T0 = datetime(2022, 1, 9, 14, 5, tzinfo=UTC)


def submitted(
    request_id: str = "r-1",
    *,
    at: datetime = T0,
    phone: str = "138 0013 8000",
    category: str = "medical",
    description: str = "需要胰岛素，家里老人独居",
    location: dict[str, Any] | None = None,
    special_groups: list[str] | None = None,
    language: str = "zh",
) -> SubmittedRequest:
    body: dict[str, Any] = {
        "category": category,
        "description": description,
        "contact": {"name": "王女士", "phone": phone},
        "special_groups": special_groups if special_groups is not None else [],
        "language": language,
    }
    body["location"] = (
        location
        if location is not None
        else {"district": "jinshui", "address": "金水路 1 号", "lat": 34.77, "lon": 113.66}
    )
    return SubmittedRequest.model_validate(
        {
            "request_id": request_id,
            "submitted_at": at,
            "channel": "web",
            "tracking_token_hash": "h",
            "request": body,
        }
    )


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("138 0013 8000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),  # full-width digits
        ("１３８－００１３－８０００", "+8613800138000"),  # full-width dashes too
        ("+86 138-0013-8000", "+8613800138000"),
        ("＋８６　１３９ １２３４ ５６７８", "+8613912345678"),
        ("0086 138 0013 8000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("86 13800138000", "+8613800138000"),
        ("(+86) 138.0013.8000", "+8613800138000"),
        ("(0371) 6788 1234", "+8637167881234"),
        ("0371-67881234", "+8637167881234"),
        ("0371 6788 1234", "+8637167881234"),
        ("+86 371 6788 1234", "+8637167881234"),
        ("6788 1234", "+8637167881234"),  # 8 digits without area code: a Zhengzhou landline
        ("(010) 6552 9988", "+861065529988"),  # a Beijing landline is still Chinese
    ],
)
def test_phone_numbers_in_every_shape_become_e164(raw: str, e164: str) -> None:
    check = domain.normalise_phone(raw, CONFIG.jurisdiction)
    assert check.e164 == e164
    assert check.problem is None


@pytest.mark.parametrize(
    "raw", ["12345", "110", "1380013800", "138001380001", "电话号码", "abc-def", "+86 0000 0000"]
)
def test_numbers_that_cannot_be_called_are_invalid(raw: str) -> None:
    assert domain.normalise_phone(raw, CONFIG.jurisdiction) == domain.PhoneCheck(
        None, "invalid_phone"
    )


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+1 650 253 0000", "+16502530000"), ("+7 (912) 345-67-89", "+79123456789")],
)
def test_valid_foreign_numbers_are_flagged(raw: str, e164: str) -> None:
    assert domain.normalise_phone(raw, CONFIG.jurisdiction) == domain.PhoneCheck(
        e164, "foreign_phone"
    )


# --------------------------------------------------------------------------- districts


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("金水区", "jinshui"),
        ("金水", "jinshui"),
        ("郑州市金水区", "jinshui"),
        ("jinshui", "jinshui"),
        ("Jinshui District", "jinshui"),
        ("JINSHUI  district", "jinshui"),
        ("Jīnshuǐ Qū", "jinshui"),
        ("郑东新区", "zhengdong"),
        ("郑东", "zhengdong"),
        ("Zhengdong New Area", "zhengdong"),
        ("zhengdong", "zhengdong"),
        ("高新区", "gaoxin"),
        ("高新技术产业开发区", "gaoxin"),
        ("High-tech Zone", "gaoxin"),
        ("gaoxin", "gaoxin"),
        ("航空港区", "hangkonggang"),
        ("航空港经济综合实验区", "hangkonggang"),
        ("hangkonggang", "hangkonggang"),
        ("Airport Economy Zone", "hangkonggang"),
        ("二七区", "erqi"),
        ("erqi", "erqi"),
        ("管城区", "guancheng"),
        ("管城回族区", "guancheng"),
        ("经开区", "jingkai"),
        ("中牟县", "zhongmu"),
        ("Xinmi City", "xinmi"),
        ("荥阳", "xingyang"),
    ],
)
def test_district_names_in_chinese_pinyin_and_english(name: str, code: str) -> None:
    found = domain.match_district(name, CONFIG.jurisdiction)
    assert found is not None
    assert found.code == code


@pytest.mark.parametrize("name", ["朝阳区", "Chaoyang District", "浦东新区", "区", "somewhere"])
def test_places_of_other_cities_are_not_districts(name: str) -> None:
    assert domain.match_district(name, CONFIG.jurisdiction) is None


def test_the_jurisdiction_file_lists_the_sixteen_districts_of_zhengzhou() -> None:
    codes = {d.code for d in CONFIG.jurisdiction.districts}
    assert len(codes) == 16
    for district in CONFIG.jurisdiction.districts:
        assert CONFIG.jurisdiction.contains(district.lat, district.lon), district.code


@pytest.mark.parametrize(
    ("lat", "lon", "code"),
    [
        (34.80, 113.66, "jinshui"),
        (34.77, 113.74, "zhengdong"),
        (34.52, 113.85, "hangkonggang"),
        (34.45, 113.03, "dengfeng"),
    ],
)
def test_coordinates_alone_place_a_request_in_the_nearest_district(
    lat: float, lon: float, code: str
) -> None:
    check = domain.check_location(
        submitted(location={"lat": lat, "lon": lon}).request.location, CONFIG
    )
    assert check == domain.PlaceCheck(code)


def test_coordinates_outside_the_city_need_review() -> None:
    beijing = submitted(location={"lat": 39.90, "lon": 116.40}).request.location
    assert domain.check_location(beijing, CONFIG).problems == ("outside_jurisdiction",)


def test_unknown_district_name_needs_review_even_with_coordinates() -> None:
    place = submitted(location={"district": "朝阳区", "lat": 34.80, "lon": 113.66})
    check = domain.check_location(place.request.location, CONFIG)
    assert check.problems == ("unknown_district",)
    assert check.district == "jinshui"  # a hint for the verifier


def test_district_and_far_away_coordinates_contradict() -> None:
    # "金水区" but the point is in Dengfeng, ~60 km west.
    place = submitted(location={"district": "金水区", "lat": 34.45, "lon": 113.05})
    check = domain.check_location(place.request.location, CONFIG)
    assert check.problems == ("contradictory_location",)


def test_district_and_nearby_coordinates_agree_even_across_a_border() -> None:
    # The brief's example: jinshui with a point nearer Guancheng's centre, 3 km from Jinshui's.
    check = domain.check_location(submitted().request.location, CONFIG)
    assert check == domain.PlaceCheck("jinshui")


# --------------------------------------------------------------------------- completeness


@pytest.mark.parametrize("category", ["medical", "food_supply", "transport"])
def test_field_work_needs_a_place(category: str) -> None:
    request = submitted(category=category, location={}).request
    assert domain.missing_fields(request, CONFIG.rules) == ["location"]


def test_a_suggestion_needs_no_place() -> None:
    request = submitted(category="suggestion", description="建议增加核酸检测点", location={})
    assert domain.missing_fields(request.request, CONFIG.rules) == []


def test_an_address_counts_as_a_place() -> None:
    request = submitted(category="food_supply", location={"address": "金水路 1 号"}).request
    assert domain.missing_fields(request, CONFIG.rules) == []


# --------------------------------------------------------------------------- abuse


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("。。。！！！", ["empty_description"]),
        ("?!... --- ***", ["empty_description"]),
        ("啊啊啊啊啊", ["repeated_character"]),
        ("aaaaaaaa", ["repeated_character"]),
        ("Ааааааа", ["repeated_character"]),
        ("1111", ["repeated_character"]),
        ("救命", []),
        ("help", []),
        ("急", []),  # one character is short, not abuse
        ("Помогите, нет еды", []),
    ],
)
def test_descriptions_that_say_nothing_are_rejected(text: str, problems: list[str]) -> None:
    assert domain.description_problems(text, CONFIG.rules) == problems


def test_a_phone_flooding_the_platform_is_rejected() -> None:
    limit = CONFIG.rules.flood_max_requests
    earlier = [HistoryEntry(f"old-{i}", T0 - timedelta(minutes=i + 1)) for i in range(limit)]
    assert domain.is_flood(earlier, request_id="new", at=T0, rules=CONFIG.rules)
    assert not domain.is_flood(earlier[:-1], request_id="new", at=T0, rules=CONFIG.rules)
    stale = [HistoryEntry(e.request_id, e.submitted_at - timedelta(days=1)) for e in earlier]
    assert not domain.is_flood(stale, request_id="new", at=T0, rules=CONFIG.rules)


def test_the_flood_rule_ignores_the_request_itself_on_redelivery() -> None:
    limit = CONFIG.rules.flood_max_requests
    earlier = [HistoryEntry(f"old-{i}", T0 - timedelta(minutes=i + 1)) for i in range(limit - 1)]
    with_self = [*earlier, HistoryEntry("new", T0)]
    assert not domain.is_flood(with_self, request_id="new", at=T0, rules=CONFIG.rules)


# --------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("需要胰岛素，家里老人独居", "需要胰岛素,家里老人独居。"),
        ("需要胰岛素，家里老人独居", "家里老人独居，需要胰岛素！"),
        ("需要胰岛素，家里老人独居", "需要胰岛素，家里老人独居，请尽快联系"),
        (
            "My mother needs insulin, she lives alone in Jinshui",
            "Insulin needed for my mother who lives alone in Jinshui!",
        ),
        ("Моей маме нужен инсулин, она живёт одна", "Нужен инсулин маме, она живет одна!"),
    ],
)
def test_the_same_request_in_other_words_is_similar(a: str, b: str) -> None:
    n = domain.normalise_description
    assert domain.similarity(n(a), n(b)) >= CONFIG.rules.duplicate_threshold


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("需要胰岛素，家里老人独居", "小区封控，需要买菜"),
        ("My mother needs insulin, she lives alone", "Need food delivery for my mother"),
        ("Need a pass to drive to the hospital", "Need a pass to drive to my office"),
        ("Моей маме нужен инсулин, она живёт одна", "Нужна доставка продуктов, нет еды"),
    ],
)
def test_different_needs_of_one_person_are_not_similar(a: str, b: str) -> None:
    n = domain.normalise_description
    assert domain.similarity(n(a), n(b)) < CONFIG.rules.duplicate_threshold


def _entry(request_id: str, at: datetime, text: str) -> HistoryEntry:
    return HistoryEntry(request_id, at, domain.normalise_description(text))


def test_a_repeat_within_the_window_is_a_duplicate_of_the_earliest() -> None:
    history = [
        _entry("second", T0 - timedelta(hours=1), "需要胰岛素，家里老人独居！"),
        _entry("first", T0 - timedelta(hours=2), "需要胰岛素，家里老人独居"),
    ]
    text = domain.normalise_description("需要胰岛素。家里老人独居")
    found = domain.find_duplicate(
        text, request_id="third", at=T0, history=history, rules=CONFIG.rules
    )
    assert found == "first"


def test_a_repeat_after_the_window_is_a_new_request() -> None:
    history = [_entry("first", T0 - timedelta(hours=25), "需要胰岛素，家里老人独居")]
    text = domain.normalise_description("需要胰岛素，家里老人独居")
    assert (
        domain.find_duplicate(text, request_id="x", at=T0, history=history, rules=CONFIG.rules)
        is None
    )


def test_a_request_is_never_its_own_duplicate_nor_one_of_a_later_request() -> None:
    text = domain.normalise_description("需要胰岛素，家里老人独居")
    history = [
        HistoryEntry("me", T0, text),
        HistoryEntry("later", T0 + timedelta(minutes=5), text),
    ]
    assert (
        domain.find_duplicate(text, request_id="me", at=T0, history=history, rules=CONFIG.rules)
        is None
    )


# --------------------------------------------------------------------------- triage


def _triage(description: str, category: str = "medical", groups: list[str] | None = None) -> Any:
    request = HelpRequest.model_validate(
        {
            "category": category,
            "description": description,
            "contact": {"phone": "13800138000"},
            "special_groups": groups or [],
        }
    )
    return domain.triage(request, CONFIG.triage)


@pytest.mark.parametrize(
    ("description", "category", "reason"),
    [
        ("羊水破了，需要车去医院", "transport", "keyword:labour"),
        ("老婆临产，小区封控出不去", "transport", "keyword:labour"),
        ("孕妇即将分娩，需要救护车", "medical", "keyword:labour"),
        ("My wife is in labour, contractions every five minutes", "transport", "keyword:labour"),
        ("У жены начались схватки, нужна машина в роддом", "transport", "keyword:labour"),
        ("Роды начались, помогите", "medical", "keyword:labour"),
        ("父亲明天要透析，需要通行证", "transport", "keyword:dialysis"),
        ("Father needs dialysis tomorrow, no transport", "transport", "keyword:dialysis"),
        ("Отцу нужен диализ завтра утром", "transport", "keyword:dialysis"),
        ("老人胸口疼，喘不上气", "medical", "keyword:chest_pain"),
        ("胸痛两个小时了", "medical", "keyword:chest_pain"),
        ("My father has chest pain", "medical", "keyword:chest_pain"),
        ("У отца сильная боль в груди", "medical", "keyword:chest_pain"),
        ("婴儿发烧39度，需要就医", "medical", "keyword:infant_fever"),
        ("宝宝高烧不退", "medical", "keyword:infant_fever"),
        ("Our baby has a fever of 39", "medical", "keyword:infant_fever"),
        ("Температура у младенца 39, что делать", "medical", "keyword:infant_fever"),
        ("Grandmother is unconscious", "medical", "keyword:unconscious"),
        ("Бабушка без сознания", "medical", "keyword:unconscious"),
        ("老人晕倒了", "medical", "keyword:unconscious"),
        ("Heavy bleeding after a fall", "medical", "keyword:heavy_bleeding"),
        ("他说不想活了", "epidemic_policy", "keyword:suicide"),
        ("I want to kill myself", "suggestion", "keyword:suicide"),
    ],
)
def test_threats_to_life_are_p1_in_three_languages(
    description: str, category: str, reason: str
) -> None:
    result = _triage(description, category)
    assert result.priority == "P1"
    assert reason in result.reasons
    assert result.green_channel


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("胰岛素快用完了", "keyword:insulin_running_out"),
        ("My insulin is running out", "keyword:insulin_running_out"),
        ("Заканчивается инсулин у бабушки", "keyword:insulin_running_out"),
        ("药快吃完了，买不到", "keyword:medicine_running_out"),
        ("Закончились лекарства от давления", "keyword:medicine_running_out"),
    ],
)
def test_medicine_running_out_is_p2(description: str, reason: str) -> None:
    result = _triage(description)
    assert result.priority == "P2"
    assert reason in result.reasons


def test_the_briefs_example_is_a_green_channel_p2_with_its_reasons() -> None:
    result = _triage("需要胰岛素，家里老人独居", groups=["elderly", "chronic_illness"])
    assert result.priority == "P2"
    assert result.green_channel
    assert {
        "category:medical",
        "special_group:elderly",
        "special_group:chronic_illness",
        "special_group:living_alone",
        "keyword:insulin_running_out",
    } <= set(result.reasons)


def test_words_reveal_a_special_group_the_form_did_not_tick() -> None:
    # Seed article: 孕妇、老人等特殊人群核酸检测绿色通道.
    result = _triage("孕妇需要做核酸检测，健康码变黄", "health_code")
    assert result.special_groups == ("pregnant",)
    assert result.priority == "P2"
    assert "special_group:pregnant" in result.reasons


def test_no_food_is_p2_only_for_a_special_group() -> None:
    assert _triage("断粮了，家里没吃的", "food_supply").priority == "P3"
    alone = _triage("断粮了，家里只有独居老人", "food_supply")
    assert alone.priority == "P2"
    assert "keyword:no_food" in alone.reasons
    russian = _triage("Нет еды, бабушка пенсионер живет одна", "food_supply")
    assert russian.priority == "P2"


@pytest.mark.parametrize(
    ("description", "category", "priority"),
    [
        ("小区封控，需要买菜送菜", "food_supply", "P3"),
        ("需要办理通行证去上班", "transport", "P3"),
        ("健康码显示异常，怎么处理", "health_code", "P3"),
        ("孩子网课需要平板电脑", "education", "P3"),
        ("隔离政策是什么", "epidemic_policy", "P4"),
        ("建议增加核酸检测点", "suggestion", "P4"),
        ("Suggest more testing points near Zhengzhou East station", "suggestion", "P4"),
    ],
)
def test_ordinary_needs_and_questions(description: str, category: str, priority: str) -> None:
    result = _triage(description, category)
    assert result.priority == priority
    assert not result.green_channel
    assert result.reasons == (f"category:{category}",)


def test_latin_and_cyrillic_words_match_at_word_starts_with_any_ending() -> None:
    assert _triage("Need a laboratory test result", "health_code").priority == "P3"
    assert _triage("У дедушки признаки инсульта", "medical").priority == "P1"


# --------------------------------------------------------------------------- the decision


def test_a_clean_request_is_verified_with_normalised_phone_and_district() -> None:
    decision = domain.decide(submitted(phone="+86 138-0013-8000"), CONFIG)
    assert decision.outcome == "verified"
    assert decision.phone == "+8613800138000"
    assert decision.district == "jinshui"
    assert decision.priority == "P2"
    event = domain.verified_event(submitted(phone="+86 138-0013-8000"), decision, at=T0)
    assert event.contact.phone == "+8613800138000"
    assert event.location.district == "jinshui"
    assert "living_alone" in event.special_groups


def test_an_invalid_phone_is_rejected_without_a_contact() -> None:
    request = submitted(phone="12345")
    decision = domain.decide(request, CONFIG)
    assert (decision.outcome, decision.problems) == ("rejected", ("invalid_phone",))
    event = domain.rejected_event(request, decision, at=T0)
    assert event.reasons == ["invalid_phone"]
    assert event.contact is None
    assert event.language == "zh"


def test_reasons_to_reject_come_together() -> None:
    decision = domain.decide(submitted(phone="12345", description="！！！"), CONFIG)
    assert decision.problems == ("invalid_phone", "empty_description")


def test_a_foreign_phone_goes_to_review_with_its_contact() -> None:
    request = submitted(phone="+7 912 345 67 89", description="Нужен инсулин", language="ru")
    decision = domain.decide(request, CONFIG)
    assert decision.outcome == "needs_review"
    assert decision.problems == ("foreign_phone",)
    review = domain.review_event(request, decision, at=T0)
    assert review.contact is not None
    assert review.contact.phone == "+79123456789"
    assert review.reasons[0] == "foreign_phone"
    assert review.language == "ru"


@pytest.mark.parametrize(
    ("location", "problems"),
    [
        ({"district": "Chaoyang District"}, ("unknown_district",)),
        ({"lat": 31.23, "lon": 121.47}, ("outside_jurisdiction",)),
        ({"district": "金水", "lat": 34.45, "lon": 113.05}, ("contradictory_location",)),
        ({}, ("incomplete:location",)),
    ],
)
def test_doubtful_places_go_to_review(location: dict[str, Any], problems: tuple[str]) -> None:
    decision = domain.decide(submitted(location=location), CONFIG)
    assert decision.outcome == "needs_review"
    assert decision.problems == problems


def test_a_flood_is_rejected() -> None:
    limit = CONFIG.rules.flood_max_requests
    activity = tuple(HistoryEntry(f"r{i}", T0 - timedelta(seconds=i + 1)) for i in range(limit))
    decision = domain.decide(submitted(), CONFIG, History(any_category=activity))
    assert (decision.outcome, decision.problems) == ("rejected", ("flood",))


def test_a_repeat_is_a_duplicate_of_the_original() -> None:
    earlier = _entry("original", T0 - timedelta(minutes=30), "需要胰岛素，家里老人独居")
    decision = domain.decide(
        submitted(phone="１３８００１３８０００", description="需要胰岛素!家里老人独居"),
        CONFIG,
        History(same_category=(earlier,), any_category=(earlier,)),
    )
    assert decision.outcome == "duplicate"
    assert decision.duplicate_of == "original"
    event = domain.rejected_event(submitted(), decision, at=T0)
    assert (event.reasons, event.duplicate_of) == (["duplicate"], "original")
    assert not domain.remembered_for_duplicates(decision)


def test_a_verifier_corrects_phone_district_and_priority() -> None:
    request = submitted(phone="12345", location={"district": "somewhere"})
    automatic = domain.decide(request, CONFIG)
    fixed = domain.apply_corrections(
        request,
        automatic,
        domain.Corrections(phone="(0371) 6788 1234", district="郑东新区", priority="P1"),
        CONFIG,
    )
    assert fixed.problems == ()
    assert fixed.decision.phone == "+8637167881234"
    assert fixed.decision.district == "zhengdong"
    assert fixed.decision.priority == "P1"
    assert fixed.decision.green_channel
    assert {"corrected:phone", "corrected:district", "corrected:priority"} <= set(
        fixed.decision.reasons
    )


def test_a_verifier_cannot_verify_with_an_unusable_phone() -> None:
    request = submitted(phone="12345")
    fixed = domain.apply_corrections(
        request, domain.decide(request, CONFIG), domain.Corrections(district="金水"), CONFIG
    )
    assert fixed.problems == ("invalid_phone",)


# --------------------------------------------------------------------------- configuration


def test_configuration_errors_are_caught_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "triage.toml"
    bad.write_text(
        (CONFIG_DIR / "triage.toml")
        .read_text(encoding="utf-8")
        .replace('medical = "P3"', 'medical = "P9"', 1),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="P9"):
        domain.load_triage(bad)


def test_another_city_replaces_the_jurisdiction_file(tmp_path: Path) -> None:
    city = tmp_path / "jurisdiction.toml"
    city.write_text(
        """
name = "Testville"
time_zone = "Asia/Shanghai"
phone_region = "CN"
country_code = 86
area_code = "10"
local_number_digits = 8
suffixes = ["区"]
[bbox]
lat_min = 39.6
lat_max = 40.2
lon_min = 116.0
lon_max = 116.8
[[districts]]
code = "chaoyang"
name_zh = "朝阳区"
name_en = "Chaoyang District"
lat = 39.92
lon = 116.44
""",
        encoding="utf-8",
    )
    other = domain.load_jurisdiction(city)
    found = domain.match_district("朝阳", other)
    assert found is not None
    assert found.code == "chaoyang"
    assert domain.normalise_phone("6552 9988", other).e164 == "+861065529988"


# --------------------------------------------------------------------------- verified lane


def _decision(priority: Priority, *, green_channel: bool = False) -> domain.Decision:
    return domain.Decision(
        outcome="verified",
        priority=priority,
        green_channel=green_channel,
        phone="+8613800138000",
        district="jinshui",
    )


@pytest.mark.parametrize(
    ("priority", "green_channel", "lane"),
    [
        ("P1", False, Topic.VERIFIED_PRIORITY),
        ("P2", False, Topic.VERIFIED_PRIORITY),
        ("P3", False, Topic.VERIFIED),
        ("P4", False, Topic.VERIFIED),
        ("P3", True, Topic.VERIFIED_PRIORITY),  # a green-channel group never waits
        ("P4", True, Topic.VERIFIED_PRIORITY),
    ],
)
def test_urgent_verified_requests_take_the_priority_lane(
    priority: Priority, green_channel: bool, lane: Topic
) -> None:
    assert domain.verified_lane(_decision(priority, green_channel=green_channel)) is lane


def test_the_lane_follows_the_triage_of_the_request() -> None:
    labour = domain.decide(
        submitted(description="У жены схватки, отошли воды, нужна машина", language="ru"), CONFIG
    )
    groceries = domain.decide(
        submitted(category="food_supply", description="小区封控，需要买菜，3号楼"), CONFIG
    )
    assert (labour.outcome, labour.priority) == ("verified", "P1")
    assert domain.verified_lane(labour) is Topic.VERIFIED_PRIORITY
    assert (groceries.outcome, groceries.priority, groceries.green_channel) == (
        "verified",
        "P3",
        False,
    )
    assert domain.verified_lane(groceries) is Topic.VERIFIED


def test_a_verifier_raising_the_priority_moves_the_request_to_the_priority_lane() -> None:
    request = submitted(category="food_supply", description="小区封控，需要买菜，3号楼")
    ordinary = domain.decide(request, CONFIG)
    corrected = domain.apply_corrections(
        request, ordinary, domain.Corrections(priority="P2"), CONFIG
    )
    assert domain.verified_lane(ordinary) is Topic.VERIFIED
    assert domain.verified_lane(corrected.decision) is Topic.VERIFIED_PRIORITY
