"""OpenAI's /v1/images/generations as Bedrock's InvokeModel bodies for image models.

Two families, each with its own documented body:
- Stability AI (`stability.sd3-5-large-v1:0`, `stability.stable-image-ultra-v1:1`,
  `stability.stable-image-core-v1:1`): {"prompt", "aspect_ratio", "output_format"} → {"images",
  "seeds", "finish_reasons"}; one image a request; a non-null finish reason is its filter.
- Amazon Nova Canvas (`amazon.nova-canvas-v1:0`): {"taskType": "TEXT_IMAGE", "textToImageParams",
  "imageGenerationConfig": {"numberOfImages", "width", "height", "quality"}} → {"images"};
  1 to 5 images, each side 320 to 4096 pixels in steps of 16, at most 4:1, at most 4.19 MP.
  Priced per image by quality (standard, premium) and size tier (up to 1024 or 2048 a side).
Image edits go to Nova Canvas's INPAINTING task. What a model cannot do (several Stability
images, a link instead of base64, a size Nova refuses) is a 400 naming the parameter, before any
call.
"""

from __future__ import annotations

import base64
import contextvars
import time

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import TranslatedResponse, Usage, refuse_or_drop
from apps.providers.adapters.image_edits import edit_mask, edit_upload, image_size, opaque_png

IMAGE_PARAMS = frozenset({"model", "prompt", "n", "size", "response_format", "output_format", "user", "quality"})
STABILITY_PARAMS = IMAGE_PARAMS - {"quality"}
STABILITY_ASPECT_RATIOS = {"16:9": 16 / 9, "1:1": 1.0, "21:9": 21 / 9, "2:3": 2 / 3, "3:2": 3 / 2, "4:5": 4 / 5,
                           "5:4": 5 / 4, "9:16": 9 / 16, "9:21": 9 / 21}
STABILITY_FORMATS = ("png", "jpeg")
NOVA_MAX_IMAGES = 5
NOVA_MAX_PIXELS = 4_194_304
NOVA_PREMIUM = ("hd", "high")  # OpenAI's qualities Nova's "premium" answers; the others are "standard"

# The price variant of the Nova request being made (read when its answer is priced, in the
# same task: one attempt builds its request and translates its answer in turn).
_price_variant: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("bedrock_image_variant",
                                                                              default=())


def image_family(upstream_model: str) -> str | None:
    model = upstream_model.split(".", 1)[1] if upstream_model.startswith(("us.", "eu.", "apac.")) else upstream_model
    if model.startswith("stability."):
        return "stability"
    if model.startswith("amazon.nova-canvas"):
        return "nova"
    return None


def _size(body: dict) -> tuple[int, int]:
    size = body.get("size") or "auto"
    if size == "auto":
        return 1024, 1024
    width, _, height = str(size).partition("x")
    if not (width.isascii() and width.isdigit() and height.isascii() and height.isdigit()):
        raise invalid_request(f"'size' must be WIDTHxHEIGHT, such as 1024x1024, not {str(size)[:40]!r}.",
                              param="size", code="invalid_value")
    return int(width), int(height)


def _base64_only(body: dict) -> None:
    if body.get("response_format") == "url":
        raise invalid_request("bedrock returns images as base64 only: ask for response_format 'b64_json'.",
                              param="response_format", code="unsupported_value")


def image_request_body(upstream_model: str, body: dict, *, drop_params: bool) -> dict:
    """The InvokeModel body for the model's family, or a 400 naming what it cannot do."""
    family = image_family(upstream_model)
    if family is None:
        raise invalid_request(
            f"bedrock image generation serves Stability AI and Amazon Nova Canvas models, not {upstream_model}.",
            param="model", code="unsupported_model",
        )
    _base64_only(body)
    if family == "stability":
        refuse_or_drop("bedrock", body, STABILITY_PARAMS, drop_params=drop_params)
        if (body.get("n") or 1) != 1:
            raise invalid_request("bedrock's Stability models make one image per request.", param="n",
                                  code="invalid_value")
        output_format = body.get("output_format") or "png"
        if output_format not in STABILITY_FORMATS:
            raise invalid_request("bedrock's Stability models write png or jpeg images.", param="output_format",
                                  code="unsupported_value")
        width, height = _size(body)
        ratio = width / height
        aspect = min(STABILITY_ASPECT_RATIOS, key=lambda name: abs(STABILITY_ASPECT_RATIOS[name] - ratio))
        _price_variant.set(())
        return {"prompt": body["prompt"], "aspect_ratio": aspect, "output_format": output_format}
    refuse_or_drop("bedrock", body, IMAGE_PARAMS, drop_params=drop_params)
    n = body.get("n") or 1
    if n > NOVA_MAX_IMAGES:
        raise invalid_request(f"bedrock's Nova Canvas makes at most {NOVA_MAX_IMAGES} images per request.",
                              param="n", code="invalid_value")
    if body.get("output_format") not in (None, "png"):
        raise invalid_request("bedrock's Nova Canvas writes png images.", param="output_format",
                              code="unsupported_value")
    width, height = _size(body)
    if not (320 <= width <= 4096 and 320 <= height <= 4096 and width % 16 == 0 and height % 16 == 0
            and max(width, height) <= 4 * min(width, height) and width * height <= NOVA_MAX_PIXELS):
        raise invalid_request(
            "bedrock's Nova Canvas takes sizes whose sides are 320 to 4096 pixels in steps of 16, at most 4:1, "
            f"at most {NOVA_MAX_PIXELS} pixels in all.", param="size", code="invalid_value",
        )
    quality = "premium" if body.get("quality") in NOVA_PREMIUM else "standard"
    tier = "1024-x-1024" if max(width, height) <= 1024 else "2048-x-2048"
    _price_variant.set((f"{quality}/{tier}",))
    return {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": body["prompt"]},
        "imageGenerationConfig": {"numberOfImages": n, "width": width, "height": height, "quality": quality},
    }


NOVA_EDIT_PARAMS = frozenset({"model", "image", "mask", "prompt", "n", "size", "response_format", "output_format",
                              "user", "quality"})


def image_edit_request_body(upstream_model: str, body: dict, *, drop_params: bool) -> dict:
    """/v1/images/edits as Nova Canvas's INPAINTING task: the image without its transparency, the
    area to edit black on a white mask (OpenAI's transparent pixels); the output keeps the
    image's size. Stability's editing services on Bedrock are other models: not served."""
    if image_family(upstream_model) != "nova":
        raise invalid_request(f"bedrock image edits are served by Amazon Nova Canvas, not {upstream_model}.",
                              param="model", code="unsupported_model")
    _base64_only(body)
    refuse_or_drop("bedrock", body, NOVA_EDIT_PARAMS, drop_params=drop_params)
    n = body.get("n") or 1
    if n > NOVA_MAX_IMAGES:
        raise invalid_request(f"bedrock's Nova Canvas makes at most {NOVA_MAX_IMAGES} images per request.",
                              param="n", code="invalid_value")
    if body.get("size") not in (None, "auto"):
        raise invalid_request("bedrock's Nova Canvas edits keep the image's own size: leave 'size' out.",
                              param="size", code="unsupported_value")
    if body.get("output_format") not in (None, "png"):
        raise invalid_request("bedrock's Nova Canvas writes png images.", param="output_format",
                              code="unsupported_value")
    image, mask = edit_upload(body, "bedrock's Nova Canvas")
    width, height = image_size(image, NOVA_MAX_PIXELS)
    if not (320 <= width <= 4096 and 320 <= height <= 4096 and max(width, height) <= 4 * min(width, height)):
        raise invalid_request("bedrock's Nova Canvas edits images whose sides are 320 to 4096 pixels, at most 4:1.",
                              param="image", code="invalid_value")
    drawn_mask = edit_mask(image, mask, edit_is_white=False, max_pixels=NOVA_MAX_PIXELS)
    quality = "premium" if body.get("quality") in NOVA_PREMIUM else "standard"
    tier = "1024-x-1024" if max(width, height) <= 1024 else "2048-x-2048"
    _price_variant.set((f"{quality}/{tier}",))
    return {
        "taskType": "INPAINTING",
        "inPaintingParams": {"image": base64.b64encode(opaque_png(image, NOVA_MAX_PIXELS)).decode(),
                             "maskImage": base64.b64encode(drawn_mask).decode(), "text": body["prompt"]},
        "imageGenerationConfig": {"numberOfImages": n, "quality": quality},
    }


def image_response(upstream_model: str, payload: dict) -> TranslatedResponse:
    """The images as OpenAI's answer (b64_json), priced per image; a filtered prompt is a 400."""
    images = [image for image in payload.get("images") or [] if isinstance(image, str) and image]
    reasons = [reason for reason in payload.get("finish_reasons") or [] if reason]
    if reasons or not images:
        raise GatewayError(
            f"bedrock ({upstream_model}) made no image: {reasons[0] if reasons else 'its filter refused the prompt'}.",
            status=400, type="invalid_request_error", param="prompt", code="content_policy_violation",
        )
    output_format = "jpeg" if images[0].startswith("/9j/") else "png"  # JPEG's base64 signature
    body = {"created": int(time.time()), "data": [{"b64_json": image} for image in images],
            "output_format": output_format}
    usage = Usage(output_images=len(images), reported=True, price_variants=_price_variant.get())
    return TranslatedResponse(body=orjson.dumps(body), usage=usage)
