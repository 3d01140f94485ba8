"""How the moderations, images and audio routes differ from chat in the request flow
(apps.routing.proxy): the price an image's size and quality pick, a multipart upload read
without copying its file, audio relayed to the client as it arrives."""

from __future__ import annotations

from dataclasses import replace

from apps.providers.adapters.base import Usage
from apps.routing.proxy import ClientFormat


def _size_key(size: str) -> str:
    """LiteLLM's spelling of an image size in its price keys: 1024x1792 → 1024-x-1792."""
    return size.replace("x", "-x-")


class ImageFormat(ClientFormat):
    """Images: dall-e models are priced per image by size and quality ("hd/1024-x-1792/dall-e-3",
    else "1024-x-1024/dall-e-2"); gpt-image models by the tokens their answer reports."""

    def usage_priced(self, usage: Usage, body: dict) -> Usage:
        if usage.prompt_tokens or usage.completion_tokens:
            return usage
        size = body.get("size") or "auto"
        size = _size_key("1024x1024" if size == "auto" else size)
        quality = body.get("quality") or "standard"
        return replace(usage, price_variants=(f"{quality}/{size}", size))


IMAGE_FORMAT = ImageFormat()
