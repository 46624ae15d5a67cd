"""Query parameters the endpoint does not know are refused (422 `invalid_request`, naming
them), never ignored: `?perod=2026-01` silently answering every period reads as an answer
to the question asked."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ledger.api.errors import ApiError

_known: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:  # parameters of the route's dependencies count too
        names |= _query_names(sub)
    return names


def _known_query(route: APIRoute) -> frozenset[str]:
    names = _known.get(id(route))
    if names is None:  # worked out once per route
        names = _known[id(route)] = frozenset(_query_names(route.dependant))
    return names


async def reject_unknown_query(request: Request) -> None:
    """A global dependency. Raises ApiError(422) naming each query parameter the matched
    route does not declare. Async: it does no I/O, and a plain `def` costs a thread hop."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _known_query(route))
    if unknown:
        raise ApiError(
            422, "invalid_request",
            f"{unknown[0]}: unknown query parameter (this endpoint takes: "
            f"{', '.join(sorted(_known_query(route))) or 'none'})",
            errors=[{"field": name, "message": "unknown query parameter"} for name in unknown],
        )  # fmt: skip
