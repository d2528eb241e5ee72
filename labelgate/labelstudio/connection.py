"""The connection to one Label Studio server: the HTTP client, retries with backoff, the
scrubbing of secrets from messages, and the Data Manager's task pages. Every request of the
adapter (:class:`labelgate.labelstudio.LabelStudio`) goes through :meth:`Connection._request`.

Reliability: connection failures, timeouts, 429 and 5xx answers are retried with exponential
backoff (``backoff * 2**attempt`` seconds, ``retries`` times), then raise
:class:`~labelgate.errors.ServiceError` naming the method, URL and status. Other 4xx answers
raise at once with Label Studio's own message. A POST that may have reached the server (read
timeout, 5xx) is never blindly repeated (``only_unsent``). The API token is only ever put in the
``Authorization`` header: it is scrubbed from every message and log line.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Self

import httpx

from labelgate.errors import LabelgateError, ServiceError
from labelgate.labelstudio import wire
from labelgate.labelstudio.wire import ChoiceControl

logger = logging.getLogger(__name__)

_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

NOT_RUNNING = (
    "; is Label Studio running there? (`make stack` starts the local one; LABEL_STUDIO_URL names another)"
)


class Transient(Exception):
    """A failure worth retrying; ``sent`` tells whether the server may have acted on it."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Connection:
    """The HTTP side of :class:`~labelgate.labelstudio.LabelStudio`, which documents the
    parameters: one ``httpx`` client with the token in its ``Authorization`` header, retries,
    and the caches the other parts share (each project's choice control, user e-mails)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise LabelgateError(f"Label Studio URL must start with http:// or https://; got {url!r}")
        if hasattr(api_key, "get_secret_value"):
            api_key = api_key.get_secret_value()
        if not api_key:
            raise LabelgateError("Label Studio API key is empty; set LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._api_key = api_key
        self._secrets: set[str] = {api_key}
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Token {api_key}", "Accept": "application/json"},
            transport=transport,
        )
        self._controls: dict[int, ChoiceControl] = {}
        self._emails: dict[int, str] = {}

    @classmethod
    def from_settings(cls, **options: Any) -> Self:
        """Build a client from ``get_settings()`` (``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``,
        or their ``LABELGATE_LABELSTUDIO_*`` forms; ``LABELGATE_LABELSTUDIO_TIMEOUT`` and
        ``_RETRIES``); ``options`` go to the constructor and win over the settings."""
        from labelgate.settings import get_settings

        settings = get_settings()
        if settings.labelstudio_api_key is None:
            raise LabelgateError(
                "no Label Studio API key: set LABEL_STUDIO_API_KEY (or "
                "LABELGATE_LABELSTUDIO_API_KEY); `source deploy/secrets.sh` does it for the "
                "local server"
            )
        chosen = {"timeout": settings.labelstudio_timeout, "retries": settings.labelstudio_retries}
        options = {**chosen, **options}
        return cls(settings.labelstudio_url, settings.labelstudio_api_key.get_secret_value(), **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _exported(
        self, project_id: int, pages: Iterable[Sequence[int]], *, batch: int = 500
    ) -> Iterator[list[dict[str, Any]]]:
        """Full tasks (data and annotations) by id, a page of ids at a time, through the JSON
        export (``ids[]``, ``batch`` per call): about 30 % faster than the Data Manager's
        ``fields=all`` on Label Studio 1.23."""
        for ids in pages:
            for start in range(0, len(ids), batch):
                yield self._json(
                    "GET",
                    f"/api/projects/{project_id}/export",
                    params={
                        "exportType": "JSON",
                        "download_all_tasks": "true",
                        "ids[]": [int(i) for i in ids[start : start + batch]],
                    },
                )

    def _dm_pages(
        self, project_id: int, *, fields: str, filters: Sequence[dict] = (), page_size: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Data Manager task pages in task id order, keyset-paged (``id > last``)."""
        last_id = 0
        while True:
            params = wire.dm_params(
                project_id,
                fields=fields,
                page_size=page_size,
                filters=[*filters, wire.dm_filter("id", "greater", last_id, "Number")],
            )
            tasks = self._json("GET", "/api/tasks/", params=params).get("tasks", [])
            if tasks:
                yield tasks
            if len(tasks) < page_size:
                return
            last_id = max(int(t["id"]) for t in tasks)

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        only_unsent: bool = False,
    ) -> Any:
        response = self._request(method, path, params=params, json=json, only_unsent=only_unsent)
        return response.json() if response.content else None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        only_unsent: bool = False,
    ) -> httpx.Response:
        """Send with retries; ``only_unsent`` retries only requests that never left."""
        for attempt in range(self.retries + 1):
            try:
                return self._send(method, path, params=params, json=json)
            except Transient as error:
                if attempt == self.retries or (only_unsent and error.sent):
                    tries = f"after {attempt + 1} attempt{'s' if attempt else ''}"
                    hint = "" if error.sent else NOT_RUNNING
                    raise ServiceError(self._scrub(f"{error} ({tries}){hint}")) from None
                self._sleep(attempt, str(error))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """One HTTP exchange: the response, ``Transient``, or ``ServiceError`` for 4xx."""
        where = f"Label Studio {method} {self.url}{path}"
        content = None if json is None else wire.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._http.request(method, path, params=params, content=content, headers=headers)
        except _UNSENT as error:
            raise Transient(f"{where} failed: cannot connect ({type(error).__name__})", sent=False) from None
        except httpx.TimeoutException as error:
            raise Transient(
                f"{where} failed: no answer within {self.timeout} s ({type(error).__name__})", sent=True
            ) from None
        except httpx.TransportError as error:
            raise Transient(
                f"{where} failed: connection broken ({type(error).__name__})", sent=True
            ) from None
        finally:
            self._http.cookies.clear()  # token auth only: no session cookie, so no CSRF
        status = response.status_code
        if status < 400:
            return response
        message = f"{where} answered HTTP {status}: {wire.error_detail(response)}"
        if status == 429 or status >= 500:
            raise Transient(message, sent=True)
        if status in (401, 403):
            message += (
                " (check LABEL_STUDIO_API_KEY; legacy tokens need "
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true on the server)"
            )
        raise ServiceError(self._scrub(message))

    def _sleep(self, attempt: int, reason: str) -> None:
        delay = self.backoff * 2**attempt * (1 + 0.1 * random.random())
        logger.warning("%s; retry %d/%d in %.1f s", self._scrub(reason), attempt + 1, self.retries, delay)
        time.sleep(delay)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text
