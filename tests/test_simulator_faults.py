"""Injected faults, set over the control API and felt by a client over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from salesiq_simulator import Simulator
from tests.support.simulator import REFERENCE_SCOPES, auth, connect, refresh


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(seed=11, life=False)
    simulator.add_portal("zylker", dialect="v2", dc="sim", operators=3, open_chats=3)
    simulator.add_portal("acme-ref", dialect="reference", dc="sim", operators=3, open_chats=3)
    simulator.add_portal("eurocorp", dialect="v2", dc="sim-eu", operators=3, open_chats=3)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def token(sim: Simulator) -> str:
    return connect(sim, as_user="admin@zylker.example")["access_token"]


def faults(sim: Simulator, **body: object) -> None:
    answer = requests.post(sim.base_url + "/_sim/faults", json=body, timeout=5)
    assert answer.status_code == 200, answer.text


def departments(
    sim: Simulator, token: str, portal: str = "zylker", dc: str = "sim"
) -> requests.Response:
    url = f"{sim.data_center(dc)['api_url']}/api/v2/{portal}/departments"
    return requests.get(url, headers=auth(token), timeout=5)


def test_it_adds_latency(sim: Simulator, token: str) -> None:
    faults(sim, latency_ms=300)
    started = time.monotonic()
    assert "data" in departments(sim, token).json()
    slow = time.monotonic() - started
    assert slow >= 0.3  # the injected delay, a floor not a speed target


def test_it_fails_a_share_of_calls_with_5xx_or_1001(sim: Simulator, token: str) -> None:
    faults(sim, error_rate=0.5, error_kind="5xx")
    statuses = [departments(sim, token).status_code for _ in range(60)]
    failed = statuses.count(500)
    assert set(statuses) == {200, 500}
    assert 15 <= failed <= 45

    faults(sim, error_rate=1.0, error_kind="1001")
    answer = departments(sim, token)
    assert answer.status_code == 200
    assert answer.json() == {
        "error": {"code": 1001, "message": "Unknown authentication error. Contact SalesIQ Team!"}
    }
    requests.delete(sim.base_url + "/_sim/faults", timeout=5)
    assert "data" in departments(sim, token).json()


def test_it_drops_connections_during_an_outage_in_drop_mode(sim: Simulator, token: str) -> None:
    faults(sim, outage_seconds=0.6, outage_mode="drop")
    with pytest.raises(requests.ConnectionError):
        departments(sim, token)
    # The accounts server of the DC is down too.
    with pytest.raises(requests.ConnectionError):
        refresh(sim.data_center("sim")["accounts_url"], "1000.any")
    time.sleep(0.7)
    assert "data" in departments(sim, token).json()
    log = sim.calls()
    assert any(c["error_code"] == "dropped" and c["status"] is None for c in log)


def test_it_answers_503_during_an_outage_scoped_to_one_dc(sim: Simulator, token: str) -> None:
    euro = connect(sim, as_user="admin@eurocorp.example")["access_token"]
    faults(sim, outage_seconds=30, outage_mode="503", dc="sim")
    down = departments(sim, token)
    assert down.status_code == 503 and "text/html" in down.headers["Content-Type"]
    assert "data" in departments(sim, euro, portal="eurocorp", dc="sim-eu").json()


def test_it_answers_targeted_errors_a_given_number_of_times(sim: Simulator, token: str) -> None:
    faults(
        sim,
        portal="zylker",
        errors=[{"method": "GET", "path_regex": r"/departments$", "code": 1019, "times": 2}],
    )
    first, second, third = (departments(sim, token).json() for _ in range(3))
    assert first["error"]["code"] == second["error"]["code"] == 1019
    assert "data" in third

    faults(
        sim, errors=[{"path_regex": "/oauth/v2/token$", "http_status": 500, "code": "server_error"}]
    )
    answer = refresh(sim.data_center("sim")["accounts_url"], "1000.any")
    assert answer.status_code == 500 and answer.json() == {"error": "server_error"}
    assert refresh(sim.data_center("sim")["accounts_url"], "1000.any").json() == {
        "error": "invalid_code"
    }


def test_it_forces_rate_limiting_in_both_dialects(sim: Simulator, token: str) -> None:
    ref_token = connect(sim, as_user="admin@acme-ref.example", scopes=REFERENCE_SCOPES)[
        "access_token"
    ]
    faults(sim, rate_limited=True)
    assert departments(sim, token).json()["error"]["code"] == 1023
    limited = requests.get(
        sim.data_center("sim")["api_url"] + "/api/v2/operators", headers=auth(ref_token), timeout=5
    )
    assert limited.status_code == 429
    assert limited.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(limited.headers["X-RateLimit-Reset"]) > time.time()
    requests.delete(sim.base_url + "/_sim/faults", timeout=5)
    assert "data" in departments(sim, token).json()


def test_it_refuses_bad_fault_settings(sim: Simulator) -> None:
    for body in (
        {"error_kind": "teapot"},
        {"outage_mode": "sometimes"},
        {"error_rate": 2},
        {"errors": [{"path_regex": "("}]},
        {"errors": [{"path_regex": "x"}]},
    ):
        answer = requests.post(sim.base_url + "/_sim/faults", json=body, timeout=5)
        assert answer.status_code == 400 and answer.json()["error"], body
