"""POST /v1/images/generations through the gateway to OpenAI and Azure fakes: dall-e priced per
image by size and quality, gpt-image by the tokens its answer reports; limited and logged."""

from decimal import Decimal

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from tests.fakes.openai_media import IMAGE_TOKENS
from tests.routing.media_fixtures import media_deployment, media_upstream  # noqa: F401 (fixtures)


@pytest.fixture
def image_models(media_deployment):
    media_deployment("dall-e-2", "dall-e-2", "image_generation")
    media_deployment("dall-e-3", "dall-e-3", "image_generation")
    media_deployment("gpt-image-1", "gpt-image-1", "image_generation")
    media_deployment("azure-dalle", "dall-e-3-eastus", "image_generation", provider="azure", api_version="2024-10-21",
                     extra_params={"base_model": "dall-e-3"})
    media_deployment("broken-images", "error-503", "image_generation")


def test_dall_e_3_hd_is_priced_per_image_at_its_size_and_quality(gateway, openai_client, image_models,
                                                                 media_upstream, spend_logs):
    result = openai_client().images.generate(model="dall-e-3", prompt="a lighthouse", size="1024x1792",
                                             quality="hd")
    assert result.data[0].url.startswith("https://")
    assert result.data[0].revised_prompt == "A revised a lighthouse"
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/v1/images/generations"
    assert sent["body"] == {"model": "dall-e-3", "prompt": "a lighthouse", "size": "1024x1792", "quality": "hd"}
    [log] = spend_logs(1)
    assert (log.call_type, log.model, log.status) == ("image_generation", "dall-e-3", "success")
    assert log.cost == Decimal("0.12")  # OpenAI: DALL·E 3 HD 1024×1792, $0.120 an image
    assert "hd/1024-x-1792/dall-e-3" in log.price_version


def test_dall_e_2_is_priced_per_image_times_n(gateway, openai_client, image_models, spend_logs):
    result = openai_client().images.generate(model="dall-e-2", prompt="a cat", n=3, size="256x256",
                                             response_format="b64_json")
    assert len(result.data) == 3 and result.data[0].b64_json
    [log] = spend_logs(1)
    assert log.cost == 3 * Decimal("0.016")  # DALL·E 2 256×256: $0.016 an image


def test_the_default_size_and_quality_are_openais(gateway, openai_client, image_models, spend_logs):
    openai_client().images.generate(model="dall-e-3", prompt="a cat")
    [log] = spend_logs(1)
    assert log.cost == Decimal("0.04")  # standard 1024×1024


def test_gpt_image_is_priced_by_the_tokens_its_answer_reports(gateway, openai_client, image_models, spend_logs):
    result = openai_client().images.generate(model="gpt-image-1", prompt="a lighthouse", quality="low")
    assert result.usage.output_tokens == IMAGE_TOKENS["output_tokens"]
    [log] = spend_logs(1)
    assert (log.prompt_tokens, log.completion_tokens) == (IMAGE_TOKENS["input_tokens"], IMAGE_TOKENS["output_tokens"])
    # $5 per million text input tokens, $40 per million image output tokens.
    assert log.cost == IMAGE_TOKENS["input_tokens"] * Decimal("0.000005") + IMAGE_TOKENS["output_tokens"] * Decimal(
        "0.00004")


def test_azure_deployment_is_priced_as_its_base_model(gateway, openai_client, image_models, media_upstream,
                                                      spend_logs):
    openai_client().images.generate(model="azure-dalle", prompt="a cat", size="1792x1024")
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/openai/deployments/dall-e-3-eastus/images/generations?api-version=2024-10-21"
    [log] = spend_logs(1)
    assert log.cost == Decimal("0.08")  # standard 1792×1024


def test_an_upstream_error_keeps_its_status_and_costs_nothing(gateway, openai_client, image_models, spend_logs):
    with pytest.raises(openai.InternalServerError) as info:
        openai_client().images.generate(model="broken-images", prompt="a cat")
    assert info.value.status_code == 503
    logs = spend_logs(1)
    assert logs[-1].status == "error" and logs[-1].cost is None


def test_what_the_model_refuses_upstream_is_a_400(gateway, openai_client, image_models):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client().images.generate(model="dall-e-3", prompt="a cat", n=2)
    assert info.value.body["param"] == "n"


def test_a_model_the_key_may_not_use_is_403(gateway, openai_client, image_models, make_key, media_upstream):
    _, raw_key = make_key(models=["dall-e-2"])
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(raw_key).images.generate(model="dall-e-3", prompt="a cat")
    assert media_upstream.requests == []


def test_an_exhausted_budget_is_429_insufficient_quota(gateway, openai_client, image_models, make_key,
                                                       media_upstream, spend_logs):
    # One image of $0.02 fits a $0.03 budget; the next one's reservation does not.
    _, raw_key = make_key(max_budget=Decimal("0.03"))
    client = openai_client(raw_key)
    client.images.generate(model="dall-e-2", prompt="a cat")
    spend_logs(1)
    with pytest.raises(openai.RateLimitError) as info:
        client.images.generate(model="dall-e-2", prompt="a cat")
    assert info.value.body["code"] == "insufficient_quota"
    assert len(media_upstream.requests) == 1


@pytest.mark.parametrize("body, param", [
    ({"model": "dall-e-2"}, "prompt"),
    ({"model": "dall-e-2", "prompt": ""}, "prompt"),
    ({"model": "dall-e-2", "prompt": "x", "n": 11}, "n"),
    ({"model": "dall-e-2", "prompt": "x", "size": "100x100"}, "size"),
    ({"model": "dall-e-2", "prompt": "x", "quality": "ultra"}, "quality"),
    ({"model": "dall-e-2", "prompt": "x", "response_format": "gif"}, "response_format"),
])
def test_an_invalid_body_is_400_naming_the_param_without_an_upstream_call(gateway, image_models, body, param,
                                                                          media_upstream):
    response = httpx.post(gateway.url + "/v1/images/generations",
                          headers={"Authorization": f"Bearer {MASTER_KEY}"}, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert media_upstream.requests == []


# --- edits and variations (multipart uploads) ---------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def test_a_dall_e_2_edit_uploads_image_and_mask_and_is_priced_per_image(gateway, openai_client, image_models,
                                                                        media_upstream, spend_logs):
    result = openai_client().images.edit(model="dall-e-2", image=("in.png", PNG, "image/png"),
                                         mask=("mask.png", PNG[:100], "image/png"), prompt="add a hat", n=2,
                                         size="512x512")
    assert len(result.data) == 2
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/v1/images/edits"
    assert sent["files"] == {"image": [("in.png", PNG)], "mask": [("mask.png", PNG[:100])]}
    assert sent["body"] == {"model": "dall-e-2", "prompt": "add a hat", "n": "2", "size": "512x512"}
    [log] = spend_logs(1)
    assert (log.call_type, log.cost) == ("image_edit", 2 * Decimal("0.018"))  # DALL·E 2 512×512


def test_a_gpt_image_edit_of_several_images_is_priced_by_its_tokens(gateway, openai_client, image_models,
                                                                     media_upstream, spend_logs):
    result = openai_client().images.edit(model="gpt-image-1", prompt="a gift basket",
                                         image=[("a.png", PNG, "image/png"), ("b.png", PNG, "image/png")])
    assert result.data[0].b64_json
    assert [name for name, _ in media_upstream.requests[-1]["files"]["image"]] == ["a.png", "b.png"]
    [log] = spend_logs(1)
    input_tokens = IMAGE_TOKENS["input_tokens"] + 2 * 323
    assert (log.prompt_tokens, log.completion_tokens) == (input_tokens, IMAGE_TOKENS["output_tokens"])
    assert log.cost == input_tokens * Decimal("0.000005") + IMAGE_TOKENS["output_tokens"] * Decimal("0.00004")


def test_a_variation_is_priced_per_image(gateway, openai_client, image_models, media_upstream, spend_logs):
    result = openai_client().images.create_variation(model="dall-e-2", image=("in.png", PNG, "image/png"), n=3,
                                                     size="256x256")
    assert len(result.data) == 3
    assert media_upstream.requests[-1]["path"] == "/v1/images/variations"
    [log] = spend_logs(1)
    assert (log.call_type, log.cost) == ("image_variation", 3 * Decimal("0.016"))


def test_what_openai_refuses_in_an_upload_keeps_its_400(gateway, openai_client, image_models):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client().images.edit(model="dall-e-2", image=("in.jpg", b"\xff\xd8 jpeg", "image/jpeg"),
                                    prompt="x")
    assert info.value.body["param"] == "image"


def test_an_edit_with_a_forbidden_model_is_403_and_an_empty_budget_429(gateway, openai_client, image_models,
                                                                        make_key, media_upstream):
    _, limited = make_key(models=["dall-e-3"])
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(limited).images.edit(model="dall-e-2", image=("in.png", PNG, "image/png"), prompt="x")
    _, broke = make_key(max_budget=Decimal("0"))
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(broke).images.create_variation(model="dall-e-2", image=("in.png", PNG, "image/png"))
    assert info.value.body["code"] == "insufficient_quota"
    assert media_upstream.requests == []


@pytest.mark.parametrize("path, data, files, param", [
    ("/v1/images/edits", {"model": "dall-e-2"}, {"image": ("in.png", PNG, "image/png")}, "prompt"),
    ("/v1/images/edits", {"model": "dall-e-2", "prompt": "x"}, {}, "image"),
    ("/v1/images/edits", {"model": "dall-e-2", "prompt": "x", "image": "not a file"}, {"mask": ("m.png", PNG)},
     "image"),
    ("/v1/images/edits", {"model": "dall-e-2", "prompt": "x", "n": "two"}, {"image": ("in.png", PNG)}, "n"),
    ("/v1/images/variations", {"model": "dall-e-2", "size": "1792x1024"}, {"image": ("in.png", PNG)}, "size"),
    ("/v1/images/variations", {"model": "dall-e-2", "n": "11"}, {"image": ("in.png", PNG)}, "n"),
])
def test_an_invalid_upload_is_400_naming_the_field(gateway, image_models, media_upstream, path, data, files, param):
    response = httpx.post(gateway.url + path, headers={"Authorization": f"Bearer {MASTER_KEY}"}, data=data,
                          files=files or {"unused": ("u.txt", b"")})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert media_upstream.requests == []


def test_gpt_image_streams_its_partial_images_and_each_completed_image_is_priced(gateway, openai_client,
                                                                                 image_models, spend_logs):
    stream = openai_client().images.generate(model="gpt-image-1", prompt="a lighthouse", stream=True,
                                             partial_images=2, n=2)
    events = list(stream)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"] \
        + ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert events[-1].usage.output_tokens == IMAGE_TOKENS["output_tokens"]
    [log] = spend_logs(1)
    assert log.is_stream and log.status == "success"
    assert (log.prompt_tokens, log.completion_tokens) == (2 * IMAGE_TOKENS["input_tokens"],
                                                          2 * IMAGE_TOKENS["output_tokens"])
    assert log.cost == 2 * (IMAGE_TOKENS["input_tokens"] * Decimal("0.000005")
                            + IMAGE_TOKENS["output_tokens"] * Decimal("0.00004"))


def test_a_stream_from_a_dall_e_model_is_the_upstreams_400(gateway, openai_client, image_models):
    with pytest.raises(openai.BadRequestError) as info:
        list(openai_client().images.generate(model="dall-e-3", prompt="a cat", stream=True))
    assert info.value.body["param"] == "stream"


# --- Imagen on the Gemini API and Vertex AI ------------------------------------------------------


@pytest.fixture
def imagen(provider_fakes, transactional_db):
    """Imagen 4 behind the Gemini API and behind Vertex AI, priced from the catalog ($0.04 an image)."""
    from apps.providers.models import ModelDeployment

    fakes = {}
    for provider in ("gemini", "vertex_ai"):
        fake = fakes[provider] = provider_fakes(provider)
        fake.server.requests.clear()
        ModelDeployment.objects.create(model_name=f"imagen-{provider}", provider=provider,
                                       upstream_model="imagen-4.0-generate-001", **fake.deployment_fields())
    return fakes


@pytest.mark.parametrize("provider", ["gemini", "vertex_ai"])
def test_imagen_answers_openais_images_call_priced_per_image(gateway, openai_client, imagen, spend_logs, provider):
    import base64

    from tests.fakes.gemini_upstream import IMAGEN_PNG

    result = openai_client().images.generate(model=f"imagen-{provider}", prompt="a lighthouse", n=2,
                                             size="1792x1024", response_format="b64_json")
    assert [base64.b64decode(image.b64_json) for image in result.data] == [IMAGEN_PNG, IMAGEN_PNG]
    sent = imagen[provider].server.requests[-1]
    assert sent["path"].split("?")[0].endswith("/models/imagen-4.0-generate-001:predict")
    assert sent["body"] == {"instances": [{"prompt": "a lighthouse"}],
                            "parameters": {"sampleCount": 2, "aspectRatio": "16:9"}}
    [log] = spend_logs(1)
    assert (log.call_type, log.provider, log.status) == ("image_generation", provider, "success")
    assert log.cost == 2 * Decimal("0.04")  # Google: Imagen 4 Standard, $0.04 an image


def test_imagen_refuses_what_it_cannot_do_before_calling(gateway, openai_client, imagen, spend_logs):
    client = openai_client()
    for kwargs, param in (({"response_format": "url"}, "response_format"), ({"n": 5}, "n"),
                          ({"style": "vivid"}, "style")):
        with pytest.raises(openai.BadRequestError) as info:
            client.images.generate(model="imagen-gemini", prompt="a cat", **kwargs)
        assert info.value.body["param"] == param, info.value.body
    assert imagen["gemini"].server.requests == []


def test_a_prompt_imagens_filter_refuses_is_a_400_content_policy_violation(gateway, openai_client, imagen,
                                                                           spend_logs):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client().images.generate(model="imagen-gemini", prompt="something forbidden")
    assert info.value.body["code"] == "content_policy_violation"
    [log] = spend_logs(1)
    assert log.status == "error" and not log.cost


# --- Bedrock: Stability AI and Amazon Nova Canvas through InvokeModel ------------------------------


@pytest.fixture
def bedrock_images(provider_fakes, transactional_db):
    """Stability's SD3.5 Large and Nova Canvas on Bedrock (SigV4), priced from the catalog."""
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("bedrock")
    fake.server.requests.clear()
    for name, model in (("sd", "stability.sd3-5-large-v1:0"), ("canvas", "amazon.nova-canvas-v1:0"),
                        ("titan-text", "amazon.titan-text-express-v1")):
        ModelDeployment.objects.create(model_name=name, provider="bedrock", upstream_model=model,
                                       mode="image_generation", **fake.deployment_fields())
    return fake


def test_stability_on_bedrock_makes_one_image_priced_per_image(gateway, openai_client, bedrock_images, spend_logs):
    import base64

    result = openai_client().images.generate(model="sd", prompt="a lighthouse", size="1792x1024",
                                             response_format="b64_json", output_format="jpeg")
    assert base64.b64decode(result.data[0].b64_json).startswith(b"\xff\xd8")
    sent = bedrock_images.server.requests[-1]
    assert sent["path"] == "/model/stability.sd3-5-large-v1:0/invoke"
    assert sent["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert sent["body"] == {"prompt": "a lighthouse", "aspect_ratio": "16:9", "output_format": "jpeg"}
    [log] = spend_logs(1)
    assert (log.provider, log.status, log.cost) == ("bedrock", "success", Decimal("0.08"))  # SD3.5 Large


def test_nova_canvas_is_priced_by_quality_and_size_tier(gateway, openai_client, bedrock_images, spend_logs):
    client = openai_client()
    result = client.images.generate(model="canvas", prompt="a cat", n=3, size="1024x1024",
                                    response_format="b64_json")
    assert len(result.data) == 3
    assert bedrock_images.server.requests[-1]["body"] == {
        "taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a cat"},
        "imageGenerationConfig": {"numberOfImages": 3, "width": 1024, "height": 1024, "quality": "standard"}}
    client.images.generate(model="canvas", prompt="a cat", size="1792x1024", quality="hd", response_format="b64_json")
    assert bedrock_images.server.requests[-1]["body"]["imageGenerationConfig"]["quality"] == "premium"
    first, second = spend_logs(2)
    assert first.cost == 3 * Decimal("0.04")  # standard, up to 1024 a side
    assert second.cost == Decimal("0.08") and "premium/2048-x-2048" in second.price_version


def test_bedrock_images_refuse_what_the_model_cannot_do_before_calling(gateway, openai_client, bedrock_images):
    client = openai_client()
    for model, kwargs, param in (
        ("sd", {"n": 2}, "n"), ("sd", {"quality": "hd"}, "quality"), ("sd", {"response_format": "url"},
                                                                      "response_format"),
        ("canvas", {"n": 6}, "n"), ("canvas", {"size": "256x256"}, "size"), ("canvas", {"output_format": "jpeg"},
                                                                          "output_format"),
        ("canvas", {"style": "vivid"}, "style"), ("titan-text", {}, "model"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            client.images.generate(model=model, prompt="a cat", **kwargs)
        assert info.value.body["param"] == param, (model, kwargs, info.value.body)
    assert bedrock_images.server.requests == []


def test_a_prompt_bedrocks_filters_refuse_is_a_400(gateway, openai_client, bedrock_images, spend_logs):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client().images.generate(model="sd", prompt="something forbidden", response_format="b64_json")
    assert info.value.body["code"] == "content_policy_violation"
    with pytest.raises(openai.BadRequestError):
        openai_client().images.generate(model="canvas", prompt="something forbidden", response_format="b64_json")
    assert all(log.status == "error" and not log.cost for log in spend_logs(2))


# --- Imagen edits on Vertex AI (imagen-3.0-capability-001) --------------------------------------


def _png(size=(64, 32), *, transparent_box=None, mode="RGBA") -> bytes:
    """A PNG; with `transparent_box` (x0, y0, x1, y1) fully transparent there (OpenAI's "edit here")."""
    import io

    from PIL import Image

    picture = Image.new(mode, size, (200, 10, 10, 255) if mode == "RGBA" else (200, 10, 10))
    if transparent_box:
        picture.paste((0, 0, 0, 0), transparent_box)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def imagen_edit(provider_fakes, transactional_db):
    from apps.providers.models import ModelDeployment

    fakes = {}
    for provider in ("vertex_ai", "gemini"):
        fake = fakes[provider] = provider_fakes(provider)
        fake.server.requests.clear()
        fake.server.edit_masks.clear()
        fields = fake.deployment_fields()
        # Not in the catalog: the deployment carries its price (LiteLLM's field, in its params).
        fields["extra_params"] = {**fields.get("extra_params", {}), "output_cost_per_image": 0.02}
        ModelDeployment.objects.create(model_name=f"imagen-edit-{provider}", provider=provider,
                                       upstream_model="imagen-3.0-capability-001", mode="image_generation", **fields)
    return fakes


def test_an_imagen_edit_turns_openais_mask_into_imagens_and_is_priced_per_image(gateway, openai_client, imagen_edit,
                                                                                spend_logs):
    result = openai_client().images.edit(
        model="imagen-edit-vertex_ai", prompt="a red door", n=2, response_format="b64_json",
        image=("room.png", _png()), mask=("mask.png", _png(transparent_box=(8, 4, 24, 12))))
    assert len(result.data) == 2
    sent = imagen_edit["vertex_ai"].server.requests[-1]
    assert sent["path"].split("?")[0].endswith("/models/imagen-3.0-capability-001:predict")
    assert sent["body"]["parameters"] == {"editMode": "EDIT_MODE_INPAINT_INSERTION", "sampleCount": 2}
    [mask] = imagen_edit["vertex_ai"].server.edit_masks
    assert mask.size == (64, 32)
    # Where OpenAI's mask was transparent Imagen's is white, elsewhere black.
    assert mask.getpixel((10, 5)) == 255 and mask.getpixel((30, 20)) == 0 and mask.getpixel((8, 4)) == 255
    [log] = spend_logs(1)
    assert (log.call_type, log.status, log.cost) == ("image_edit", "success", 2 * Decimal("0.02"))


def test_without_a_mask_the_images_own_transparency_is_the_mask(gateway, openai_client, imagen_edit, spend_logs):
    openai_client().images.edit(model="imagen-edit-vertex_ai", prompt="sky", response_format="b64_json",
                                image=("room.png", _png(transparent_box=(0, 0, 64, 8))))
    [mask] = imagen_edit["vertex_ai"].server.edit_masks
    assert mask.getpixel((3, 3)) == 255 and mask.getpixel((3, 20)) == 0


def test_imagen_edits_refuse_what_they_cannot_do_before_calling(gateway, openai_client, imagen_edit):
    client = openai_client()
    cases = [
        ({"mask": ("m.png", _png(size=(32, 32), transparent_box=(0, 0, 4, 4)))}, "mask"),  # another size
        ({}, "mask"),  # no mask, and an image without transparency
        ({"response_format": "url", "mask": ("m.png", _png(transparent_box=(0, 0, 4, 4)))}, "response_format"),
        ({"size": "256x256", "mask": ("m.png", _png(transparent_box=(0, 0, 4, 4)))}, "size"),
    ]
    for extra, param in cases:
        kwargs = {"model": "imagen-edit-vertex_ai", "prompt": "x", "image": ("a.png", _png(mode="RGB")), **extra}
        with pytest.raises(openai.BadRequestError) as info:
            client.images.edit(**kwargs)
        assert info.value.body["param"] == param, (extra, info.value.body)
    with pytest.raises(openai.BadRequestError) as info:  # the Gemini API has no Imagen editing
        client.images.edit(model="imagen-edit-gemini", prompt="x", image=("a.png", _png(transparent_box=(0, 0, 4, 4))))
    assert info.value.body["code"] == "unsupported_operation"
    assert imagen_edit["vertex_ai"].server.requests == [] and imagen_edit["gemini"].server.requests == []


def test_an_imagen_edit_of_a_huge_or_broken_image_is_a_400(gateway, openai_client, imagen_edit):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A PNG header claiming 30000 × 30000 pixels: a few hundred bytes that would decode to 3.6 GB.
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    for image, param in ((bomb, "image"), (b"not an image at all", "image")):
        with pytest.raises(openai.BadRequestError) as info:
            openai_client().images.edit(model="imagen-edit-vertex_ai", prompt="x", image=("a.png", image))
        assert info.value.body["param"] == param
    assert imagen_edit["vertex_ai"].server.requests == []


def test_a_nova_canvas_edit_is_inpainting_with_the_mask_black_on_white(gateway, openai_client, bedrock_images,
                                                                       spend_logs):
    bedrock_images.server.edit_masks.clear()
    result = openai_client().images.edit(
        model="canvas", prompt="a red door", n=2, quality="high", response_format="b64_json",
        image=("room.png", _png(size=(640, 480))), mask=("m.png", _png(size=(640, 480), transparent_box=(0, 0, 100, 50))))
    assert len(result.data) == 2
    sent = bedrock_images.server.requests[-1]
    assert sent["path"] == "/model/amazon.nova-canvas-v1:0/invoke"
    assert sent["body"]["taskType"] == "INPAINTING" and sent["body"]["inPaintingParams"]["text"] == "a red door"
    assert sent["body"]["imageGenerationConfig"] == {"numberOfImages": 2, "quality": "premium"}
    [mask] = bedrock_images.server.edit_masks
    # Nova edits the black pixels (where OpenAI's mask was transparent) and keeps the white ones.
    assert mask.getpixel((10, 10)) == 0 and mask.getpixel((300, 300)) == 255
    [log] = spend_logs(1)
    assert (log.call_type, log.cost) == ("image_edit", 2 * Decimal("0.06"))  # premium, up to 1024 a side


def test_a_nova_canvas_edit_without_a_mask_uses_the_images_transparency_and_sends_it_opaque(
        gateway, openai_client, bedrock_images):
    bedrock_images.server.edit_masks.clear()
    openai_client().images.edit(model="canvas", prompt="sky", response_format="b64_json",
                                image=("room.png", _png(size=(640, 480), transparent_box=(0, 0, 640, 100))))
    [mask] = bedrock_images.server.edit_masks  # the fake refuses transparent pixels in the image itself
    assert mask.getpixel((5, 5)) == 0 and mask.getpixel((5, 300)) == 255


def test_bedrock_edits_refuse_what_nova_cannot_do_before_calling(gateway, openai_client, bedrock_images):
    client = openai_client()
    mask = ("m.png", _png(size=(640, 480), transparent_box=(0, 0, 10, 10)))
    for model, kwargs, param in (
        ("sd", {"mask": mask}, "model"),
        ("canvas", {"mask": mask, "n": 6}, "n"),
        ("canvas", {"mask": mask, "size": "1024x1024"}, "size"),
        ("canvas", {"mask": ("m.png", _png(size=(64, 64), transparent_box=(0, 0, 10, 10)))}, "mask"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            client.images.edit(model=model, prompt="x", image=("a.png", _png(size=(640, 480))), **kwargs)
        assert info.value.body["param"] == param, (model, kwargs, info.value.body)
    with pytest.raises(openai.BadRequestError) as info:  # Nova takes sides of 320 pixels or more
        client.images.edit(model="canvas", prompt="x", image=("a.png", _png(transparent_box=(0, 0, 4, 4))))
    assert info.value.body["param"] == "image"
    assert bedrock_images.server.requests == []
