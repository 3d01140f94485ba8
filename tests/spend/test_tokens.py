"""Token counting with tiktoken, offline: the encodings ship in the repo and are checked."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.spend import tokens

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def loaded():
    tokens.preload_encodings("o200k_base", "cl100k_base")


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_shipped_encodings_are_byte_for_byte_the_ones_tiktoken_pins(name):
    from tiktoken_ext import openai_public

    url, sha256 = tokens._ENCODING_FILES[name]
    path = tokens.ENCODINGS_DIR / hashlib.sha1(url.encode()).hexdigest()  # tiktoken's cache name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    constructor = inspect.getsource(getattr(openai_public, name))
    assert url in constructor and sha256 in constructor  # the same URL and hash as tiktoken's own


def test_counts_are_exact():
    assert tokens.estimate_text_tokens("Hello, world!") == 4  # "Hello" "," " world" "!"
    assert tokens.estimate_text_tokens("Hello, world!", model="gpt-4") == 4
    assert tokens.estimate_text_tokens("") == 0
    long_word = "antidisestablishmentarianism " * 50
    assert tokens.estimate_text_tokens(long_word) != math.ceil(len(long_word) / tokens.CHARS_PER_TOKEN)


def test_models_get_their_encoding():
    assert tokens.encoding_name_for("gpt-4o") == "o200k_base"
    assert tokens.encoding_name_for("azure/gpt-4.1-mini") == "o200k_base"
    assert tokens.encoding_name_for("gpt-3.5-turbo") == "cl100k_base"
    assert tokens.encoding_name_for("text-embedding-3-small") == "cl100k_base"
    assert tokens.encoding_name_for("openai/gpt-oss-120b") == "o200k_base"  # harmony: same ordinary tokens
    assert tokens.encoding_name_for("claude-sonnet-4-5") == "o200k_base"  # no public tokenizer: the default
    assert tokens.encoding_name_for(None) == "o200k_base"


def test_prompt_is_counted_as_openai_chat_format():
    encoding = tokens.get_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x": 1}'}}]},
    ]
    texts = ["system", "Be terse.", "user", "What is in this image?", "assistant", "look", '{"x": 1}']
    expected = 3 * 3 + 3 + tokens.TOKENS_PER_IMAGE + sum(len(encoding.encode(t)) for t in texts)
    assert tokens.estimate_prompt_tokens(messages) == expected
    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    assert tokens.estimate_prompt_tokens(messages, tools) > expected
    assert tokens.estimate_prompt_tokens([]) == 0


def test_the_rough_estimate_stays_four_characters_a_token():
    messages = [{"role": "user", "content": "x" * 400}]
    assert tokens.rough_prompt_tokens(messages) == 3 + 3 + 1 + 100


def test_on_the_event_loop_a_large_prompt_is_never_counted_synchronously():
    big = [{"role": "user", "content": "word " * (tokens.SYNC_EXACT_MAX_CHARS // 5 + 100)}]

    async def counts():
        return tokens.estimate_prompt_tokens(big), await tokens.count_prompt_tokens(big)

    estimated, exact = asyncio.run(counts())
    assert estimated == tokens.rough_prompt_tokens(big)  # chars/4: no long stall of the loop
    assert exact == tokens.estimate_prompt_tokens(big)  # off the loop, counted exactly
    assert exact != estimated


def test_on_the_event_loop_an_encoding_loads_in_the_background(monkeypatch):
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(tokens, "_loading", set())

    async def first_count():
        return tokens.estimate_text_tokens("Hello, world!")

    assert asyncio.run(first_count()) == math.ceil(len("Hello, world!") / 4)  # not loaded yet: no wait
    for _ in range(200):
        if tokens._encodings.get("o200k_base") is not None:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert asyncio.run(first_count()) == 4


def _run_offline(code: str, cache_dir: str | None) -> subprocess.CompletedProcess:
    """Python in a fresh process where any download by tiktoken fails the run."""
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    if cache_dir is not None:
        env["TIKTOKEN_CACHE_DIR"] = cache_dir
    guard = (
        "import tiktoken.load\n"
        "def _no_network(path):\n"
        "    if '://' in path: raise SystemExit('tiktoken tried to download ' + path)\n"
        "    return open(path, 'rb').read()\n"
        "tiktoken.load.read_file = _no_network\n"
    )
    return subprocess.run([sys.executable, "-c", guard + code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_counting_works_with_no_network_from_the_shipped_files():
    result = _run_offline(
        "from apps.spend import tokens\n"
        "assert tokens.estimate_text_tokens('Hello, world!') == 4\n"
        "assert tokens.estimate_text_tokens('Hello, world!', model='gpt-3.5-turbo') == 4\n"
        "print('ok')\n",
        cache_dir=None,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_missing_or_altered_encoding_falls_back_to_the_estimate_without_downloading(tmp_path):
    url, _ = tokens._ENCODING_FILES["o200k_base"]
    altered = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    altered.write_bytes(b"not the encoding\n")
    result = _run_offline(
        "from apps.spend import tokens\n"
        "assert tokens.get_encoding('o200k_base') is None  # altered: refused\n"
        "assert tokens.get_encoding('cl100k_base') is None  # not there at all\n"
        "text = 'antidisestablishmentarianism ' * 10\n"
        "assert tokens.estimate_text_tokens(text) == -(-len(text) // 4)\n"
        "print('ok')\n",
        cache_dir=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert altered.read_bytes() == b"not the encoding\n"  # tiktoken would have deleted it to download again
