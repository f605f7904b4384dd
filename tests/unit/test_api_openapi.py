"""The OpenAPI document describes exactly the application's routes."""

from __future__ import annotations

from kubernel_api.app import ROUTES
from kubernel_api.openapi import document
from kubernel_api.problems import ProblemType


def test_every_route_is_documented_and_nothing_else() -> None:
    documented = {(method.upper(), path) for path, ops in document()["paths"].items() for method in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}


def test_authenticated_operations_declare_the_auth_problem_and_public_ones_do_not() -> None:
    paths = document()["paths"]
    for route in ROUTES:
        operation = paths[route.path][route.method.lower()]
        assert ("security" in operation) is (not route.public), route.name
        if not route.public:
            assert "401" in operation["responses"] and "503" in operation["responses"]


def test_problem_types_are_distinct() -> None:
    assert len({p.slug for p in ProblemType}) == len(ProblemType)
