"""The pure rules of browser access: login throttling, CORS, cookie sessions and CSRF."""

from __future__ import annotations

import pytest

from kubernel_api import cookies
from kubernel_api.cors import allowed_origin, cors_headers, is_preflight
from kubernel_api.keypairs import Keypair, Role
from kubernel_api.throttle import Throttle, retry_after

ALICE = Keypair(access_key="AKIAALICE0000000", secret_key="s" * 40, role=Role.USER)
SERVER = "http://kubernel.test"


# -- throttle -------------------------------------------------------------------------
def test_a_key_gets_its_limit_per_window_then_waits() -> None:
    throttle = Throttle(limit=3, window_seconds=60)
    assert [throttle.attempt("k", t) for t in (0, 1, 2)] == [None, None, None]
    assert throttle.attempt("k", 10) == pytest.approx(50)  # the first attempt leaves the window at 60
    assert throttle.attempt("other", 10) is None  # keys are counted apart
    assert throttle.attempt("k", 60.5) is None  # the window slid past the first attempt
    assert retry_after(0.2) == "1" and retry_after(49.1) == "50"


def test_the_throttle_forgets_the_least_recent_keys_beyond_its_bound() -> None:
    throttle = Throttle(limit=1, window_seconds=60, max_keys=2)
    for key in ("a", "b", "c"):
        throttle.attempt(key, 0)
    assert throttle.attempt("a", 1) is None  # forgotten, so allowed again
    assert throttle.attempt("c", 1) is not None


# -- CORS -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://app.example", ("*",), "*"),
        ("https://app.example", ("https://app.example",), "https://app.example"),
        ("https://evil.example", ("https://app.example",), None),
        (None, ("*",), None),
        ("null", ("*",), None),
        ("https://app.example", (), None),
    ],
)
def test_allowed_origin(origin: str | None, allowed: tuple[str, ...], expected: str | None) -> None:
    assert allowed_origin(origin, allowed) == expected


def test_cors_answers_never_allow_credentials() -> None:
    for preflight in (True, False):
        for allowed in (("*",), ("https://app.example",)):
            headers = cors_headers("https://app.example", allowed, preflight=preflight)
            assert headers and "Access-Control-Allow-Credentials" not in headers
    preflight = cors_headers("https://app.example", ("https://app.example",), preflight=True)
    assert "Authorization" in preflight["Access-Control-Allow-Headers"] and preflight["Vary"] == "Origin"
    assert "DELETE" in preflight["Access-Control-Allow-Methods"]
    assert cors_headers("https://evil.example", ("https://app.example",), preflight=True) == {}
    assert is_preflight("OPTIONS", {"Access-Control-Request-Method": "POST"})
    assert not is_preflight("OPTIONS", {}) and not is_preflight(
        "POST", {"Access-Control-Request-Method": "POST"}
    )


# -- cookie sessions ------------------------------------------------------------------
def test_a_login_round_trips_and_malformed_data_is_no_login() -> None:
    made = cookies.new_login(ALICE)
    assert cookies.Login.from_data(made.to_data()) == made
    assert cookies.Login.from_data({}) is None
    assert cookies.Login.from_data({**made.to_data(), "csrf": 5}) is None
    assert cookies.new_login(ALICE).csrf_token != made.csrf_token  # a fresh token at each login


def test_a_login_ends_with_its_keypair() -> None:
    made = cookies.new_login(ALICE)
    assert cookies.still_valid(made, ALICE)
    assert not cookies.still_valid(made, None)  # deleted
    assert not cookies.still_valid(made, ALICE.model_copy(update={"active": False}))  # deactivated
    assert not cookies.still_valid(made, ALICE.model_copy(update={"secret_key": "t" * 40}))  # rotated


def test_the_secret_is_compared_whole() -> None:
    assert cookies.secret_matches(ALICE, "s" * 40)
    assert not cookies.secret_matches(ALICE, "s" * 39) and not cookies.secret_matches(ALICE, "")


LOGIN = cookies.Login("AKIAALICE0000000", "f", "token-1")


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("GET", {}, False),  # an EventSource or fetch of the same origin sends no Origin on GET
        ("GET", {"Origin": SERVER, "Sec-Fetch-Site": "same-origin"}, False),
        ("GET", {"Origin": "https://evil.example"}, True),
        ("GET", {"Sec-Fetch-Site": "cross-site"}, True),
        ("GET", {"Sec-Fetch-Site": "same-site"}, True),
        ("POST", {"Origin": SERVER, cookies.CSRF_HEADER: "token-1"}, False),
        ("DELETE", {cookies.CSRF_HEADER: "token-1"}, False),
        ("POST", {"Origin": SERVER}, True),  # no token
        ("PATCH", {"Origin": SERVER, cookies.CSRF_HEADER: "token-2"}, True),  # another login's
        ("POST", {"Origin": "https://evil.example", cookies.CSRF_HEADER: "token-1"}, True),
    ],
)
def test_csrf_rules(method: str, headers: dict[str, str], refused: bool) -> None:
    assert (cookies.csrf_refusal(method, headers, LOGIN, SERVER) is not None) is refused


def test_the_cookie_key_is_derived_the_same_by_every_replica() -> None:
    from kubernel_api.login_routes import cookie_key

    key = b"k" * 32
    assert cookie_key(key) == cookie_key(bytes(key)) and len(cookie_key(key)) == 32
    assert cookie_key(key) != key and cookie_key(b"j" * 32) != cookie_key(key)
