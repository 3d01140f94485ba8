"""AWS Bedrock through the Converse API: one request shape for every model on Bedrock.

- `POST {api_base}/model/{modelId}/converse` and `/converse-stream`; api_base defaults to
  `https://bedrock-runtime.{region}.amazonaws.com`.
- Auth is SigV4 (signing name `bedrock`) from the deployment's AWS keys, or a Bedrock API key
  sent as a bearer token. Credentials come only from the deployment or the process
  environment: never botocore's default chain, which may call the instance metadata service.
- System prompts go in `system`; consecutive turns of one role are merged (Converse wants
  user and assistant to alternate); tool results are `toolResult` blocks in a user turn.
- `usage.inputTokens` excludes cache reads and writes, which come separately.
- The stream is AWS event-stream frames (decoded by apps.providers.streaming); the usage
  arrives in a `metadata` event after `messageStop`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote, unquote

import orjson
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.anthropic import AnthropicStreamTranslator, usage_from_anthropic
from apps.providers.adapters.bedrock_images import image_edit_request_body, image_request_body, image_response
from apps.providers.adapters.base import (
    Operation,
    ProviderAdapter,
    StreamFormat,
    StreamTranslator,
    TranslatedResponse,
    UpstreamRequest,
    Usage,
    chat_chunk,
    chat_completion,
    load_json_response,
    new_completion_id,
    output_token_limit,
    parse_data_url,
    tool_arguments_object,
    upstream_error,
)

SIGNING_NAME = "bedrock"
DEFAULT_REGION = "us-east-1"
REGION_ENV_VARS = ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION")
ENV_REFERENCE_PREFIX = "os.environ/"

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Converse's limits on ids and request-metadata values.
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}")
# Converse refuses toolUse/toolResult blocks without a toolConfig; when a conversation has them
# but the request offers no tools (or tool_choice is "none"), this stands in.
PLACEHOLDER_TOOL = {
    "toolSpec": {
        "name": "no_tool_available",
        "description": "No tool is available in this turn. Never call this tool; answer in text.",
        "inputSchema": {"json": {"type": "object", "properties": {}}},
    }
}
CACHE_POINT = {"cachePoint": {"type": "default"}}
# The native calls the pass-through serves: Converse, and InvokeModel for Claude (Claude Code's).
NATIVE_PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)/?")


def _misconfigured(message: str) -> GatewayError:
    return GatewayError(message, status=500, type="server_error", code="deployment_misconfigured")


def _bad_upstream(message: str) -> GatewayError:
    return GatewayError(message, status=502, type="api_error", code="bad_upstream_response")


# --- where and how to call ----------------------------------------------------------------


def _setting(value: Any) -> str | None:
    """A deployment setting as written in config: the value, or `os.environ/NAME`."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith(ENV_REFERENCE_PREFIX):
        return os.environ.get(value[len(ENV_REFERENCE_PREFIX):]) or None
    return value


def region_of(deployment) -> str:
    region = _setting(deployment.extra_params.get("aws_region_name"))
    from_env = (os.environ[name] for name in REGION_ENV_VARS if os.environ.get(name))
    return region or next(from_env, DEFAULT_REGION)


def converse_url(deployment, region: str, *, stream: bool) -> str:
    """The URL exactly as it goes on the wire.

    The model id is one path segment (ARNs hold `/`). aiohttp (yarl) then writes `%3A` back as
    `:`, a legal path character; the URL is normalized the same way here so that the SigV4
    signature covers the path actually sent (AWS canonicalizes the path it receives).
    """
    base = (deployment.api_base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
    action = "converse-stream" if stream else "converse"
    return str(yarl.URL(f"{base}/model/{quote(deployment.upstream_model, safe='')}/{action}"))


def invoke_url(deployment, region: str) -> str:
    """InvokeModel's URL (image models), normalized as converse_url's is."""
    base = (deployment.api_base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
    return str(yarl.URL(f"{base}/model/{quote(deployment.upstream_model, safe='')}/invoke"))


_DROP_PARAMS = "__gateway_drop_params"  # prepare_body's drop_params, handed to build_request in the body


@dataclass(frozen=True, slots=True)
class AwsKeys:
    access_key: str
    secret_key: str
    session_token: str | None


def auth_for(deployment) -> AwsKeys | str:
    """The deployment's AWS keys, or its Bedrock API key.

    An AWS secret set on the deployment comes first, then the deployment's API key (api_key,
    or the environment's AWS_BEARER_TOKEN_BEDROCK), then the AWS keys of the process
    environment. A missing credential is a 500: the gateway's operator must fix the
    deployment, the client can do nothing about it.
    """
    secret_key = deployment.secret_params.get("aws_secret_access_key")
    session_token = deployment.secret_params.get("aws_session_token")
    if not secret_key:
        if deployment.api_key:
            return deployment.api_key
        secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
        session_token = os.environ.get("AWS_SESSION_TOKEN")  # it belongs with the environment's keys
    if not secret_key:
        raise _misconfigured(
            "This bedrock deployment has no credentials: set aws_access_key_id and aws_secret_access_key "
            "(and aws_session_token for temporary keys), or a Bedrock API key as api_key."
        )
    access_key = _setting(deployment.extra_params.get("aws_access_key_id"))
    access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    if not access_key:
        raise _misconfigured("This bedrock deployment has an AWS secret key but no aws_access_key_id.")
    return AwsKeys(access_key, secret_key, session_token or None)


def sigv4_headers(
    url: str, headers: dict[str, str], body: bytes, keys: AwsKeys, region: str
) -> dict[str, str]:
    """`headers` plus the SigV4 ones (Authorization, X-Amz-Date, X-Amz-Security-Token) for this request."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    credentials = Credentials(keys.access_key, keys.secret_key, keys.session_token)
    SigV4Auth(credentials, SIGNING_NAME, region).add_auth(request)
    return dict(request.headers.items())


# --- OpenAI request → Converse ----------------------------------------------------------


def text_blocks(text: str | None) -> list[dict]:
    """A text block, or none for blank text: Converse refuses blank text blocks (and models often
    send whitespace before a tool call, which clients send back)."""
    return [{"text": text}] if text and not text.isspace() else []


def _text_of(content: Any, param: str) -> str:
    """A message's text: a string, or the text (and refusal) parts of a list."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of content parts.", param=param)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise invalid_request(
                f"bedrock takes only text parts in '{param}'; part {index} is {kind!r}.",
                param=f"{param}[{index}]",
            )
    return "".join(texts)


def _image_block(part: dict, param: str) -> dict:
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise invalid_request(f"'{param}.image_url.url' is required.", param=f"{param}.image_url.url")
    if not url.startswith("data:"):
        raise invalid_request(
            "bedrock takes images only as base64 data URLs (data:image/png;base64,...), not links.",
            param=f"{param}.image_url.url",
            code="unsupported_image_url",
        )
    parsed = parse_data_url(url, param=f"{param}.image_url.url")
    image_format = IMAGE_FORMATS.get(parsed.media_type)
    if image_format is None:
        raise invalid_request(
            f"bedrock takes png, jpeg, gif or webp images, not {parsed.media_type}.",
            param=f"{param}.image_url.url",
            code="unsupported_image_type",
        )
    # Converse over REST takes the bytes base64-encoded: the data URL's payload as it is.
    return {"image": {"format": image_format, "source": {"bytes": parsed.data}}}


def _user_blocks(content: Any, param: str) -> list[dict]:
    if content is None or isinstance(content, str):
        return text_blocks(content)
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of content parts.", param=param)
    blocks: list[dict] = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks += text_blocks(part["text"])
        elif kind == "image_url":
            blocks.append(_image_block(part, where))
        else:
            raise invalid_request(f"bedrock does not take {kind!r} content parts.", param=where)
        if part.get("cache_control") and blocks:
            blocks.append(CACHE_POINT)
    return blocks


def tool_use_id(call_id: Any, param: str) -> str:
    """An id Converse accepts; ids from other providers that it would refuse get a stable stand-in."""
    if not isinstance(call_id, str) or not call_id:
        raise invalid_request(f"'{param}' is required.", param=param)
    if TOOL_USE_ID.fullmatch(call_id):
        return call_id
    return "tooluse_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def _tool_use_block(call: Any, param: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid_request(f"'{param}.function.name' is required.", param=f"{param}.function.name")
    tool_input = tool_arguments_object(function.get("arguments"), param=f"{param}.function.arguments")
    return {"toolUse": {"toolUseId": tool_use_id(call.get("id"), f"{param}.id"),
                        "name": function["name"], "input": tool_input}}


def _tool_result_block(message: dict, param: str) -> dict:
    text = _text_of(message.get("content"), f"{param}.content")
    return {
        "toolResult": {
            "toolUseId": tool_use_id(message.get("tool_call_id"), f"{param}.tool_call_id"),
            "content": text_blocks(text),
            "status": "success",
        }
    }


def _assistant_blocks(message: dict, param: str) -> list[dict]:
    if message.get("function_call"):
        raise invalid_request("bedrock does not take the legacy 'function_call'; use 'tool_calls'.",
                              param=f"{param}.function_call")
    text = _text_of(message.get("content"), f"{param}.content")
    blocks = text_blocks(text)
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise invalid_request(f"'{param}.tool_calls' must be an array.", param=f"{param}.tool_calls")
    blocks += [_tool_use_block(call, f"{param}.tool_calls[{i}]") for i, call in enumerate(tool_calls)]
    return blocks


def _turn(message: dict, param: str) -> tuple[str, list[dict]]:
    """(Converse role, content blocks) of one OpenAI message; system prompts get the role "system"."""
    role = message["role"]
    if role in ("system", "developer"):
        return "system", text_blocks(_text_of(message.get("content"), f"{param}.content"))
    if role == "user":
        return "user", _user_blocks(message.get("content"), f"{param}.content")
    if role == "assistant":
        return "assistant", _assistant_blocks(message, param)
    if role == "tool":
        return "user", [_tool_result_block(message, param)]  # Converse takes tool results from the user
    raise invalid_request(f"bedrock does not take messages with role {role!r}.", param=f"{param}.role")


def converse_messages(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(system blocks, messages): roles alternating, consecutive same-role turns merged."""
    system: list[dict] = []
    turns: list[dict] = []
    for index, message in enumerate(messages):
        role, blocks = _turn(message, f"messages[{index}]")
        if message.get("cache_control") and blocks:
            blocks.append(CACHE_POINT)
        if role == "system":
            system += blocks
        elif not blocks:
            continue  # Converse refuses empty turns
        elif turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _has_tool_blocks(turns: list[dict]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


def _tool_spec(tool: Any, param: str) -> dict:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
        raise invalid_request("bedrock takes only function tools.", param=param)
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise invalid_request(f"'{param}.function.name' is required.", param=f"{param}.function.name")
    spec: dict[str, Any] = {
        "name": function["name"],
        "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    if function.get("strict") is True:
        spec["strict"] = True
    return {"toolSpec": spec}


def _tool_choice(choice: Any, tool_names: list[str]) -> dict:
    if choice in (None, "auto"):
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise invalid_request(
            "'tool_choice' must be none, auto, required or "
            '{"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
        )
    if name not in tool_names:
        raise invalid_request(
            f"'tool_choice' names the tool {name!r}, which is not in 'tools'.", param="tool_choice"
        )
    return {"tool": {"name": name}}


def tool_config(body: dict, turns: list[dict]) -> dict | None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools")
    choice = body.get("tool_choice")
    if choice == "none":
        tools = []  # Converse has no "none": the model is offered no tools instead
    elif not tools and choice not in (None, "auto"):
        raise invalid_request("'tool_choice' needs 'tools'.", param="tool_choice")
    if not tools:
        return {"tools": [PLACEHOLDER_TOOL]} if _has_tool_blocks(turns) else None
    specs = [_tool_spec(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    return {"tools": specs, "toolChoice": _tool_choice(choice, [s["toolSpec"]["name"] for s in specs])}


def _unit_interval(body: dict, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise invalid_request(f"bedrock takes '{name}' between 0 and 1.", param=name)
    return value


def inference_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    max_tokens = output_token_limit(body, require_positive_int=True)
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if (temperature := _unit_interval(body, "temperature")) is not None:
        config["temperature"] = temperature
    if (top_p := _unit_interval(body, "top_p")) is not None:
        config["topP"] = top_p
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid_request("'stop' must be a string or an array of strings.", param="stop")
        if stops := [s for s in stops if s]:
            config["stopSequences"] = stops
    return config


def output_config(response_format: Any) -> dict | None:
    """response_format json_schema → Converse structured output (the schema goes as a JSON string)."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if response_format is None or kind == "text":
        return None
    schema = response_format.get("json_schema") if kind == "json_schema" else None
    if not isinstance(schema, dict) or not isinstance(schema.get("schema"), dict):
        raise invalid_request(
            "bedrock takes response_format of type text or json_schema (with a schema).",
            param="response_format",
        )
    definition: dict[str, Any] = {"schema": orjson.dumps(schema["schema"]).decode()}
    for key in ("name", "description"):
        if isinstance(schema.get(key), str) and schema[key]:
            definition[key] = schema[key]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


def request_metadata(user: Any) -> dict | None:
    """OpenAI's `user` → requestMetadata, which Bedrock records in its invocation logs."""
    if user is None or user == "":
        return None
    if not isinstance(user, str) or not METADATA_VALUE.fullmatch(user):
        raise invalid_request(
            "bedrock takes 'user' of at most 256 letters, digits, spaces and :_@$#=/+,.- characters.",
            param="user",
        )
    return {"user": user}


def converse_body(body: dict) -> dict:
    system, messages = converse_messages(body["messages"])
    payload: dict[str, Any] = {"messages": messages}
    if system:
        payload["system"] = system
    optional = {
        "inferenceConfig": inference_config(body),
        "toolConfig": tool_config(body, messages),
        "outputConfig": output_config(body.get("response_format")),
        "requestMetadata": request_metadata(body.get("user")),
    }
    payload.update({key: value for key, value in optional.items() if value})
    return payload


# --- Converse → OpenAI ------------------------------------------------------------------


def usage_from_converse(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    cache_read = int(raw.get("cacheReadInputTokens") or 0)
    cache_write = int(raw.get("cacheWriteInputTokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("inputTokens") or 0) + cache_read + cache_write,
        completion_tokens=int(raw.get("outputTokens") or 0),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        reported=True,
    )


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop")


def _reasoning_text(block: Any) -> str:
    reasoning = block.get("reasoningText") if isinstance(block, dict) else None
    return (reasoning.get("text") or "") if isinstance(reasoning, dict) else ""


def assistant_message(content: list) -> dict:
    texts, reasoning, tool_calls = [], [], []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            tool_use = block["toolUse"]
            tool_calls.append({
                "id": tool_use.get("toolUseId"),
                "type": "function",
                "function": {"name": tool_use.get("name"),
                             "arguments": orjson.dumps(tool_use.get("input") or {}).decode()},
            })
        elif "reasoningContent" in block:
            reasoning.append(_reasoning_text(block["reasoningContent"]))
    text = "".join(texts) if texts or not tool_calls else None
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    return message


class ConverseStreamTranslator(StreamTranslator):
    """ConverseStream events → OpenAI chunks.

    The role goes out with the first chunk that carries something, not on messageStart, so an
    exception frame right after messageStart is still an ordinary error response with its status.
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        self.completion_id = new_completion_id()
        self.created = int(time.time())
        self.model = model
        self.finish_reason: str | None = None
        self._role_sent = False
        self._tool_index_by_block: dict[Any, int] = {}

    def chunk(self, delta: dict, finish: str | None = None) -> dict:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        return chat_chunk(self.completion_id, self.model, self.created, delta, finish)

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _bad_upstream(f"bedrock sent a {event} event that is not JSON.") from None
        if not isinstance(payload, dict):
            return []
        if event == "contentBlockStart":
            return self._block_start(payload)
        if event == "contentBlockDelta":
            return self._block_delta(payload)
        if event == "messageStop":
            self.finish_reason = finish_reason(payload.get("stopReason"))
            return [self.chunk({}, self.finish_reason)]
        if event == "metadata":
            self.usage = usage_from_converse(payload.get("usage"))
            self.done = True
        return []  # messageStart, contentBlockStop, and events this gateway does not use

    def _block_start(self, payload: dict) -> list[dict]:
        tool_use = (payload.get("start") or {}).get("toolUse")
        if not isinstance(tool_use, dict):
            return []
        index = len(self._tool_index_by_block)
        self._tool_index_by_block[payload.get("contentBlockIndex")] = index
        return [self.chunk({"tool_calls": [{
            "index": index, "id": tool_use.get("toolUseId"), "type": "function",
            "function": {"name": tool_use.get("name"), "arguments": ""},
        }]})]

    def _block_delta(self, payload: dict) -> list[dict]:
        delta = payload.get("delta") or {}
        if delta.get("text"):
            return [self.chunk({"content": delta["text"]})]
        if isinstance(delta.get("toolUse"), dict):
            index = self._tool_index_by_block.get(payload.get("contentBlockIndex"))
            if index is None:
                raise _bad_upstream("bedrock sent tool input for a content block that never started.")
            fragment = delta["toolUse"].get("input") or ""
            if not fragment:
                return []
            return [self.chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and reasoning.get("text"):
            return [self.chunk({"reasoning_content": reasoning["text"]})]
        return []

    def finish(self) -> list[dict]:
        if self.finish_reason is None:
            raise GatewayError(
                "The bedrock stream ended before its messageStop event.",
                status=502, type="api_error", code="upstream_disconnected",
            )
        return [{"id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "choices": [], "usage": self.usage.openai()}]


class BedrockAdapter(ProviderAdapter):
    name = "bedrock"
    default_api_base = None  # depends on the region: built in build_request
    api_key_env = "AWS_BEARER_TOKEN_BEDROCK"  # a Bedrock API key, AWS's own variable name
    stream_format = StreamFormat.AWS_EVENTSTREAM
    chat_params = frozenset(
        {
            "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop",
            "max_tokens", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls",
            "response_format", "user",
        }
    )

    operations = frozenset({Operation.CHAT, Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT})

    def prepare_body(self, operation, body, *, drop_params):
        body = super().prepare_body(operation, body, drop_params=drop_params)
        if operation in (Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT):
            # Checked in build_request, which knows the model's family (each has its own body).
            return {**body, _DROP_PARAMS: drop_params}
        # Values Converse cannot honour, though the parameter itself is fine.
        refused = {
            "n": body.get("n") not in (None, 1),
            "parallel_tool_calls": body.get("parallel_tool_calls") is False,
            "response_format": isinstance(body.get("response_format"), dict)
            and body["response_format"].get("type") == "json_object",
        }
        for param, is_refused in refused.items():
            if is_refused and not drop_params:
                raise invalid_request(
                    f"bedrock does not support {param}={orjson.dumps(body[param]).decode()}. "
                    "Remove it, or set drop_params to drop unsupported parameters.",
                    param=param,
                    code="unsupported_parameter",
                )
            if is_refused or param in ("n", "parallel_tool_calls"):
                body.pop(param, None)
        return body

    async def build_request(self, operation, deployment, body, *, stream):
        region = region_of(deployment)
        if operation in (Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT):
            body = dict(body)
            drop_params = bool(body.pop(_DROP_PARAMS, False))
            url = invoke_url(deployment, region)
            translate = image_request_body if operation is Operation.IMAGE_GENERATION else image_edit_request_body
            payload = orjson.dumps(translate(deployment.upstream_model, body, drop_params=drop_params))
        else:
            url = converse_url(deployment, region, stream=stream)
            payload = orjson.dumps(converse_body(body))
        headers = {"Content-Type": "application/json"}
        auth = auth_for(deployment)
        if isinstance(auth, str):
            headers["Authorization"] = f"Bearer {auth}"
        else:
            headers = sigv4_headers(url, headers, payload, auth, region)
        return UpstreamRequest(url=url, headers=headers, body=payload)

    def translate_response(self, operation, deployment, raw):
        payload = load_json_response(self.name, raw)
        if operation in (Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT):
            return image_response(deployment.upstream_model, payload)
        output = payload.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise _bad_upstream("bedrock returned a response without output.message.content.")
        usage = usage_from_converse(payload.get("usage"))
        body = chat_completion(
            new_completion_id(), deployment.upstream_model, assistant_message(message["content"]),
            finish_reason(payload.get("stopReason")), usage,
        )
        return TranslatedResponse(body=body, usage=usage)

    def stream_translator(self, operation, deployment):
        return ConverseStreamTranslator(deployment.upstream_model)

    # --- the pass-through: Converse as it is, and InvokeModel with Claude's Messages bodies ---

    passthrough = True
    passthrough_paths = NATIVE_PATH

    def passthrough_model(self, path, body):
        match = NATIVE_PATH.fullmatch(path)
        return unquote(match.group(1)) if match else None

    def passthrough_operation(self, path):
        return Operation.CHAT if NATIVE_PATH.fullmatch(path) else None

    def passthrough_usage(self, path, deployment, raw):
        if NATIVE_PATH.fullmatch(path).group(2) == "invoke":
            return usage_from_anthropic(load_json_response(self.name, raw).get("usage"))
        return super().passthrough_usage(path, deployment, raw)

    def passthrough_stream_translator(self, path, deployment):
        if NATIVE_PATH.fullmatch(path).group(2) == "invoke-with-response-stream":
            return InvokeStreamUsage(AnthropicStreamTranslator(self.name, deployment.upstream_model))
        return super().passthrough_stream_translator(path, deployment)

    def passthrough_stream_error(self, message: str) -> bytes:
        return exception_frame("internalServerException", message)

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        action = NATIVE_PATH.fullmatch(path).group(2)
        if action.startswith("invoke") and "anthropic." not in deployment.upstream_model:
            # Each model family has its own invoke body and usage; only Claude's are read here.
            raise invalid_request(
                f"/bedrock/.../{action} is served for Claude models; use converse for "
                f"{deployment.upstream_model}.", param="model", code="unsupported_operation",
            )
        region = region_of(deployment)
        base = (deployment.api_base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        url = str(yarl.URL(f"{base}/model/{quote(deployment.upstream_model, safe='')}/{action}"))
        own = {"Content-Type": "application/json"}
        if "accept" in headers:
            own["Accept"] = headers["accept"]
        auth = auth_for(deployment)
        if isinstance(auth, str):
            own["Authorization"] = f"Bearer {auth}"
        else:
            own = sigv4_headers(url, own, body, auth, region)  # signs the body exactly as sent
        return UpstreamRequest(url=url, headers=own, body=body)

    def translate_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
        # AWS's front door (auth, signature) writes "Message"; Bedrock itself writes "message".
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and "message" not in payload and isinstance(payload.get("Message"), str):
            raw = orjson.dumps({"message": payload["Message"]})
        return upstream_error(self.name, status, raw, headers)


class InvokeStreamUsage(StreamTranslator):
    """InvokeModelWithResponseStream: each `chunk` event carries one event of the model's own
    stream, base64-encoded in its `bytes` (Claude's Messages events, read by their translator)."""

    def __init__(self, inner: StreamTranslator) -> None:
        self.inner = inner
        self.done = False

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        if event != "chunk":
            return []
        inner = base64.b64decode(orjson.loads(data)["bytes"])
        return self.inner.feed(orjson.loads(inner).get("type"), inner)


def exception_frame(exception: str, message: str) -> bytes:
    """One AWS event-stream exception message (prelude, headers, payload, both CRCs)."""
    headers = [(":exception-type", exception), (":content-type", "application/json"),
               (":message-type", "exception")]
    encoded = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + len(value.encode()).to_bytes(2, "big") + value.encode()
        for name, value in headers
    )
    payload = orjson.dumps({"message": message})
    prelude = (16 + len(encoded) + len(payload)).to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    frame = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return frame + zlib.crc32(frame).to_bytes(4, "big")
