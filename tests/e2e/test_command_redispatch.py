"""The command centre's re-dispatch on the real broker and database: a request filed under the
wrong category is rejected twice and lands with the command centre; the centre re-categorises
it over route's API, the job goes out once on the right department's topic with the new
category, the reason is on the request's timeline and the citizen gets an SMS naming the new
department; a retried call is a replay. The department then reports through its board's API,
which publishes on help.status like any departmental system."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from shared.topics import Topic
from tests.support.journey import (
    WRONG_CATEGORY,
    everything_about,
    jobs,
    report,
    submit,
    values_for,
)
from tests.support.kafka import read_topic, wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

COMMAND_KEY = "command-desk-key-for-tests-only"
BOARD_KEY = "medical-board-key-for-tests-only"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    return {
        "ROUTE_COMMAND_KEYS": json.dumps({"desk-1": digest(COMMAND_KEY)}),
        "ROUTE_BOARD_KEYS": json.dumps({"medical": digest(BOARD_KEY)}),
    }


async def test_the_command_centre_recategorises_a_leg_it_owns(
    services: ServiceSet, kafka_bootstrap: str, gateway: FakeGateway
) -> None:
    receipt = await submit(services, WRONG_CATEGORY)
    request_id, token = receipt["request_id"], receipt["tracking_token"]
    [first] = await jobs(services, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 1)
    await report(services, kafka_bootstrap, first, "rejected", note="not education")
    second = (await jobs(services, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 2))[1]
    await report(services, kafka_bootstrap, second, "rejected", note="not ours either")
    [owned] = await jobs(services, kafka_bootstrap, Topic.DISPATCH_COMMAND, request_id, 1)

    route = services.url("route")
    headers = {"X-Command-Key": COMMAND_KEY}
    async with httpx.AsyncClient(base_url=route, headers=headers) as http:

        async def listed() -> dict[str, Any] | None:
            body = (await http.get("/v1/command/overview")).json()
            return next((i for i in body["owned"] if i["leg_id"] == owned["leg_id"]), None)

        item = await wait_until(listed, timeout=30)
        assert (item["kind"], item["category"]) == ("owned", "education")
        ask = {"category": "medical", "reason": "a sick child: medical, not education"}
        path = f"/v1/command/legs/{owned['leg_id']}/redispatch"
        assert (await http.post(path, json={"reason": "?"})).status_code == 422
        done = await http.post(path, json=ask)
        assert done.status_code == 200, done.text
        answer = done.json()
        assert (answer["department"], answer["category"], answer["replayed"]) == (
            "medical",
            "medical",
            False,
        )
        again = await http.post(path, json={**ask, "category": "transport"})
        assert again.status_code == 200
        assert again.json()["replayed"] is True
        assert again.json()["leg_id"] == answer["leg_id"]
        refused = await http.post(path, json=ask, headers={"X-Command-Key": "not-a-command-key"})
        assert refused.status_code == 401
        overview = (await http.get("/v1/command/overview")).json()
        assert owned["leg_id"] not in [i["leg_id"] for i in overview["owned"]]

    [job] = await jobs(services, kafka_bootstrap, Topic.DISPATCH_MEDICAL, request_id, 1)
    assert (job["leg_id"], job["category"], job["rule_id"]) == (
        answer["leg_id"],
        "medical",
        "redispatch",
    )
    assert job["reason"] == ask["reason"]

    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        view = (await http.get(f"/v1/requests/{request_id}", params={"token": token})).json()
    assert view["category"] == "medical"
    [entry] = [e for e in view["timeline"] if e.get("actor") == "command:desk-1"]
    assert entry["reason"] == ask["reason"]
    assert entry["detail"]["department"] == "medical"
    assert entry["detail"]["from_department"] == "command"

    async def told() -> list[dict[str, Any]] | None:
        sent = [
            m
            for m in gateway.snapshot(to="+8613700375678")["messages"]
            if "medical team" in m["text"] and request_id in m["text"]
        ]
        return sent or None

    assert len(await wait_until(told, timeout=30)) == 1

    # The medical team acknowledges on its board's API: a report on help.status, applied.
    async with httpx.AsyncClient(base_url=route, headers={"X-Board-Key": BOARD_KEY}) as http:
        board = (await http.get("/v1/board/medical/jobs")).json()
        assert job["leg_id"] in [i["leg_id"] for i in board["items"]]
        assert (await http.get("/v1/board/police/jobs")).status_code == 401
        path = f"/v1/board/medical/legs/{job['leg_id']}/report"
        assert (await http.post(path, json={"status": "rejected"})).status_code == 422
        sent = await http.post(path, json={"status": "acknowledged", "action_id": "a-1"})
        assert sent.status_code == 202, sent.text
    records = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.STATUS.value,
        timeout=20.0,
        until=lambda rs: any(e.get("actor") == "board:medical" for e in values_for(rs, request_id)),
    )
    [published] = [e for e in values_for(records, request_id) if e.get("actor") == "board:medical"]
    assert (published["status"], published["leg_id"], published["department"]) == (
        "acknowledged",
        job["leg_id"],
        "medical",
    )
    async with httpx.AsyncClient(base_url=route, headers={"X-Board-Key": BOARD_KEY}) as http:

        async def acknowledged() -> bool:
            items = (await http.get("/v1/board/medical/jobs")).json()["items"]
            mine_ = [i for i in items if i["leg_id"] == job["leg_id"]]
            return bool(mine_) and mine_[0]["progress"] == "acknowledged"

        await wait_until(acknowledged, timeout=30)

    medical = await everything_about(services, kafka_bootstrap, Topic.DISPATCH_MEDICAL, request_id)
    assert len(medical) == 1, "the re-dispatched job went out once"
