"""Token counts where no provider reports them.

An estimate (about four characters a token, the usual figure for English with
OpenAI's and Anthropic's tokenizers) until the exact offline tokenizers land
with the price catalog; callers say so where they use it.
"""

from __future__ import annotations

import math


import orjson

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # role and separators
TOKENS_PER_IMAGE = 1_000


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: list[dict], tools: list[dict] | None = None) -> int:
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    total += estimate_text_tokens(part.get("text", ""))
                elif part.get("type") == "image_url":
                    total += TOKENS_PER_IMAGE
        for call in message.get("tool_calls") or []:
            total += estimate_text_tokens(orjson.dumps(call).decode())
    if tools:
        total += estimate_text_tokens(orjson.dumps(tools).decode())
    return total


