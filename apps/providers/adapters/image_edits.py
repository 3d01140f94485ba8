"""OpenAI's image edits for providers that want the edit area drawn differently.

OpenAI marks the area to edit with fully transparent pixels: in the mask, or, without one, in
the image itself. Imagen wants a black image with that area white; Nova Canvas a white image with
it black, and an image without transparent pixels. Pillow redraws them (C loops: a few ms a
megapixel), bounded so a decompression bomb or a huge image is a 400, not a stall.
"""

from __future__ import annotations

import io

from apps.core.errors import invalid_request


def edit_upload(body: dict, provider: str) -> tuple[bytes, bytes | None]:
    """The edit's one image and its mask (None: none sent), as bytes."""
    def one(name: str):
        value = body.get(name)
        parts = value if isinstance(value, list) else [value]
        if len(parts) != 1 or not hasattr(parts[0], "content"):
            raise invalid_request(f"{provider} edits one image: send one '{name}' file.", param=name,
                                  code="invalid_value")
        return bytes(parts[0].content)

    return one("image"), (one("mask") if body.get("mask") is not None else None)


def _opened(data: bytes, param: str, max_pixels: int):
    from PIL import Image, UnidentifiedImageError

    try:
        picture = Image.open(io.BytesIO(data))  # the header only, until the pixels are used
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise invalid_request(f"The {param} must be a PNG or JPEG image.", param=param, code="invalid_image") from None
    if picture.size[0] * picture.size[1] > max_pixels:
        picture.close()
        raise invalid_request(f"The {param} may have at most {max_pixels} pixels.", param=param,
                              code="image_too_large")
    return picture


def image_size(image: bytes, max_pixels: int) -> tuple[int, int]:
    with _opened(image, "image", max_pixels) as picture:
        return picture.size


def edit_mask(image: bytes, mask: bytes | None, *, edit_is_white: bool, max_pixels: int) -> bytes:
    """A black-and-white PNG of the area to edit, white on black (`edit_is_white`) or black on white."""
    size = image_size(image, max_pixels)
    with _opened(mask if mask is not None else image, "mask" if mask is not None else "image", max_pixels) as source:
        if source.size != size:
            raise invalid_request("The mask must have the same dimensions as the image.", param="mask",
                                  code="invalid_value")
        if "A" not in source.getbands() and source.mode != "P":
            raise invalid_request("Without a mask, the image's fully transparent areas are what is edited: send a "
                                  "mask, or an image with an alpha channel.", param="mask", code="invalid_value")
        try:
            alpha = source.convert("RGBA").getchannel("A")
        except OSError:
            raise invalid_request("The mask could not be read.", param="mask", code="invalid_image") from None
    edit, keep = (255, 0) if edit_is_white else (0, 255)
    drawn = alpha.point(lambda value: edit if value == 0 else keep)  # a lookup table: done in C
    out = io.BytesIO()
    drawn.save(out, format="PNG")
    return out.getvalue()


def opaque_png(image: bytes, max_pixels: int) -> bytes:
    """The image without its alpha channel (a provider that refuses transparent pixels)."""
    with _opened(image, "image", max_pixels) as picture:
        try:
            flat = picture.convert("RGB")
        except OSError:
            raise invalid_request("The image could not be read.", param="image", code="invalid_image") from None
    out = io.BytesIO()
    flat.save(out, format="PNG")
    return out.getvalue()
