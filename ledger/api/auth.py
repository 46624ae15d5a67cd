"""Bearer-token authentication and role checks (SPEC §8): 401 without or with a bad token,
403 when the token's role is not enough. `reader` reads views, `auditor` also event
histories, `admin` everything."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.api.errors import ApiError
from ledger.store.tokens import TokenFile, TokenRecord

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `ledger tokens create --name NAME --role reader|auditor|admin`.",
)
CHALLENGE = 'Bearer realm="ledger"'


def require(role: str) -> Callable[..., Awaitable[TokenRecord]]:
    """A dependency that admits tokens whose role includes `role`."""

    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> TokenRecord:
        if credentials is None or not credentials.credentials:
            raise ApiError(
                401, "unauthenticated",
                "authorization: a bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": CHALLENGE},
            )  # fmt: skip
        tokens: TokenFile = request.app.state.tokens
        record = tokens.verify(credentials.credentials)
        if record is None:
            raise ApiError(
                401, "invalid_token", "authorization: the bearer token is unknown or revoked",
                headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
            )  # fmt: skip
        if not record.allows(role):
            raise ApiError(
                403, "forbidden",
                f"authorization: this needs the {role} role; token {record.name!r} is "
                f"{record.role}",
            )  # fmt: skip
        request.state.token_name = record.name
        return record

    return check
