"""Bearer-token auth of the HTTP API, with two scopes.

Tokens and their scopes come from ``LABELGATE_API_TOKENS`` (JSON: ``{"<token>": ["read",
"submit"]}``, see :mod:`labelgate.settings`):

- ``read``: list and read jobs, label sets, versions and diffs;
- ``submit``: submit and cancel jobs.

A missing or unknown token gets 401 (with ``WWW-Authenticate: Bearer``); a known token without
the route's scope gets 403. Neither says more: no token, no list of tokens, no hint of which
part was wrong. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Literal

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from labelgate.settings import get_settings

logger = logging.getLogger(__name__)

Scope = Literal["read", "submit"]
SCOPES: tuple[Scope, ...] = ("read", "submit")

bearer = HTTPBearer(
    auto_error=False,
    description="A token from LABELGATE_API_TOKENS; its scopes (read, submit) decide the routes.",
)

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="not authenticated",
    headers={"WWW-Authenticate": "Bearer"},
)
FORBIDDEN = HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="not allowed")


def configured_tokens() -> dict[str, frozenset[str]]:
    """The tokens of the settings and their scopes; empty (every call refused) when unset or
    malformed. A malformed setting is logged without its value."""
    raw = get_settings().api_tokens
    if raw is None or not raw.get_secret_value().strip():
        return {}
    try:
        data = json.loads(raw.get_secret_value())
    except ValueError:
        logger.error("LABELGATE_API_TOKENS is not JSON; every API call is refused")
        return {}
    if not isinstance(data, dict):
        logger.error("LABELGATE_API_TOKENS must be a JSON object token -> scopes; every call is refused")
        return {}
    tokens = {}
    for token, scopes in data.items():
        if not token or not isinstance(scopes, list) or not set(scopes) <= set(SCOPES):
            logger.error("LABELGATE_API_TOKENS: an entry has scopes other than %s; it is ignored", SCOPES)
            continue
        tokens[token] = frozenset(scopes)
    return tokens


def scopes_of(token: str) -> frozenset[str] | None:
    """The scopes of ``token``, or None when it is not a configured token (constant time in
    the token's content: every configured token is compared)."""
    found = None
    given = token.encode()
    for known, scopes in configured_tokens().items():
        if hmac.compare_digest(given, known.encode()):
            found = scopes
    return found


def require(scope: Scope) -> Callable[..., str]:
    """A FastAPI dependency that lets the call through only with a token holding ``scope``."""

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise UNAUTHORIZED
        scopes = scopes_of(credentials.credentials)
        if scopes is None:
            raise UNAUTHORIZED
        if scope not in scopes:
            raise FORBIDDEN
        return scope

    return check
