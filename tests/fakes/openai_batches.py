"""A strict fake of OpenAI's (and Azure OpenAI's) Files and Batch APIs.

Speaks the public API reference's wire format and refuses what the real service refuses: a
wrong key (401), an unknown argument ("Unrecognized request argument supplied"), a purpose it
does not know, a completion window other than 24h, an endpoint it does not batch, a file that
is not a batch file (400 naming the param), an unknown id (404). A batch whose input lines
are wrong (not JSON, no custom_id, a custom_id twice, a url other than the batch's endpoint,
more than one model, on Azure a model that is not a deployment) fails validation, as the real
one does: status "failed" with the lines' errors.

OpenAI paths are under /v1 with a Bearer key; Azure's under /openai with `api-version` in the
query (2024-10-21 or later) and the key in `api-key`, and its endpoints spelled without /v1.

Batches do not run by themselves: a test calls `finish(batch_id)` (every line answered, with
usage) or `finish(batch_id, failed={"custom-id"})`; a cancelled batch ends when `finish` is
called, with only its first `completed` lines answered. Every request is recorded.
"""

from __future__ import annotations

import itertools
import time

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

API_KEY = "sk-fake-openai-batches"
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")
# Each answered line's usage: chat answers 20 prompt tokens (4 of them cached) and 12
# completion tokens (fewer if `max_tokens` is lower); embeddings 8 prompt tokens.
CHAT_PROMPT_TOKENS = 20
CHAT_CACHED_TOKENS = 4
CHAT_COMPLETION_TOKENS = 12
EMBEDDING_TOKENS = 8
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-fake{next(_ids):06d}" if prefix == "file" else f"{prefix}_fake{next(_ids):06d}"


def error(status: int, message: str, *, param: str | None = None, code: str | None = None,
          error_type: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": error_type, "param": param, "code": code}},
                             status=status)


class FakeBatchUpstream(FakeServer):
    def __init__(self, *, azure: bool = False, azure_deployments: tuple[str, ...] = ()) -> None:
        super().__init__(client_max_size=256 * 1024 * 1024)
        self.azure = azure
        self.azure_deployments = set(azure_deployments)
        self.requests: list[dict] = []
        self.files: dict[str, dict] = {}  # id -> file object
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        root = "/openai" if azure else "/v1"
        self.app.router.add_post(f"{root}/files", self.file_upload)
        self.app.router.add_get(f"{root}/files", self.file_list)
        self.app.router.add_get(f"{root}/files/{{file_id}}", self.file_retrieve)
        self.app.router.add_delete(f"{root}/files/{{file_id}}", self.file_delete)
        self.app.router.add_get(f"{root}/files/{{file_id}}/content", self.file_content)
        self.app.router.add_post(f"{root}/batches", self.batch_create)
        self.app.router.add_get(f"{root}/batches", self.batch_list)
        self.app.router.add_get(f"{root}/batches/{{batch_id}}", self.batch_retrieve)
        self.app.router.add_post(f"{root}/batches/{{batch_id}}/cancel", self.batch_cancel)
        self.base_url = self.url + "/v1"

    # --- the wire -----------------------------------------------------------------------------

    def _refused(self, request: web.Request) -> web.Response | None:
        self.requests.append({"method": request.method, "path": request.path_qs, "headers": dict(request.headers)})
        if self.azure:
            version = request.query.get("api-version", "")
            if not version:
                return error(404, "Resource not found", code="404")
            if version < "2024-10-21":
                return error(400, f"The API version '{version}' does not support batches.", code="BadRequest")
            if request.headers.get("api-key") != API_KEY:
                return error(401, "Access denied due to invalid subscription key.", code="401")
        elif request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def _endpoint(self, endpoint: str) -> str:
        """OpenAI's spelling of an endpoint this fake was sent (Azure's has no /v1)."""
        return "/v1" + endpoint if self.azure and not endpoint.startswith("/v1") else endpoint

    @staticmethod
    def _listed(items: list[dict], request: web.Request) -> web.Response:
        items = sorted(items, key=lambda item: item["created_at"], reverse=True)
        after = request.query.get("after")
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        limit = int(request.query.get("limit", "20"))
        page = items[:limit]
        return web.json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})

    # --- files --------------------------------------------------------------------------------

    async def file_upload(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        if not request.content_type.startswith("multipart/form-data"):
            return error(400, "The request must be multipart/form-data.")
        form = await request.post()
        unknown = sorted(set(form) - {"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"})
        if unknown:
            return error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        purpose = form.get("purpose")
        if purpose not in PURPOSES:
            return error(400, f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", param="purpose")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return error(400, "Missing required parameter: 'file'.", param="file")
        content = upload.file.read()
        if purpose == "batch" and not upload.filename.endswith(".jsonl"):
            return error(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        file_object = {
            "id": _id("file"), "object": "file", "bytes": len(content), "created_at": int(time.time()),
            "filename": upload.filename, "purpose": purpose, "status": "processed", "expires_at": None,
            "status_details": None,
        }
        self.files[file_object["id"]] = file_object
        self.contents[file_object["id"]] = content
        self.requests[-1]["body"] = content
        self.requests[-1]["purpose"] = purpose
        return web.json_response(file_object)

    def _file(self, request: web.Request) -> dict | web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return error(404, f"No such File object: {file_id}", param="id")
        return self.files[file_id]

    async def file_list(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        purpose = request.query.get("purpose")
        return self._listed([f for f in self.files.values() if not purpose or f["purpose"] == purpose], request)

    async def file_retrieve(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        found = self._file(request)
        return found if isinstance(found, web.Response) else web.json_response(found)

    async def file_content(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        found = self._file(request)
        if isinstance(found, web.Response):
            return found
        return web.Response(body=self.contents[found["id"]], content_type="application/octet-stream")

    async def file_delete(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        found = self._file(request)
        if isinstance(found, web.Response):
            return found
        del self.files[found["id"]]
        del self.contents[found["id"]]
        return web.json_response({"id": found["id"], "object": "file", "deleted": True})

    # --- batches ------------------------------------------------------------------------------

    async def batch_create(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return error(400, "We could not parse the JSON body of your request.")
        self.requests[-1]["json"] = body
        unknown = sorted(set(body) - {"input_file_id", "endpoint", "completion_window", "metadata",
                                      "output_expires_after"})
        if unknown:
            return error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str):
                return error(400, f"Missing required parameter: '{name}'.", param=name)
        if body["completion_window"] != "24h":
            return error(400, f"'{body['completion_window']}' is not one of ['24h'] - 'completion_window'",
                         param="completion_window")
        endpoint = body["endpoint"]
        allowed = [e.removeprefix("/v1") for e in ENDPOINTS] if self.azure else list(ENDPOINTS)
        if endpoint not in allowed:
            return error(400, f"'{endpoint}' is not one of {allowed} - 'endpoint'", param="endpoint")
        file_object = self.files.get(body["input_file_id"])
        if file_object is None:
            return error(404, f"No such File object: {body['input_file_id']}", param="input_file_id")
        if file_object["purpose"] != "batch":
            return error(400, f"The file {file_object['id']} was not uploaded with purpose 'batch'.",
                         param="input_file_id")
        now = int(time.time())
        batch = {
            "id": _id("batch"), "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": file_object["id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
            "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
        }
        lines, errors = self._validated_lines(self.contents[file_object["id"]], endpoint)
        if errors:
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
        else:
            batch.update(status="in_progress", in_progress_at=now)
            batch["request_counts"]["total"] = len(lines)
        batch["_lines"] = lines
        self.batches[batch["id"]] = batch
        return web.json_response(self._public(batch))

    def _validated_lines(self, content: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
        lines, errors, seen, models = [], [], set(), set()
        for number, raw in enumerate(content.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
                               "param": None, "line": number})
                continue
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                errors.append({"code": "missing_required_parameter", "message": "Missing custom_id.",
                               "param": "custom_id", "line": number})
                continue
            if line["custom_id"] in seen:
                errors.append({"code": "duplicate_custom_id", "message": "The custom_id for this request is a "
                               "duplicate of another request.", "param": "custom_id", "line": number})
            seen.add(line["custom_id"])
            if line.get("method") != "POST":
                errors.append({"code": "invalid_value", "message": "Method must be POST.", "param": "method",
                               "line": number})
            if line.get("url") != endpoint:
                errors.append({"code": "mismatched_endpoint", "message": f"The url does not match the batch's "
                               f"endpoint {endpoint}.", "param": "url", "line": number})
            body = line.get("body")
            model = body.get("model") if isinstance(body, dict) else None
            if not isinstance(model, str):
                errors.append({"code": "missing_required_parameter", "message": "Missing body.model.",
                               "param": "body.model", "line": number})
                continue
            if self.azure and model not in self.azure_deployments:
                errors.append({"code": "model_not_found", "message": f"The deployment {model} does not exist.",
                               "param": "body.model", "line": number})
            models.add(model)
            lines.append(line)
        if len(models) > 1:
            errors.append({"code": "model_mismatch", "message": "The batch input file must contain requests for a "
                           "single model.", "param": "body.model", "line": None})
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "The batch input file is empty.", "param": None,
                           "line": None})
        return lines, errors

    @staticmethod
    def _public(batch: dict) -> dict:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _batch(self, request: web.Request) -> dict | web.Response:
        batch_id = request.match_info["batch_id"]
        if batch_id not in self.batches:
            return error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return self.batches[batch_id]

    async def batch_retrieve(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        found = self._batch(request)
        return found if isinstance(found, web.Response) else web.json_response(self._public(found))

    async def batch_list(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return self._listed([self._public(b) for b in self.batches.values()], request)

    async def batch_cancel(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        found = self._batch(request)
        if isinstance(found, web.Response):
            return found
        if found["status"] not in ("validating", "in_progress", "finalizing"):
            return error(409, f"Cannot cancel a batch with status '{found['status']}'.")
        found.update(status="cancelling", cancelling_at=int(time.time()))
        return web.json_response(self._public(found))

    # --- what a test drives -------------------------------------------------------------------

    def finish(self, batch_id: str, *, failed: set[str] = frozenset(), completed: int | None = None,
               status: str | None = None) -> dict:
        """End a batch: answer its lines (the first `completed` of them for a cancelled or expired
        batch), the `failed` custom ids with a 400; write its output and error files."""
        batch = self.batches[batch_id]
        lines = batch["_lines"]
        if batch["status"] == "cancelling":
            status = "cancelled"
        status = status or "completed"
        answered = lines if completed is None else lines[:completed]
        outputs, errors = [], []
        for line in answered:
            request_id = f"req_{next(_ids)}"
            if line["custom_id"] in failed:
                body = {"error": {"message": "fake line error", "type": "invalid_request_error", "param": None,
                                  "code": None}}
                errors.append({"id": f"batch_req_{next(_ids)}", "custom_id": line["custom_id"],
                               "response": {"status_code": 400, "request_id": request_id, "body": body},
                               "error": None})
            else:
                outputs.append({"id": f"batch_req_{next(_ids)}", "custom_id": line["custom_id"],
                                "response": {"status_code": 200, "request_id": request_id,
                                             "body": self._answer(batch["endpoint"], line["body"])},
                                "error": None})
        now = int(time.time())
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                content = b"".join(orjson.dumps(row) + b"\n" for row in rows)
                file_object = {"id": _id("file"), "object": "file", "bytes": len(content), "created_at": now,
                               "filename": f"{batch_id}_{kind[:-8]}.jsonl", "purpose": "batch_output",
                               "status": "processed", "expires_at": None, "status_details": None}
                self.files[file_object["id"]] = file_object
                self.contents[file_object["id"]] = content
                batch[kind] = file_object["id"]
        batch["status"] = status
        batch[f"{status}_at"] = now
        batch["finalizing_at"] = batch["finalizing_at"] or now
        batch["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
        return self._public(batch)

    def _answer(self, endpoint: str, body: dict) -> dict:
        endpoint = self._endpoint(endpoint)
        model = body["model"]
        if endpoint == "/v1/embeddings":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            return {"object": "list", "model": model,
                    "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(count)],
                    "usage": {"prompt_tokens": EMBEDDING_TOKENS, "total_tokens": EMBEDDING_TOKENS}}
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        completion = min(limit, CHAT_COMPLETION_TOKENS) if limit else CHAT_COMPLETION_TOKENS
        usage = {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": completion,
                 "total_tokens": CHAT_PROMPT_TOKENS + completion,
                 "prompt_tokens_details": {"cached_tokens": CHAT_CACHED_TOKENS, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
        return {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": usage}
