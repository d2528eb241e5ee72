"""People and events: Label Studio users (the bots are real users), and the webhook that tells
labelgate someone answered."""

from __future__ import annotations

import logging

from labelgate.errors import LabelgateError, ServiceError
from labelgate.labelstudio.connection import Connection

logger = logging.getLogger(__name__)

#: Webhook events that tell labelgate a person (or bot) answered.
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
#: The header that carries the shared secret on webhook calls.
WEBHOOK_SECRET_HEADER = "X-Labelgate-Secret"


class People(Connection):
    """Users: ``GET/POST /api/users/``; webhooks: ``GET/POST/PATCH /api/webhooks/``."""

    def ensure_user(self, email: str, *, first_name: str = "", last_name: str = "") -> int:
        """Return the id of the organization member with this e-mail, creating the user if
        needed (no password: such a user cannot log in, which suits bots; a person sets one
        through the password reset or the admin). E-mails compare case-insensitively."""
        if "@" not in email:
            raise LabelgateError(f"not an e-mail address: {email!r}")
        users = self._load_users()
        for user_id, known in users.items():
            if known.lower() == email.lower():
                return user_id
        user = self._json(
            "POST",
            "/api/users/",
            json={
                "email": email,
                "username": email,
                "first_name": first_name,
                "last_name": last_name,
            },
        )
        self._emails[int(user["id"])] = user["email"]
        logger.info("created Label Studio user %s (id %s)", email, user["id"])
        return int(user["id"])

    def add_webhook(
        self, project_id: int, url: str, *, secret: str, header: str = WEBHOOK_SECRET_HEADER
    ) -> int:
        """Make sure the project calls ``url`` on annotation events; return the webhook id.

        Idempotent: one webhook per (project, url); a second call updates its secret and events
        instead of adding another. Events: ``WEBHOOK_ACTIONS`` (annotation created, bulk
        created, updated), with the payload, and the header ``header: secret`` that the
        receiver checks. Label Studio refuses local URLs (127.0.0.1, private networks) unless
        it runs with ``SSRF_PROTECTION_ENABLED=false``.
        """
        if not secret:
            raise LabelgateError("webhook secret must not be empty")
        self._secrets.add(secret)
        wanted = {
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "headers": {header: secret},
            "is_active": True,
            "actions": list(WEBHOOK_ACTIONS),
        }
        hooks = self._json("GET", "/api/webhooks/", params={"project": project_id})
        hooks = hooks.get("results", hooks) if isinstance(hooks, dict) else hooks
        same = sorted(
            (h for h in hooks if h.get("project") == project_id and h.get("url") == url),
            key=lambda h: h["id"],
        )
        try:
            if not same:
                hook = self._json("POST", "/api/webhooks/", json={"project": project_id, **wanted})
                logger.info("added webhook %s to Label Studio project %s", hook["id"], project_id)
                return int(hook["id"])
            hook = same[0]
            stale = [
                k
                for k, v in wanted.items()
                if (sorted(hook.get(k) or []) if k == "actions" else hook.get(k))
                != (sorted(v) if k == "actions" else v)
            ]
            if stale:  # send every field: a PATCH without "actions" clears them (LS 1.23)
                self._json("PATCH", f"/api/webhooks/{hook['id']}/", json=wanted)
            return int(hook["id"])
        except ServiceError as error:
            if "reserved network" not in str(error):
                raise
            raise ServiceError(
                f"{error}. Label Studio refuses webhook URLs on loopback or "
                "private networks unless it runs with "
                "SSRF_PROTECTION_ENABLED=false"
            ) from None

    def _load_users(self) -> dict[int, str]:
        users = self._json("GET", "/api/users/")
        users = users.get("results", users) if isinstance(users, dict) else users
        self._emails.update({int(u["id"]): u.get("email") or "" for u in users})
        return dict(self._emails)
