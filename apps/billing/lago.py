"""A small synchronous Lago API client (httpx), for Celery tasks, commands and the webhook view.

Never on the request path. Errors come back as two exceptions: LagoUnavailable (network
errors and timeouts: nothing is known about what Lago did) and LagoError (Lago answered
with a status >= 400; its JSON body and headers are kept). The API key is sent, never logged.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from django.conf import settings


class LagoUnavailable(Exception):
    """Lago could not be reached, or did not answer in time."""


class LagoError(Exception):
    def __init__(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body or {}
        self.headers = headers or {}

    def __str__(self) -> str:
        detail = self.body.get("error_details") or self.body.get("error") or ""
        code = self.body.get("code") or ""
        return f"Lago answered {self.status} {code} {detail}".strip()

    @property
    def rate_limit_reset(self) -> float | None:
        """X-RateLimit-Reset: seconds until Lago's window resets (a 429)."""
        value = self.headers.get("x-ratelimit-reset")
        try:
            return max(float(value), 0.0) if value is not None else None
        except ValueError:
            return None


def api_root(base: str) -> str:
    """LAGO_API_BASE is the server's root (https://api.getlago.com, http://lago:3000): the API is
    under /api/v1/. A base already ending in /api/v1 is taken as it is."""
    base = base.rstrip("/")
    if base.endswith("/api/v1"):
        return base + "/"
    return base + "/api/v1/"


class LagoClient:
    def __init__(
        self,
        *,
        base: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base if base is not None else settings.LAGO_API_BASE
        if not base:
            raise RuntimeError("LAGO_API_BASE is not set: billing is off")
        self._client = httpx.Client(
            base_url=api_root(base),
            headers={
                "Authorization": f"Bearer {api_key if api_key is not None else settings.LAGO_API_KEY}",
                "Accept": "application/json",
                "User-Agent": "llm-gateway-billing",
            },
            timeout=timeout if timeout is not None else settings.LAGO_TIMEOUT,
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "LagoClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(
        self, method: str, path: str, *, json: dict | None = None, params: dict | None = None
    ) -> dict:
        try:
            response = self._client.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:  # connect errors, timeouts, protocol errors
            raise LagoUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text[:500]}
            raise LagoError(
                response.status_code,
                body if isinstance(body, dict) else {"error": body},
                {k.lower(): v for k, v in response.headers.items()},
            )
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise LagoUnavailable(
                f"Lago answered {response.status_code} with a body that is not JSON"
            ) from None

    # --- events --------------------------------------------------------------------------

    def events_batch(self, events: list[dict]) -> dict:
        """POST /events/batch: all or nothing; at most 100 events (Lago's limit)."""
        return self._request("POST", "events/batch", json={"events": events})

    # --- customers and subscriptions -----------------------------------------------------

    def customer_get(self, external_id: str) -> dict:
        return self._request("GET", f"customers/{quote(external_id, safe='')}")["customer"]

    def customer_upsert(self, customer: dict) -> dict:
        """POST /customers is an upsert on external_id."""
        return self._request("POST", "customers", json={"customer": customer})["customer"]

    def subscription_get(self, external_id: str) -> dict:
        return self._request("GET", f"subscriptions/{quote(external_id, safe='')}")["subscription"]

    def subscription_create(self, subscription: dict) -> dict:
        return self._request("POST", "subscriptions", json={"subscription": subscription})["subscription"]

    # --- wallets -------------------------------------------------------------------------

    def wallets_list(self, external_customer_id: str) -> list[dict]:
        """Every wallet of a customer (all pages)."""
        wallets: list[dict] = []
        page = 1
        while True:
            data = self._request(
                "GET",
                "wallets",
                params={"external_customer_id": external_customer_id, "page": page, "per_page": 100},
            )
            wallets += data.get("wallets") or []
            next_page = (data.get("meta") or {}).get("next_page")
            if not next_page or next_page == page:
                return wallets
            page = next_page

    def wallet_get(self, lago_id: str) -> dict:
        return self._request("GET", f"wallets/{quote(lago_id, safe='')}")["wallet"]

    # --- webhooks ------------------------------------------------------------------------

    def webhook_public_key(self) -> str:
        """The base64 of the PEM of the RSA key JWT-signed webhooks are verified with."""
        return self._request("GET", "webhooks/json_public_key")["webhook"]["public_key"]
