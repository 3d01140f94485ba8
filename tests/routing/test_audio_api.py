"""POST /v1/audio/speech, /v1/audio/transcriptions and /v1/audio/translations through the gateway to
OpenAI and Azure fakes: speech streamed back as it arrives and priced per character; uploads sent on
as multipart and priced per second of audio; limited, access-checked and logged like chat."""

import math
from decimal import Decimal

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from tests.fakes.openai_media import AUDIO_CHUNK, AUDIO_CHUNKS, TRANSCRIBE_TOKENS, TRANSCRIPT
from tests.routing.media_fixtures import media_deployment, media_upstream  # noqa: F401 (fixtures)

AUDIO = bytes(range(256)) * 30  # 7680 bytes: the fake hears 7.68 s of it
WHISPER_PER_SECOND = Decimal("0.0001")  # OpenAI: whisper-1, $0.006 a minute
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def audio_models(media_deployment):
    media_deployment("tts-1", "tts-1", "audio_speech")
    media_deployment("transcriber", "whisper-1", "audio_transcription")
    media_deployment("azure-whisper", "whisper", "audio_transcription", provider="azure", api_version="2024-10-21",
                     extra_params={"base_model": "whisper-1"})
    media_deployment("broken-tts", "error-500", "audio_speech")
    media_deployment("broken-whisper", "error-429", "audio_transcription")


# --- speech ------------------------------------------------------------------------------------------


def test_speech_is_streamed_as_it_arrives_and_priced_per_character(gateway, openai_client, audio_models,
                                                                   media_upstream, spend_logs):
    media_upstream.release_audio.clear()
    text = "Hello from the gateway."
    received = b""
    with openai_client().audio.speech.with_streaming_response.create(model="tts-1", voice="alloy",
                                                                     input=text) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        for chunk in response.iter_bytes():
            received += chunk
            # The upstream holds back the rest until the first audio reached the client.
            media_upstream.release_audio.set()
    assert received == AUDIO_CHUNK * AUDIO_CHUNKS
    assert media_upstream.audio_released_early[-1] is True  # relayed, not buffered
    assert media_upstream.requests[-1]["body"] == {"model": "tts-1", "voice": "alloy", "input": text}
    [log] = spend_logs(1)
    assert (log.call_type, log.model, log.status) == ("speech", "tts-1", "success")
    assert log.cost == len(text) * Decimal("0.000015")  # tts-1: $15 per million characters


def test_speech_upstream_error_keeps_its_status(gateway, openai_client, audio_models, spend_logs):
    with pytest.raises(openai.InternalServerError):
        openai_client().audio.speech.create(model="broken-tts", voice="alloy", input="hi")
    assert spend_logs(1)[-1].status == "error"


@pytest.mark.parametrize("body, param", [
    ({"model": "tts-1", "input": "hi"}, "voice"),
    ({"model": "tts-1", "voice": "alloy"}, "input"),
    ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, "input"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 9}, "speed"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "mp4"}, "response_format"),
])
def test_speech_invalid_body_is_400_naming_the_param(gateway, audio_models, media_upstream, body, param):
    response = httpx.post(gateway.url + "/v1/audio/speech", headers=AUTH, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert media_upstream.requests == []


# --- transcriptions and translations ----------------------------------------------------------------


def test_a_transcription_is_uploaded_as_sent_and_priced_per_second(gateway, openai_client, audio_models,
                                                                   media_upstream, spend_logs):
    result = openai_client().audio.transcriptions.create(
        model="transcriber", file=("speech.mp3", AUDIO, "audio/mpeg"), language="en", temperature=0.2,
        timestamp_granularities=["segment"], response_format="verbose_json")
    assert result.text == TRANSCRIPT
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/v1/audio/transcriptions"
    assert sent["file"] == AUDIO and sent["filename"] == "speech.mp3"
    assert sent["body"] == {"model": "whisper-1", "language": "en", "temperature": "0.2",
                            "timestamp_granularities": ["segment"], "response_format": "verbose_json"}
    [log] = spend_logs(1)
    assert (log.call_type, log.model, log.status) == ("transcription", "transcriber", "success")
    assert log.cost == math.ceil(len(AUDIO) / 1000) * WHISPER_PER_SECOND  # usage.seconds, as whisper reports it


def test_a_text_transcription_is_still_priced(gateway, openai_client, audio_models, media_upstream, spend_logs):
    text = openai_client().audio.transcriptions.create(model="transcriber", file=("a.wav", AUDIO, "audio/wav"),
                                                       response_format="text")
    assert text == TRANSCRIPT + "\n"
    assert media_upstream.requests[-1]["body"]["response_format"] == "json"  # which reports the duration
    [log] = spend_logs(1)
    assert log.cost == math.ceil(len(AUDIO) / 1000) * WHISPER_PER_SECOND


def test_subtitles_are_passed_through_and_priced_to_the_last_cue(gateway, audio_models, spend_logs):
    response = httpx.post(gateway.url + "/v1/audio/transcriptions", headers=AUTH,
                          data={"model": "transcriber", "response_format": "srt"},
                          files={"file": ("a.mp3", AUDIO, "audio/mpeg")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "-->" in response.text
    [log] = spend_logs(1)
    assert log.cost == Decimal("7.68") * WHISPER_PER_SECOND and log.cost_status == "estimated"


def test_a_translation_is_priced_by_its_duration(gateway, openai_client, audio_models, media_upstream, spend_logs):
    result = openai_client().audio.translations.create(model="transcriber", file=("a.mp3", AUDIO, "audio/mpeg"))
    assert result.text == TRANSCRIPT
    assert media_upstream.requests[-1]["path"] == "/v1/audio/translations"
    assert media_upstream.requests[-1]["body"]["response_format"] == "verbose_json"
    [log] = spend_logs(1)
    assert (log.call_type, log.cost) == ("translation", Decimal("7.68") * WHISPER_PER_SECOND)


def test_azure_transcription_gets_its_path_key_and_base_model_price(gateway, openai_client, audio_models,
                                                                     media_upstream, spend_logs):
    result = openai_client().audio.transcriptions.create(model="azure-whisper", file=("a.mp3", AUDIO, "audio/mpeg"))
    assert result.text == TRANSCRIPT
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/openai/deployments/whisper/audio/transcriptions?api-version=2024-10-21"
    assert sent["file"] == AUDIO
    [log] = spend_logs(1)
    assert log.cost == math.ceil(len(AUDIO) / 1000) * WHISPER_PER_SECOND


def test_an_upstream_error_keeps_its_status(gateway, openai_client, audio_models, spend_logs):
    with pytest.raises(openai.RateLimitError):
        openai_client().audio.transcriptions.create(model="broken-whisper", file=("a.mp3", AUDIO, "audio/mpeg"))
    assert spend_logs(1)[-1].status == "error"


def test_a_model_the_key_may_not_use_is_403(gateway, openai_client, audio_models, make_key, media_upstream):
    _, raw_key = make_key(models=["tts-1"])
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(raw_key).audio.transcriptions.create(model="transcriber", file=("a.mp3", AUDIO, "audio/mpeg"))
    assert media_upstream.requests == []


def test_an_exhausted_budget_is_429_insufficient_quota(gateway, openai_client, audio_models, make_key,
                                                       media_upstream):
    _, raw_key = make_key(max_budget=Decimal("0"))
    for call in (
        lambda c: c.audio.transcriptions.create(model="transcriber", file=("a.mp3", AUDIO, "audio/mpeg")),
        lambda c: c.audio.speech.create(model="tts-1", voice="alloy", input="hi"),
    ):
        with pytest.raises(openai.RateLimitError) as info:
            call(openai_client(raw_key))
        assert info.value.body["code"] == "insufficient_quota"
    assert media_upstream.requests == []


def _multipart(parts: list[bytes], boundary: str = "XyZ") -> tuple[bytes, dict]:
    return b"".join(parts), {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}


def _field(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


@pytest.mark.parametrize("parts, param", [
    ([_field("model", b"transcriber"), b"--XyZ--\r\n"], "file"),
    ([_field("file", AUDIO, "a.mp3"), b"--XyZ--\r\n"], "model"),
    ([_field("model", b"transcriber"), _field("file", AUDIO, "a.mp3"), _field("temperature", b"hot"),
      b"--XyZ--\r\n"], "temperature"),
    ([_field("model", b"transcriber"), _field("file", AUDIO, "a.mp3"), _field("response_format", b"mp3"),
      b"--XyZ--\r\n"], "response_format"),
    ([_field("model", b"transcriber"), _field("file", b"not a file")[:-2], b"--XyZ--\r\n"], "file"),
    ([_field("model", b"transcriber"), _field("model", b"again"), b"--XyZ--\r\n"], "model"),
    ([_field("model", b"transcriber"), b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"'
      b"\r\n\r\n" + AUDIO], "file"),  # never closed
    ([_field("model", b"\xff\xfe")], "model"),
    ([_field("model", b"transcriber"), _field("file", b"just text"), b"--XyZ--\r\n"], "file"),  # not an upload
])
def test_a_malformed_upload_is_400_naming_the_field(gateway, audio_models, media_upstream, parts, param):
    body, headers = _multipart(parts)
    response = httpx.post(gateway.url + "/v1/audio/transcriptions", headers=headers, content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert media_upstream.requests == []


@pytest.mark.parametrize("body, content_type", [
    (b"garbage", "multipart/form-data; boundary=XyZ"),
    (b"--XyZ\r\nno headers end", "multipart/form-data; boundary=XyZ"),
    (b"{}", "multipart/form-data"),
    (b'{"model": "transcriber"}', "application/json"),
])
def test_a_body_that_is_no_form_is_400_never_500(gateway, audio_models, media_upstream, body, content_type):
    response = httpx.post(gateway.url + "/v1/audio/transcriptions", headers={**AUTH, "Content-Type": content_type},
                          content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert media_upstream.requests == []


def test_an_upload_over_the_body_limit_is_413(gateway, audio_models, media_upstream):
    from gateway_project import asgi

    asgi.data_plane.max_body_bytes, previous = 4000, asgi.data_plane.max_body_bytes
    try:
        response = httpx.post(gateway.url + "/v1/audio/transcriptions", headers=AUTH,
                              data={"model": "transcriber"}, files={"file": ("a.mp3", AUDIO, "audio/mpeg")})
    finally:
        asgi.data_plane.max_body_bytes = previous
    assert response.status_code == 413
    assert media_upstream.requests == []


def test_a_failed_upload_is_sent_again_to_the_fallback(gateway, openai_client, media_deployment, media_upstream,
                                                       group_settings, spend_logs):
    media_deployment("whisper-primary", "error-500", "audio_transcription")
    media_deployment("whisper-backup", "whisper-1", "audio_transcription")
    group_settings("whisper-primary", fallbacks=["whisper-backup"], num_retries=0)
    response = openai_client().audio.transcriptions.with_raw_response.create(
        model="whisper-primary", file=("a.mp3", AUDIO, "audio/mpeg"))
    assert response.parse().text == TRANSCRIPT
    assert response.headers["x-litellm-attempted-fallbacks"] == "1"
    assert [r["file"] for r in media_upstream.requests] == [AUDIO, AUDIO]  # the same upload, sent twice
    [log] = spend_logs(1)
    assert log.upstream_model == "whisper-1" and log.cost == math.ceil(len(AUDIO) / 1000) * WHISPER_PER_SECOND


def test_speech_abandoned_by_the_client_closes_the_upstream_and_still_costs_its_characters(
        gateway, openai_client, audio_models, media_upstream, spend_logs):
    media_upstream.release_audio.clear()
    with openai_client().audio.speech.with_streaming_response.create(model="tts-1", voice="alloy",
                                                                     input="Goodbye") as response:
        first = next(response.iter_bytes())
        assert first
    # The client left after the first chunk, while the upstream still holds the rest back: the gateway
    # notices, closes the upstream and settles before any more audio exists.
    [log] = spend_logs(1)
    media_upstream.release_audio.set()
    assert (log.status, log.error_type) == ("cancelled", "client_disconnected")
    assert log.cost == len("Goodbye") * Decimal("0.000015")


def test_gpt_4o_transcribe_streams_the_text_and_is_priced_by_its_tokens(gateway, openai_client, media_deployment,
                                                                         spend_logs):
    # OpenAI: gpt-4o-transcribe, $2.50 per million text input... here the deployment's own prices.
    media_deployment("live-transcriber", "gpt-4o-transcribe", "audio_transcription",
                     input_cost_per_token=Decimal("0.0000025"), output_cost_per_token=Decimal("0.00001"))
    stream = openai_client().audio.transcriptions.create(model="live-transcriber", stream=True,
                                                         file=("a.mp3", AUDIO, "audio/mpeg"))
    events = list(stream)
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta").strip() == TRANSCRIPT
    assert events[-1].type == "transcript.text.done" and events[-1].text == TRANSCRIPT
    [log] = spend_logs(1)
    assert log.is_stream and log.call_type == "transcription"
    assert (log.prompt_tokens, log.completion_tokens) == (TRANSCRIBE_TOKENS["input_tokens"],
                                                          TRANSCRIBE_TOKENS["output_tokens"])
    assert log.cost == (TRANSCRIBE_TOKENS["input_tokens"] * Decimal("0.0000025")
                        + TRANSCRIBE_TOKENS["output_tokens"] * Decimal("0.00001"))


def test_a_whisper_stream_is_the_upstreams_400(gateway, openai_client, audio_models):
    with pytest.raises(openai.BadRequestError) as info:
        list(openai_client().audio.transcriptions.create(model="transcriber", stream=True,
                                                         file=("a.mp3", AUDIO, "audio/mpeg")))
    assert info.value.body["param"] == "stream"


def test_a_transcription_reserves_the_longest_its_upload_can_last(gateway, openai_client, audio_models, make_key,
                                                                   media_upstream):
    """7,680 bytes can hold at most 3.84 s of audio (at 16 kbit/s): $0.000384 at whisper's price,
    more than this budget has left, so nothing is sent; a smaller upload fits."""
    _, raw_key = make_key(max_budget=Decimal("0.0002"))
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(raw_key).audio.transcriptions.create(model="transcriber", file=("a.mp3", AUDIO, "audio/mpeg"))
    assert info.value.body["code"] == "insufficient_quota"
    assert media_upstream.requests == []
    small = AUDIO[:2000]  # at most 1 s: $0.0001
    assert openai_client(raw_key).audio.transcriptions.create(
        model="transcriber", file=("a.mp3", small, "audio/mpeg")).text == TRANSCRIPT
