"""What every fake provider answers, decided in one place from a provider-neutral view of the request.

Each fake upstream parses its own wire format into a FakeRequest, asks `decide()`, and
writes the FakeScenario back in its own wire format. So the conformance table can
expect the same content and usage from every provider, and the reply shows what the
upstream received (system prompt, turns, tool results, images).

The upstream model name chooses the scenario:
  error-<status>   an error with that status in the provider's format (429: Retry-After 7)
  bad-json         a 200 whose body is not JSON
  slow             answers after 5 s (for timeout tests)
  cut              a stream cut off after its first piece of content (non-stream: connection dropped)
  parallel...      two tool calls when tools are offered (otherwise one)
  anything else    a normal answer
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

PROMPT_TOKENS_BASE = 20
COMPLETION_TOKENS = 9
CACHED_TOKENS = 4  # for providers that report cache reads


@dataclass
class FakeToolResult:
    call_id: str | None
    name: str | None
    content: str


@dataclass
class FakeRequest:
    model: str
    system: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)  # (user|assistant, text)
    tools: list[str] = field(default_factory=list)
    tool_results: list[FakeToolResult] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # media types
    max_tokens: int | None = None
    stream: bool = False


@dataclass
class FakeToolCall:
    id: str
    name: str
    arguments: dict


class Mode(enum.Enum):
    NORMAL = "normal"
    ERROR = "error"
    BAD_JSON = "bad-json"
    SLOW = "slow"
    CUT = "cut"


@dataclass
class FakeScenario:
    mode: Mode
    text: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = COMPLETION_TOKENS
    cached_tokens: int = CACHED_TOKENS
    error_status: int = 0
    retry_after: str | None = None

    @property
    def finish(self) -> str:
        """OpenAI's finish_reason for this answer."""
        return "tool_calls" if self.tool_calls else "stop"

    def text_pieces(self) -> list[str]:
        """The text as a stream sends it: word by word, spaces kept."""
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


def expected_text(system: str | None, turns: int, last: str) -> str:
    return f"system={system or '-'}; turns={turns}; last={last}"


def decide(request: FakeRequest) -> FakeScenario:
    model = request.model
    prompt_tokens = PROMPT_TOKENS_BASE + 3 * len(request.turns)
    if model.startswith("error-"):
        status = int(model.split("-", 1)[1])
        return FakeScenario(Mode.ERROR, error_status=status, retry_after="7" if status == 429 else None)
    if model == "bad-json":
        return FakeScenario(Mode.BAD_JSON)
    mode = {"slow": Mode.SLOW, "cut": Mode.CUT}.get(model, Mode.NORMAL)
    scenario = FakeScenario(mode, prompt_tokens=prompt_tokens)
    if request.tool_results:
        scenario.text = "tool results: " + "; ".join(
            f"{r.name or r.call_id}={r.content}" for r in request.tool_results
        )
    elif request.tools:
        cities = ["Paris", "Berlin"] if "parallel" in model else ["Paris"]
        scenario.tool_calls = [
            FakeToolCall(id=f"call_{i + 1}", name=request.tools[0], arguments={"city": city})
            for i, city in enumerate(cities)
        ]
    elif request.images:
        scenario.text = "images: " + ",".join(request.images)
    else:
        users = [text for role, text in request.turns if role == "user"]
        scenario.text = expected_text(request.system, len(request.turns), users[-1] if users else "")
    return scenario
