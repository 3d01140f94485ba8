"""A strict fake of OpenAI's (and Azure OpenAI's) moderations, images and audio endpoints.

Speaks the real wire format of the public API reference and refuses what OpenAI refuses: a
wrong key (401), an unknown argument ("Unrecognized request argument supplied"), a missing
or invalid field, a size or quality the model does not take, an upload without a file or
with an unsupported extension (400 naming the param).

OpenAI paths are under /v1; Azure's under /openai/deployments/{deployment}/... with
`api-version` in the query and the key in `api-key` (the deployment names the model).

Behaviour chosen by the model name: `error-<status>` answers an OpenAI-shaped error.
Speech streams its audio in chunks; the first chunk goes at once, the rest only when
`release_audio` is set (or after 5 s), so a test can prove the gateway relays the audio as
it arrives instead of buffering it. Transcriptions last one second per 1000 bytes of audio.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import threading
import time

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

API_KEY = "sk-fake-openai-media"
AUDIO_CHUNK = b"ID3" + bytes(range(256)) * 16  # the first chunk of a fake MP3
AUDIO_CHUNKS = 3
IMAGE_TOKENS = {"input_tokens": 50, "output_tokens": 4160}  # a gpt-image answer's usage
TRANSCRIPT = "The quick brown fox jumps over the lazy dog."
TRANSCRIBE_TOKENS = {"input_tokens": 120, "output_tokens": 11}  # a gpt-4o-transcribe answer's usage

_MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
_IMAGE_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image-1": ("auto", "1024x1024", "1536x1024", "1024x1536"),
}
_IMAGE_FIELDS = {"model", "prompt", "n", "quality", "response_format", "size", "style", "user", "background",
                 "moderation", "output_compression", "output_format", "stream", "partial_images"}
_SPEECH_FIELDS = {"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"}
_AUDIO_EXTENSIONS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm")
_ERROR = re.compile(r"error-(\d{3})")


def error(status: int, message: str, *, param: str | None = None, code: str | None = None,
          error_type: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return web.json_response(body, status=status)


class RefusedRequest(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


class OpenAIMediaUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__(client_max_size=64 * 1024 * 1024)
        self.requests: list[dict] = []
        self.release_audio = threading.Event()
        self.audio_released_early: list[bool] = []  # per speech request: released before the timeout
        for path, handler in (
            ("moderations", self.moderations),
            ("images/generations", self.images),
            ("images/edits", self.image_edits),
            ("images/variations", self.image_variations),
            ("audio/speech", self.speech),
            ("audio/transcriptions", self.transcriptions),
            ("audio/translations", self.translations),
        ):
            self.app.router.add_post(f"/v1/{path}", handler)
            self.app.router.add_post(f"/openai/deployments/{{deployment}}/{path}", handler)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    # --- common ------------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> None:
        if request.match_info.get("deployment"):
            if request.headers.get("api-key") != API_KEY:
                raise RefusedRequest(error(401, "Access denied due to invalid subscription key.", code="401"))
            if not request.query.get("api-version"):
                raise RefusedRequest(error(404, "Resource not found", code="404"))
        elif request.headers.get("Authorization") != f"Bearer {API_KEY}":
            raise RefusedRequest(error(401, "Incorrect API key provided.", code="invalid_api_key"))

    async def _json(self, request: web.Request, allowed: set[str], required: tuple[str, ...]) -> dict:
        self._authorize(request)
        if request.content_type != "application/json":
            raise RefusedRequest(error(400, "Invalid Content-Type header; expected application/json."))
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise RefusedRequest(error(400, "We could not parse the JSON body of your request.")) from None
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": body})
        for name in body:
            if name not in allowed:
                raise RefusedRequest(error(400, f"Unrecognized request argument supplied: {name}"))
        for name in required:
            if body.get(name) in (None, ""):
                raise RefusedRequest(error(400, f"Missing required parameter: '{name}'.", param=name,
                                           code="missing_required_parameter"))
        if request.match_info.get("deployment"):
            body["model"] = request.match_info["deployment"]
        self._scripted(body.get("model") or "")
        return body

    @staticmethod
    def _scripted(model: str) -> None:
        match = _ERROR.fullmatch(model)
        if match:
            status = int(match[1])
            raise RefusedRequest(error(status, f"fake upstream error {status}",
                                       error_type="server_error" if status >= 500 else "invalid_request_error",
                                       code="rate_limit_exceeded" if status == 429 else None))

    @staticmethod
    async def _answer(handler, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RefusedRequest as refused:
            return refused.response

    # --- moderations -------------------------------------------------------------------------

    async def moderations(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(self._moderations, request)

    async def _moderations(self, request: web.Request) -> web.Response:
        body = await self._json(request, {"model", "input"}, ("input",))
        inputs = body["input"]
        if isinstance(inputs, str):
            texts = [inputs]
        elif isinstance(inputs, list) and all(isinstance(i, str) for i in inputs):
            texts = inputs
        elif isinstance(inputs, list) and all(isinstance(i, dict) for i in inputs):
            texts = [" ".join(part.get("text", "") for part in inputs)]
        else:
            return error(400, "Invalid type for 'input'.", param="input", code="invalid_type")
        results = []
        for text in texts:
            violent = "kill" in text.lower()
            results.append({
                "flagged": violent,
                "categories": {name: violent and name == "violence" for name in _MODERATION_CATEGORIES},
                "category_scores": {name: (0.97 if violent and name == "violence" else 0.0001)
                                    for name in _MODERATION_CATEGORIES},
                "category_applied_input_types": {name: ["text"] for name in _MODERATION_CATEGORIES},
            })
        return web.json_response({"id": "modr-fake123", "model": body.get("model") or "omni-moderation-latest",
                                  "results": results})

    # --- images ------------------------------------------------------------------------------

    async def images(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(self._images, request)

    async def _images(self, request: web.Request) -> web.Response:
        body = await self._json(request, _IMAGE_FIELDS, ("prompt",))
        model = body.get("model") or "dall-e-2"
        # An Azure deployment's name says which model it runs ("dall-e-3-eastus").
        family = "gpt-image-1" if "gpt-image" in model else "dall-e-3" if "dall-e-3" in model else "dall-e-2"
        size = body.get("size") or ("auto" if family == "gpt-image-1" else "1024x1024")
        if size not in _IMAGE_SIZES[family]:
            return error(400, f"Invalid value: '{size}'. Supported values are: {', '.join(_IMAGE_SIZES[family])}.",
                         param="size", code="invalid_value")
        n = body.get("n") or 1
        if family == "dall-e-3" and n != 1:
            return error(400, "Invalid 'n': integer above maximum value. Expected a value <= 1.", param="n",
                         code="integer_above_max_value")
        quality = body.get("quality")
        allowed_quality = {"dall-e-2": ("standard",), "dall-e-3": ("standard", "hd"),
                           "gpt-image-1": ("low", "medium", "high", "auto")}[family]
        if quality is not None and quality not in allowed_quality:
            return error(400, f"Invalid value: '{quality}'.", param="quality", code="invalid_value")
        if body.get("stream") and family != "gpt-image-1":
            return error(400, "Streaming is only supported for gpt-image models.", param="stream",
                         code="invalid_value")
        if family == "gpt-image-1":
            if body.get("response_format") is not None:
                return error(400, "Unknown parameter: 'response_format'.", param="response_format",
                             code="unknown_parameter")
            if body.get("stream"):
                return await self._image_stream(request, body, n, quality or "medium")
            return web.json_response({
                "created": int(time.time()), "background": "opaque",
                "data": [{"b64_json": base64.b64encode(b"\x89PNG fake").decode()} for _ in range(n)],
                "output_format": "png", "quality": quality or "medium", "size": "1024x1024",
                "usage": {"input_tokens": IMAGE_TOKENS["input_tokens"], "output_tokens": IMAGE_TOKENS["output_tokens"],
                          "total_tokens": sum(IMAGE_TOKENS.values()),
                          "input_tokens_details": {"text_tokens": IMAGE_TOKENS["input_tokens"], "image_tokens": 0}},
            })
        if body.get("response_format") == "b64_json":
            data = [{"b64_json": base64.b64encode(b"\x89PNG fake").decode()} for _ in range(n)]
        else:
            data = [{"url": f"https://images.example.test/{i}.png"} for i in range(n)]
        if family == "dall-e-3":
            for item in data:
                item["revised_prompt"] = "A revised " + body["prompt"]
        return web.json_response({"created": int(time.time()), "data": data})

    async def image_edits(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(lambda r: self._image_upload(r, edit=True), request)

    async def image_variations(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(lambda r: self._image_upload(r, edit=False), request)

    async def _image_upload(self, request: web.Request, *, edit: bool) -> web.Response:
        """Edits: `image` (or `image[]`, gpt-image), `prompt`, optional `mask`; variations (dall-e-2
        only): `image`. PNG files only for dall-e-2, as OpenAI asks."""
        self._authorize(request)
        if request.content_type != "multipart/form-data":
            return error(400, "Invalid Content-Type header; expected multipart/form-data.")
        fields: dict = {}
        files: dict[str, list] = {}
        async for part in await request.multipart():
            name = part.name.removesuffix("[]")
            if part.filename is not None:
                files.setdefault(name, []).append((part.filename, await part.read()))
            else:
                fields[name] = await part.text()
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": fields,
                              "files": files})
        allowed = {"model", "n", "size", "response_format", "user"}
        if edit:
            allowed |= {"prompt", "quality", "background", "output_format", "output_compression", "input_fidelity",
                        "stream", "partial_images"}
        for name in fields:
            if name not in allowed:
                return error(400, f"Unrecognized request argument supplied: {name}")
        if request.match_info.get("deployment"):
            fields["model"] = request.match_info["deployment"]
        model = fields.get("model") or "dall-e-2"
        self._scripted(model)
        if not files.get("image"):
            return error(400, "Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
        if edit and not fields.get("prompt"):
            return error(400, "Missing required parameter: 'prompt'.", param="prompt",
                         code="missing_required_parameter")
        gpt_image = "gpt-image" in model
        if not gpt_image:
            if not edit and model != "dall-e-2":
                return error(400, "Invalid value for 'model': only dall-e-2 makes variations.", param="model")
            if len(files["image"]) > 1:
                return error(400, "dall-e-2 takes one image.", param="image")
            if not files["image"][0][1].startswith(b"\x89PNG"):
                return error(400, "Invalid input image - format must be in ['RGBA', 'LA', 'L'], got RGB.",
                             param="image", code="invalid_image_format")
        n = int(fields.get("n") or 1)
        size = fields.get("size") or "1024x1024"
        if not gpt_image and size not in _IMAGE_SIZES["dall-e-2"]:
            return error(400, f"Invalid value: '{size}'.", param="size", code="invalid_value")
        if gpt_image:
            input_tokens = IMAGE_TOKENS["input_tokens"] + 323 * len(files["image"])  # text and image input
            return web.json_response({
                "created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(b"\x89PNG fake").decode()} for _ in range(n)],
                "usage": {"input_tokens": input_tokens, "output_tokens": IMAGE_TOKENS["output_tokens"],
                          "total_tokens": input_tokens + IMAGE_TOKENS["output_tokens"],
                          "input_tokens_details": {"text_tokens": IMAGE_TOKENS["input_tokens"],
                                                   "image_tokens": 323 * len(files["image"])}},
            })
        return web.json_response({"created": int(time.time()),
                                  "data": [{"url": f"https://images.example.test/e{i}.png"} for i in range(n)]})

    # --- speech ------------------------------------------------------------------------------

    async def speech(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(self._speech, request)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request, _SPEECH_FIELDS, ("model", "input", "voice"))
        if len(body["input"]) > 4096:
            return error(400, "string too long", param="input", code="string_above_max_length")
        media = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                 "wav": "audio/wav", "pcm": "audio/pcm"}[body.get("response_format") or "mp3"]
        response = web.StreamResponse(headers={"Content-Type": media})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(AUDIO_CHUNK)
        released = await asyncio.get_running_loop().run_in_executor(None, self.release_audio.wait, 5)
        self.audio_released_early.append(released)
        for _ in range(AUDIO_CHUNKS - 1):
            await response.write(AUDIO_CHUNK)
        await response.write_eof()
        return response

    # --- transcriptions and translations ------------------------------------------------------

    async def _image_stream(self, request: web.Request, body: dict, n: int, quality: str) -> web.StreamResponse:
        """gpt-image's stream: `partial_images` partial frames, then one completed event per image
        carrying that image's usage (the events named as their type, as OpenAI sends them)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        common = {"created_at": int(time.time()), "size": "1024x1024", "quality": quality,
                  "background": "opaque", "output_format": "png"}
        image = base64.b64encode(b"\x89PNG fake").decode()

        async def send(event: dict) -> None:
            await response.write(f"event: {event['type']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n")

        for _ in range(n):
            for index in range(body.get("partial_images") or 0):
                await send({"type": "image_generation.partial_image", "b64_json": image,
                            "partial_image_index": index, **common})
            await send({"type": "image_generation.completed", "b64_json": image, **common, "usage": {
                "input_tokens": IMAGE_TOKENS["input_tokens"], "output_tokens": IMAGE_TOKENS["output_tokens"],
                "total_tokens": sum(IMAGE_TOKENS.values()),
                "input_tokens_details": {"text_tokens": IMAGE_TOKENS["input_tokens"], "image_tokens": 0}}})
        return response

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(lambda r: self._audio_text(r, "transcribe"), request)

    async def translations(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(lambda r: self._audio_text(r, "translate"), request)

    async def _multipart(self, request: web.Request) -> tuple[dict, bytes, str]:
        self._authorize(request)
        if request.content_type != "multipart/form-data":
            raise RefusedRequest(error(400, "Invalid Content-Type header; expected multipart/form-data."))
        fields: dict = {}
        audio, filename = None, ""
        reader = await request.multipart()
        async for part in reader:
            if part.name == "file":
                filename = part.filename or ""
                audio = await part.read()
            elif part.name.endswith("[]"):
                fields.setdefault(part.name[:-2], []).append(await part.text())
            else:
                fields[part.name] = await part.text()
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": fields,
                              "file": audio, "filename": filename})
        if audio is None:
            raise RefusedRequest(error(400, "Missing required parameter: 'file'.", param="file",
                                       code="missing_required_parameter"))
        if filename.rpartition(".")[2].lower() not in _AUDIO_EXTENSIONS:
            raise RefusedRequest(error(400, f"Invalid file format. Supported formats: {list(_AUDIO_EXTENSIONS)}",
                                       param="file", code="invalid_value"))
        if request.match_info.get("deployment"):
            fields["model"] = request.match_info["deployment"]
        if not fields.get("model"):
            raise RefusedRequest(error(400, "Missing required parameter: 'model'.", param="model",
                                       code="missing_required_parameter"))
        self._scripted(fields["model"])
        return fields, audio, filename

    async def _transcript_stream(self, request: web.Request) -> web.StreamResponse:
        """gpt-4o-transcribe's stream: text deltas, then the whole text with the call's token usage
        (data-only events, as OpenAI sends them)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in TRANSCRIPT.split(" "):
            delta = {"type": "transcript.text.delta", "delta": word + " "}
            await response.write(b"data: " + orjson.dumps(delta) + b"\n\n")
        done = {"type": "transcript.text.done", "text": TRANSCRIPT, "usage": {
            "type": "tokens", "input_tokens": TRANSCRIBE_TOKENS["input_tokens"],
            "input_token_details": {"text_tokens": 0, "audio_tokens": TRANSCRIBE_TOKENS["input_tokens"]},
            "output_tokens": TRANSCRIBE_TOKENS["output_tokens"], "total_tokens": sum(TRANSCRIBE_TOKENS.values())}}
        await response.write(b"data: " + orjson.dumps(done) + b"\n\n")
        return response

    async def _audio_text(self, request: web.Request, task: str) -> web.Response:
        fields, audio, _ = await self._multipart(request)
        allowed = {"model", "prompt", "response_format", "temperature"}
        if task == "transcribe":
            allowed |= {"language", "timestamp_granularities", "include", "stream", "chunking_strategy"}
        for name in fields:
            if name not in allowed:
                return error(400, f"Unrecognized request argument supplied: {name}")
        duration = len(audio) / 1000
        response_format = fields.get("response_format") or "json"
        if fields.get("stream") == "true":
            if "gpt-4o" not in fields["model"]:
                return error(400, f"Streaming is not supported for the {fields['model']} model.", param="stream",
                             code="unsupported_value")
            if response_format not in ("json", "text"):
                return error(400, f"response_format '{response_format}' cannot be streamed.",
                             param="response_format", code="unsupported_value")
            return await self._transcript_stream(request)
        if response_format == "text":
            return web.Response(text=TRANSCRIPT + "\n", content_type="text/plain")
        if response_format in ("srt", "vtt"):
            end = f"00:00:{int(duration):02d}{',' if response_format == 'srt' else '.'}{int(duration * 1000) % 1000:03d}"
            start = "00:00:00,000" if response_format == "srt" else "00:00:00.000"
            text = (f"1\n{start} --> {end}\n{TRANSCRIPT}\n\n" if response_format == "srt"
                    else f"WEBVTT\n\n{start} --> {end}\n{TRANSCRIPT}\n\n")
            return web.Response(text=text, content_type="text/plain")
        usage = {"type": "duration", "seconds": math.ceil(duration)}
        if response_format == "verbose_json":
            answer = {"task": task, "language": "english", "duration": duration, "text": TRANSCRIPT,
                      "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": TRANSCRIPT,
                                    "tokens": [1, 2, 3], "temperature": 0.0, "avg_logprob": -0.2,
                                    "compression_ratio": 1.2, "no_speech_prob": 0.01}]}
            if task == "transcribe":
                answer["usage"] = usage
            return web.json_response(answer)
        if response_format != "json":
            return error(400, f"Invalid value: '{response_format}'.", param="response_format", code="invalid_value")
        answer = {"text": TRANSCRIPT}
        if task == "transcribe":
            answer["usage"] = usage  # translations' JSON carries no usage (OpenAI's schema)
        return web.json_response(answer)
