"""A fake Lago server on loopback that enforces the real API's rules (shared/reference/wire-formats.md, A).

- Bearer auth on every /api/v1 route: 401 {"status":401,"error":"Unauthorized"}.
- POST /api/v1/events/batch: at most 100 events (422 too_many_events), none is 422 no_events;
  all or nothing, per-item errors keyed by index; a transaction_id already stored (per
  external_subscription_id, as Lago's Postgres store) or repeated in the batch is 422
  value_already_exist; a blank transaction_id or code is value_is_mandatory; a bad timestamp
  invalid_format.
- Customers (upsert), subscriptions, wallets (list, get), wallet transactions (top-ups), the
  webhook public key.
- Faults to order: answer N batch posts with a status (503, ...), 429 with X-RateLimit-Reset,
  refuse chosen items, delay every batch, or hang on a batch (after storing it, or before).
- Webhooks as Lago sends them, signed with HMAC (the organization's HMAC key) or JWT (RS256,
  the public key at /api/v1/webhooks/json_public_key).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import uuid
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.server import FakeServer

MAX_BATCH = 100


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _json(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _unprocessable(details: dict) -> web.Response:
    return _json(
        {
            "status": 422,
            "error": "Unprocessable Entity",
            "code": "validation_errors",
            "error_details": details,
        },
        422,
    )


def _not_found(resource: str) -> web.Response:
    return _json({"status": 404, "error": "Not Found", "code": f"{resource}_not_found"}, 404)


def _valid_timestamp(value) -> bool:
    if value is None or isinstance(value, bool):
        return value is None
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            Decimal(value)
            return True
        except ArithmeticError:
            return False
    return False


class FakeLago(FakeServer):
    def __init__(self, api_key: str = "lago-test-key") -> None:
        super().__init__(middlewares=[self._middleware])
        self.api_key = api_key
        self.hmac_key = "fake-lago-hmac-key-" + uuid.uuid4().hex
        self.organization_id = str(uuid.uuid4())
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        # State
        self.events: dict[tuple[str, str], dict] = {}  # (external_subscription_id, transaction_id) -> event
        self.stored: Counter = Counter()  # transaction_id -> times stored (never more than 1)
        self.received: Counter = Counter()  # transaction_id -> times posted (every attempt)
        self.duplicates_refused: Counter = Counter()  # transaction_id -> 422 value_already_exist answered
        self.batch_posts: list[dict] = []  # every POST /events/batch: {"size", "status"}
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.wallets: dict[str, dict] = {}  # lago_id -> wallet
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        # Faults
        self._fail: list[tuple[int, dict]] = []  # (status, headers) for the next batch posts
        self._fail_reads = 0  # the next wallet reads answer 503
        self.reject: dict[str, dict] = {}  # transaction_id -> error_details for it
        self.delay = 0.0  # seconds before answering each batch
        self._hang_on_post: int | None = None  # the n-th batch post (1-based, counting from the order) hangs
        self._hang_store_first = True
        self._batch_counter = 0
        self.hung = threading.Event()  # set once a post is hanging
        self._release: asyncio.Event | None = None
        self.app.router.add_post("/api/v1/events/batch", self._events_batch)
        self.app.router.add_post("/api/v1/events", self._event_create)
        self.app.router.add_post("/api/v1/customers", self._customer_upsert)
        self.app.router.add_get("/api/v1/customers/{external_id}", self._customer_get)
        self.app.router.add_get("/api/v1/customers/{external_id}/wallets", self._customer_wallets)
        self.app.router.add_post("/api/v1/subscriptions", self._subscription_create)
        self.app.router.add_get("/api/v1/subscriptions/{external_id}", self._subscription_get)
        self.app.router.add_get("/api/v1/wallets", self._wallets_list)
        self.app.router.add_get("/api/v1/wallets/{lago_id}", self._wallet_get)
        self.app.router.add_post("/api/v1/wallet_transactions", self._wallet_transaction_create)
        self.app.router.add_get("/api/v1/webhooks/json_public_key", self._public_key)

    def stop(self) -> None:
        self.release()  # a post still hanging would hold up the server's shutdown
        super().stop()

    # --- fault control (from the test thread) -----------------------------------------------

    def fail_next(self, count: int, status: int = 503, headers: dict | None = None) -> None:
        with self.lock:
            self._fail += [(status, headers or {})] * count

    def fail_wallet_reads(self, count: int) -> None:
        """The next `count` wallet reads (list or get) answer 503, as a Lago that is down."""
        with self.lock:
            self._fail_reads = count

    def _read_fails(self) -> bool:
        with self.lock:
            if self._fail_reads <= 0:
                return False
            self._fail_reads -= 1
            return True

    def rate_limit_next(self, count: int, reset: int = 1) -> None:
        self.fail_next(
            count,
            429,
            {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )

    def hang_on_post(self, number: int = 1, *, store_first: bool = True) -> None:
        """The number-th batch post from now hangs until release() (after storing it if store_first)."""
        with self.lock:
            self._hang_on_post = self._batch_counter + number
            self._hang_store_first = store_first
            self.hung.clear()

    def release(self) -> None:
        with self.lock:
            self._hang_on_post = None
        if self._release is not None:
            self.loop.call_soon_threadsafe(self._release.set)

    # --- state helpers (from the test thread) -----------------------------------------------

    def stored_ids(self) -> set[str]:
        with self.lock:
            return {tid for _, tid in self.events}

    def wallet_create(
        self,
        external_customer_id: str,
        *,
        credits: str = "10",
        rate: str = "1.0",
        ongoing_balance_cents: int | None = None,
    ) -> dict:
        lago_id = str(uuid.uuid4())
        cents = int(Decimal(credits) * Decimal(rate) * 100)
        wallet = {
            "lago_id": lago_id,
            "lago_customer_id": str(uuid.uuid4()),
            "external_customer_id": external_customer_id,
            "billing_entity_code": "default",
            "status": "active",
            "currency": "USD",
            "name": "Prepaid",
            "code": "prepaid",
            "priority": 50,
            "rate_amount": rate,
            "credits_balance": credits,
            "balance_cents": cents,
            "consumed_credits": "0.0",
            "credits_ongoing_balance": credits,
            "credits_ongoing_usage_balance": "0.0",
            "ongoing_balance_cents": cents,
            "ongoing_usage_balance_cents": 0,
            "created_at": _now_iso(),
            "expiration_at": None,
            "last_balance_sync_at": _now_iso(),
            "last_consumed_credit_at": None,
            "terminated_at": None,
            "invoice_requires_successful_payment": False,
            "paid_top_up_min_amount_cents": None,
            "paid_top_up_max_amount_cents": None,
        }
        if ongoing_balance_cents is not None:
            self._set_ongoing(wallet, ongoing_balance_cents)
        with self.lock:
            self.wallets[lago_id] = wallet
        return dict(wallet)

    @staticmethod
    def _set_ongoing(wallet: dict, ongoing_balance_cents: int) -> None:
        rate = Decimal(wallet["rate_amount"])
        wallet["ongoing_usage_balance_cents"] = wallet["balance_cents"] - ongoing_balance_cents
        wallet["ongoing_balance_cents"] = ongoing_balance_cents
        wallet["credits_ongoing_balance"] = str(Decimal(ongoing_balance_cents) / 100 / rate)
        wallet["credits_ongoing_usage_balance"] = str(
            Decimal(wallet["ongoing_usage_balance_cents"]) / 100 / rate
        )
        wallet["last_balance_sync_at"] = _now_iso()  # as Lago's balance refresh does

    def wallet_consume(self, lago_id: str, ongoing_balance_cents: int = 0) -> dict:
        """Usage brings the wallet's ongoing balance down (to 0 by default)."""
        with self.lock:
            wallet = self.wallets[lago_id]
            self._set_ongoing(wallet, ongoing_balance_cents)
            return dict(wallet)

    def wallet_top_up(self, lago_id: str, credits: str) -> tuple[dict, dict]:
        """Granted credits, settled at once: (the wallet transaction, the wallet after it)."""
        with self.lock:
            wallet = self.wallets[lago_id]
            transaction = self._top_up(wallet, Decimal(credits))
            return transaction, dict(wallet)

    def _top_up(self, wallet: dict, credits: Decimal) -> dict:
        rate = Decimal(wallet["rate_amount"])
        cents = int(credits * rate * 100)
        wallet["balance_cents"] += cents
        wallet["credits_balance"] = str(Decimal(wallet["credits_balance"]) + credits)
        self._set_ongoing(wallet, wallet["ongoing_balance_cents"] + cents)
        return {
            "lago_id": str(uuid.uuid4()),
            "lago_wallet_id": wallet["lago_id"],
            "status": "settled",
            "source": "manual",
            "transaction_status": "granted",
            "transaction_type": "inbound",
            "amount": str(credits * rate),
            "credit_amount": str(credits),
            "settled_at": _now_iso(),
            "created_at": _now_iso(),
            "invoice_requires_successful_payment": False,
            "metadata": [],
        }

    # --- webhooks ----------------------------------------------------------------------------

    def public_key_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def webhook_request(
        self,
        webhook_type: str,
        object_type: str,
        obj: dict,
        *,
        algorithm: str = "hmac",
        unique_key: str | None = None,
    ) -> tuple[bytes, dict]:
        """(body, headers) exactly as Lago's webhook sender builds them."""
        body = orjson.dumps(
            {
                "webhook_type": webhook_type,
                "object_type": object_type,
                "organization_id": self.organization_id,
                object_type: obj,
            }
        )
        if algorithm == "hmac":
            signature = base64.b64encode(
                hmac.new(self.hmac_key.encode(), body, hashlib.sha256).digest()
            ).decode()
        else:
            signature = jwt.encode(
                {"data": body.decode(), "iss": self.url}, self.private_key, algorithm="RS256"
            )
        headers = {
            "Content-Type": "application/json",
            "X-Lago-Signature": signature,
            "X-Lago-Signature-Algorithm": algorithm,
            "X-Lago-Unique-Key": unique_key or str(uuid.uuid4()),
        }
        return body, headers

    def send_webhook(
        self,
        url: str,
        webhook_type: str,
        object_type: str,
        obj: dict,
        *,
        algorithm: str = "hmac",
        unique_key: str | None = None,
    ) -> httpx.Response:
        body, headers = self.webhook_request(
            webhook_type, object_type, obj, algorithm=algorithm, unique_key=unique_key
        )
        return httpx.post(url, content=body, headers=headers, timeout=30)

    # --- the API --------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        authorization = request.headers.get("Authorization", "")
        parts = authorization.split(" ")
        if len(parts) < 2 or parts[1] != self.api_key:
            response = _json({"status": 401, "error": "Unauthorized"}, 401)
        else:
            response = await handler(request)
        with self.lock:
            self.requests.append((request.method, request.path, response.status))
        return response

    async def _body(self, request: web.Request):
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None

    async def _events_batch(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        with self.lock:
            self._batch_counter += 1
            number = self._batch_counter
            fault = self._fail.pop(0) if self._fail else None
            hang = self._hang_on_post == number
            store_first = self._hang_store_first
        if self.delay:
            await asyncio.sleep(self.delay)
        events = body.get("events") if isinstance(body, dict) else None
        if isinstance(events, list):
            with self.lock:
                for event in events:
                    if isinstance(event, dict):
                        self.received[event.get("transaction_id")] += 1
        if fault is not None:
            status, headers = fault
            with self.lock:
                self.batch_posts.append({"size": len(events or []), "status": status})
            error = {429: "Too Many Requests"}.get(status, "Service Unavailable")
            return _json({"status": status, "error": error}, status, headers)
        if hang and not store_first:
            await self._hang()
        response = self._batch_answer(events)
        if hang and store_first:
            await self._hang()
        return response

    async def _hang(self) -> None:
        self._release = asyncio.Event()
        self.hung.set()
        await self._release.wait()

    def _batch_answer(self, events) -> web.Response:
        if events is None:
            return _json(
                {"status": 400, "error": "BadRequest: param is missing or the value is empty: events"}, 400
            )
        if not isinstance(events, list) or not events:
            return self._record_post(0, _unprocessable({"events": ["no_events"]}))
        if len(events) > MAX_BATCH:
            return self._record_post(len(events), _unprocessable({"events": ["too_many_events"]}))
        errors: dict[str, dict] = {}
        seen: set[tuple[str, str]] = set()
        with self.lock:
            for index, event in enumerate(events):
                item_errors: dict[str, list[str]] = {}
                if not isinstance(event, dict):
                    errors[str(index)] = {"event": ["invalid_format"]}
                    continue
                transaction_id = event.get("transaction_id")
                if not transaction_id:
                    item_errors["transaction_id"] = ["value_is_mandatory"]
                if not event.get("code"):
                    item_errors["code"] = ["value_is_mandatory"]
                if not _valid_timestamp(event.get("timestamp")):
                    item_errors["timestamp"] = ["invalid_format"]
                key = (event.get("external_subscription_id") or "", transaction_id or "")
                if transaction_id and (key in self.events or key in seen):
                    item_errors.setdefault("transaction_id", []).append("value_already_exist")
                    self.duplicates_refused[transaction_id] += 1
                seen.add(key)
                if transaction_id in self.reject:
                    item_errors.update(self.reject[transaction_id])
                if item_errors:
                    errors[str(index)] = item_errors
            if errors:  # the Postgres store rolls the whole batch back
                return self._record_post(len(events), _unprocessable(errors), locked=True)
            created = []
            for event in events:
                stored = {
                    "lago_id": str(uuid.uuid4()),
                    "lago_customer_id": None,
                    "lago_subscription_id": None,
                    "created_at": _now_iso(),
                    **event,
                }
                self.events[(event.get("external_subscription_id") or "", event["transaction_id"])] = stored
                self.stored[event["transaction_id"]] += 1
                created.append(stored)
            return self._record_post(len(events), _json({"events": created}), locked=True)

    def _record_post(self, size: int, response: web.Response, *, locked: bool = False) -> web.Response:
        entry = {"size": size, "status": response.status}
        if locked:
            self.batch_posts.append(entry)
        else:
            with self.lock:
                self.batch_posts.append(entry)
        return response

    async def _event_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        event = body.get("event") if isinstance(body, dict) else None
        if not isinstance(event, dict):
            return _json(
                {"status": 400, "error": "BadRequest: param is missing or the value is empty: event"}, 400
            )
        response = self._batch_answer([event])
        if response.status == 422:
            details = orjson.loads(response.body)["error_details"]["0"]
            return _unprocessable(details)
        return _json({"event": orjson.loads(response.body)["events"][0]})

    async def _customer_upsert(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        customer = (body or {}).get("customer")
        if not isinstance(customer, dict):
            return _json(
                {"status": 400, "error": "BadRequest: param is missing or the value is empty: customer"}, 400
            )
        if not customer.get("external_id"):
            return _unprocessable({"external_id": ["value_is_mandatory"]})
        with self.lock:
            existing = self.customers.get(customer["external_id"]) or {
                "lago_id": str(uuid.uuid4()),
                "sequential_id": len(self.customers) + 1,
                "created_at": _now_iso(),
                "currency": None,
                "email": None,
                "name": None,
                "applicable_timezone": "UTC",
            }
            existing.update(customer)
            self.customers[customer["external_id"]] = existing
            return _json({"customer": dict(existing)})

    async def _customer_get(self, request: web.Request) -> web.Response:
        with self.lock:
            customer = self.customers.get(request.match_info["external_id"])
        return _json({"customer": customer}) if customer else _not_found("customer")

    async def _subscription_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        subscription = (body or {}).get("subscription")
        if not isinstance(subscription, dict):
            return _json(
                {"status": 400, "error": "BadRequest: param is missing or the value is empty: subscription"},
                400,
            )
        missing = {
            f: ["value_is_mandatory"]
            for f in ("external_customer_id", "plan_code", "external_id")
            if not subscription.get(f)
        }
        if missing:
            return _unprocessable(missing)
        with self.lock:
            if subscription["external_customer_id"] not in self.customers:
                return _not_found("customer")
            stored = self.subscriptions.get(subscription["external_id"]) or {
                "lago_id": str(uuid.uuid4()),
                "status": "active",
                "created_at": _now_iso(),
                "billing_time": "calendar",
            }
            stored.update(subscription)
            self.subscriptions[subscription["external_id"]] = stored
            return _json({"subscription": dict(stored)})

    async def _subscription_get(self, request: web.Request) -> web.Response:
        with self.lock:
            subscription = self.subscriptions.get(request.match_info["external_id"])
        return _json({"subscription": subscription}) if subscription else _not_found("subscription")

    def _wallets_page(self, external_customer_id: str, request: web.Request) -> web.Response:
        page = int(request.query.get("page", 1))
        per_page = int(request.query.get("per_page", 20))
        with self.lock:
            wallets = [
                dict(w) for w in self.wallets.values() if w["external_customer_id"] == external_customer_id
            ]
        chunk = wallets[(page - 1) * per_page : page * per_page]
        total_pages = max((len(wallets) + per_page - 1) // per_page, 1)
        return _json(
            {
                "wallets": chunk,
                "meta": {
                    "current_page": page,
                    "next_page": page + 1 if page < total_pages else None,
                    "prev_page": page - 1 if page > 1 else None,
                    "total_pages": total_pages,
                    "total_count": len(wallets),
                },
            }
        )

    async def _wallets_list(self, request: web.Request) -> web.Response:
        if self._read_fails():
            return _json({"status": 503, "error": "Service Unavailable"}, 503)
        external_customer_id = request.query.get("external_customer_id")
        if not external_customer_id:
            return _unprocessable({"external_customer_id": ["value_is_mandatory"]})
        return self._wallets_page(external_customer_id, request)

    async def _customer_wallets(self, request: web.Request) -> web.Response:
        return self._wallets_page(request.match_info["external_id"], request)

    async def _wallet_get(self, request: web.Request) -> web.Response:
        if self._read_fails():
            return _json({"status": 503, "error": "Service Unavailable"}, 503)
        with self.lock:
            wallet = self.wallets.get(request.match_info["lago_id"])
        return _json({"wallet": dict(wallet)}) if wallet else _not_found("wallet")

    async def _wallet_transaction_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        data = (body or {}).get("wallet_transaction") or {}
        with self.lock:
            wallet = self.wallets.get(data.get("wallet_id"))
            if wallet is None:
                return _not_found("wallet")
            credits = Decimal(str(data.get("paid_credits") or "0")) + Decimal(
                str(data.get("granted_credits") or "0")
            )
            transaction = self._top_up(wallet, credits)
        return _json({"wallet_transactions": [transaction]})

    async def _public_key(self, request: web.Request) -> web.Response:
        return _json({"webhook": {"public_key": base64.b64encode(self.public_key_pem()).decode()}})
