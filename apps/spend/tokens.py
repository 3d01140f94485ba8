"""Token counts where no provider reports them: tiktoken, with its encodings shipped in the repo.

tiktoken fetches its BPE files from the internet on first use; the gateway cannot count on
that, so `o200k_base` and `cl100k_base` are kept in apps/spend/data/tiktoken and
TIKTOKEN_CACHE_DIR points there (unless the environment already sets it). Other providers'
tokenizers are not public: their models are counted with `o200k_base`, close enough for the
rare request whose usage the provider did not report, which is flagged as estimated anyway.

Loading an encoding takes about half a second of CPU and ~80 MB, so it is never done on the
event loop: there the first call starts a background load and counts ~4 characters a token
until it is ready. Counting is CPU work too (5-20 MB of text a second): synchronous callers on
the event loop get an exact count up to SYNC_EXACT_MAX_CHARS and the character estimate above
it; `count_prompt_tokens` (async) counts any size exactly, in a thread when the prompt is large.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    import tiktoken

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the last-resort estimate, when no encoding can be had
TOKENS_PER_MESSAGE = 3  # OpenAI's chat format: <|start|>role ... <|end|> around each message
TOKENS_PER_NAME = 1
TOKENS_FOR_REPLY = 3  # every reply is primed with <|start|>assistant<|message|>
TOKENS_PER_IMAGE = 1_000  # an image's size is not known here; OpenAI's high detail is 85-1,105
SYNC_EXACT_MAX_CHARS = 100_000  # ~10 ms of counting: the most a synchronous caller may block the loop

DEFAULT_ENCODING = "o200k_base"
ENCODINGS_DIR = Path(__file__).resolve().parent / "data" / "tiktoken"
# Encoding → (the URL tiktoken downloads it from, the SHA-256 tiktoken pins for it).
_ENCODING_FILES = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
# Encodings that count ordinary text exactly like a shipped one.
_SAME_ORDINARY_TOKENS = {"o200k_harmony": "o200k_base"}

_encodings: dict[str, "tiktoken.Encoding | None"] = {}  # None: cannot be had in this process
_loading: set[str] = set()
_lock = threading.Lock()
_model_encodings: dict[str, str] = {}


# --- encodings -----------------------------------------------------------------------------------


def encoding_name_for(model: str | None) -> str:
    """The shipped encoding that counts `model`'s tokens (provider prefixes are ignored)."""
    if not model:
        return DEFAULT_ENCODING
    name = _model_encodings.get(model)
    if name is None:
        import tiktoken.model

        bare = model.rsplit("/", 1)[-1]
        try:
            name = tiktoken.model.encoding_name_for_model(bare)
        except KeyError:
            name = DEFAULT_ENCODING
        name = _SAME_ORDINARY_TOKENS.get(name, name)
        if name not in _ENCODING_FILES:
            name = DEFAULT_ENCODING
        if len(_model_encodings) < 10_000:
            _model_encodings[model] = name
    return name


def _cache_dir() -> Path:
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ENCODINGS_DIR))
    return Path(os.environ["TIKTOKEN_CACHE_DIR"])


def _load(name: str) -> "tiktoken.Encoding | None":
    """Load a shipped encoding, never from the network: a missing or altered file gives None."""
    url, sha256 = _ENCODING_FILES[name]
    path = _cache_dir() / hashlib.sha1(url.encode()).hexdigest()
    try:
        data = path.read_bytes()
    except OSError:
        logger.warning("tiktoken encoding %s not found at %s; counting ~%d characters a token",
                       name, path, CHARS_PER_TOKEN)
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        # tiktoken would delete the file and download it again: never that.
        logger.error("tiktoken encoding %s at %s does not match its pinned SHA-256; not used", name, path)
        return None
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception:
        logger.exception("tiktoken encoding %s could not be loaded", name)
        return None


def _load_into_cache(name: str) -> "tiktoken.Encoding | None":
    with _lock:
        if name not in _encodings:
            _encodings[name] = _load(name)
        _loading.discard(name)
        return _encodings[name]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def get_encoding(name: str = DEFAULT_ENCODING, *, wait: bool | None = None) -> "tiktoken.Encoding | None":
    """The encoding, or None while it loads in the background (or when it cannot be had).

    wait=None waits unless called on an event loop, where blocking for the load would stall
    every request of the process.
    """
    encoding = _encodings.get(name)
    if encoding is not None or name in _encodings:
        return encoding
    if wait is None:
        wait = not _on_event_loop()
    if wait:
        return _load_into_cache(name)
    with _lock:
        if name not in _loading and name not in _encodings:
            _loading.add(name)
            threading.Thread(target=_load_into_cache, args=(name,), name=f"tiktoken-{name}", daemon=True).start()
    return None


def preload_encodings(*names: str) -> None:
    """Load encodings now (a server process at start, tests): later counts are exact at once."""
    for name in names or (DEFAULT_ENCODING,):
        get_encoding(name, wait=True)


# --- counting ------------------------------------------------------------------------------------


def _count(encoding: "tiktoken.Encoding | None", text: str) -> int:
    if not text:
        return 0
    if encoding is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(encoding.encode_ordinary(text))


def _prompt_texts(messages: list[dict], tools: list[dict] | None) -> tuple[list[str], int]:
    """The texts of a chat prompt to count, and the tokens of its framing and images."""
    texts: list[str] = []
    framing = TOKENS_FOR_REPLY if messages else 0
    for message in messages:
        framing += TOKENS_PER_MESSAGE
        texts.append(str(message.get("role") or ""))
        if message.get("name"):
            framing += TOKENS_PER_NAME
            texts.append(str(message["name"]))
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    texts.append(str(part.get("text") or ""))
                elif part.get("type") in ("image_url", "input_image", "image"):
                    framing += TOKENS_PER_IMAGE
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.append(str(function.get("name") or ""))
                texts.append(str(function.get("arguments") or ""))
    if tools:
        texts.append(orjson.dumps(tools).decode())
    return texts, framing


def _prompt_count(encoding, texts: list[str], framing: int) -> int:
    return framing + sum(_count(encoding, text) for text in texts)


def estimate_text_tokens(text: str, *, model: str | None = None) -> int:
    """The tokens of a text: exact where the encoding is loaded (see the module's docstring)."""
    if not text:
        return 0
    on_loop = _on_event_loop()
    encoding = get_encoding(encoding_name_for(model), wait=not on_loop)
    if on_loop and len(text) > SYNC_EXACT_MAX_CHARS:
        encoding = None
    return _count(encoding, text)


def estimate_prompt_tokens(messages: list[dict], tools: list[dict] | None = None, *,
                           model: str | None = None) -> int:
    """The prompt tokens of an OpenAI-format chat request, counted as OpenAI's chat format does.

    Exact for OpenAI's models where the encoding is loaded; text in images is not known here
    (TOKENS_PER_IMAGE each). On the event loop a prompt above SYNC_EXACT_MAX_CHARS gets the
    character estimate: use count_prompt_tokens there for an exact count.
    """
    texts, framing = _prompt_texts(messages, tools)
    on_loop = _on_event_loop()
    encoding = get_encoding(encoding_name_for(model), wait=not on_loop)
    if on_loop and encoding is not None and sum(map(len, texts)) > SYNC_EXACT_MAX_CHARS:
        encoding = None
    return _prompt_count(encoding, texts, framing)


def rough_prompt_tokens(messages: list[dict], tools: list[dict] | None = None) -> int:
    """~4 characters a token, no tokenizer: for per-request guesses on the hot path (limits)."""
    texts, framing = _prompt_texts(messages, tools)
    return _prompt_count(None, texts, framing)


def request_prompt_tokens(body: dict, *, rough: bool = False, model: str | None = None) -> int:
    """The prompt size of any request: a chat's messages and tools, else the text of its prompt,
    input or documents. `rough`: ~4 characters a token, no tokenizer (budget reservations on every
    request); else as estimate_prompt_tokens counts (context windows, usage a provider never sent)."""
    messages = body.get("messages")
    if messages:
        if rough:
            return rough_prompt_tokens(messages, body.get("tools"))
        return estimate_prompt_tokens(messages, body.get("tools"), model=model)
    text = body.get("prompt") or body.get("input") or body.get("documents") or ""
    text = text if isinstance(text, str) else str(text)
    return _count(None, text) if rough else estimate_text_tokens(text, model=model)


async def count_prompt_tokens(messages: list[dict], tools: list[dict] | None = None, *,
                              model: str | None = None) -> int:
    """The exact prompt tokens, whatever the size: a large prompt is counted in a thread
    (tiktoken releases the GIL), a small one right here; the encoding loads off the loop."""
    texts, framing = _prompt_texts(messages, tools)
    name = encoding_name_for(model)
    encoding = get_encoding(name, wait=False)
    if encoding is None and name not in _encodings:
        encoding = await asyncio.to_thread(get_encoding, name, wait=True)
    if sum(map(len, texts)) > SYNC_EXACT_MAX_CHARS:
        return await asyncio.to_thread(_prompt_count, encoding, texts, framing)
    return _prompt_count(encoding, texts, framing)


async def count_text_tokens(text: str, *, model: str | None = None) -> int:
    """count_prompt_tokens for a bare text (a completion's output, say)."""
    name = encoding_name_for(model)
    encoding = get_encoding(name, wait=False)
    if encoding is None and name not in _encodings:
        encoding = await asyncio.to_thread(get_encoding, name, wait=True)
    if len(text) > SYNC_EXACT_MAX_CHARS:
        return await asyncio.to_thread(_count, encoding, text)
    return _count(encoding, text)
