"""A Batch API input file (JSONL): read, checked as OpenAI checks it, rewritten for one deployment.

Each line is `{"custom_id", "method": "POST", "url", "body"}`; every line names the same url and
the same model (OpenAI refuses a file that mixes them). The gateway checks this at upload, with a
400 naming the line, rather than letting the upstream fail the batch later: the model decides
which deployment stores the file, and the file's lines decide what the batch reserves.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.providers.registry import Deployment
from apps.routing.limits import max_cost_nanos
from apps.spend.pricing import batch_prices, prices_in_force

MAX_LINES = 50_000  # OpenAI's limit of requests per batch
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")


@dataclass(slots=True)
class BatchInput:
    model: str
    endpoint: str  # OpenAI's spelling
    lines: list[dict]


def _line_error(number: int, message: str) -> GatewayError:
    return invalid_request(f"Line {number} of the batch file: {message}", param="file", code="invalid_batch_file")


def batch_input_parse(content: bytes) -> BatchInput:
    """The file's lines, or a 400 naming the first wrong one."""
    lines: list[dict] = []
    seen: set[str] = set()
    model = endpoint = None
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(lines) >= MAX_LINES:
            raise invalid_request(f"A batch file holds at most {MAX_LINES} requests.", param="file",
                                  code="invalid_batch_file")
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _line_error(number, "not a JSON object.") from None
        if not isinstance(line, dict):
            raise _line_error(number, "not a JSON object.")
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise _line_error(number, "'custom_id' must be a non-empty string.")
        if custom_id in seen:
            raise _line_error(number, f"the custom_id '{custom_id[:64]}' is used twice; each must be unique.")
        seen.add(custom_id)
        if line.get("method") != "POST":
            raise _line_error(number, "'method' must be POST.")
        url = line.get("url")
        if url not in BATCH_ENDPOINTS:
            raise _line_error(number, f"'url' must be one of {', '.join(BATCH_ENDPOINTS)}.")
        body = line.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            raise _line_error(number, "'body' must be an object naming its 'model'.")
        if body.get("stream"):
            raise _line_error(number, "a batch request cannot be streamed.")
        if endpoint is None:
            model, endpoint = body["model"], url
        elif url != endpoint:
            raise _line_error(number, f"every line must name the same url ({endpoint}).")
        elif body["model"] != model:
            raise _line_error(number, f"every line must name the same model ({model}): a batch runs on one.")
        lines.append(line)
    if not lines:
        raise invalid_request("The batch file holds no request.", param="file", code="invalid_batch_file")
    return BatchInput(model=model, endpoint=endpoint, lines=lines)


def batch_input_for(parsed: BatchInput, deployment: Deployment) -> bytes:
    """The file as the deployment takes it: each line's model its own, its url in its spelling."""
    adapter = deployment.adapter
    model = adapter.batch_line_model(deployment)
    url = adapter.batch_endpoint(parsed.endpoint)
    return b"".join(
        orjson.dumps({**line, "url": url, "body": {**line["body"], "model": model}}) + b"\n" for line in parsed.lines
    )


def batch_max_cost_nanos(parsed: BatchInput, deployment: Deployment) -> int:
    """The most the batch can cost: each line's prompt and its whole output allowance, at the
    deployment's batch prices (its list prices when it has none)."""
    prices = prices_in_force(deployment)
    discounted = batch_prices(prices) if prices is not None else None
    total = 0
    for line in parsed.lines:
        body = line["body"]
        if "max_output_tokens" in body and "max_tokens" not in body:  # the Responses API's name
            body = {**body, "max_tokens": body["max_output_tokens"]}
        total += max_cost_nanos(deployment, body, prices=discounted or prices)
    return total
