"""Guardrails: what must not reach a provider, or a client, stopped or masked on the request path.

Configured as LiteLLM's `guardrails:` list in config.yaml:

    guardrails:
      - guardrail_name: no-secrets
        litellm_params: {guardrail: hide-secrets, mode: pre_call, default_on: true}
      - guardrail_name: pii
        litellm_params: {guardrail: presidio, mode: [pre_call, post_call], pii_entities_config: {EMAIL_ADDRESS: MASK}}

A guardrail runs on a request when it is `default_on`, when the key, its team or the model group
names it (`guardrails` on /key/generate and /team/new, their metadata.guardrails, the model group's
settings), or when the request itself asks for it (`guardrails: [...]` or `metadata.guardrails`).
A request cannot turn off one the operator or its key put on.

Modes:
- `pre_call`: on the request's text before the upstream call; may mask it or refuse the request.
- `during_call`: on the request's text too, refusing only (never changing what is sent).
- `post_call`: on the answer's text; may mask it or refuse it. For a streamed answer it checks
  the text as it streams (holding back the last GUARD_HOLD_BACK characters so a masked span
  never goes out half-seen) and cuts the stream cleanly, with an error event, on a refusal.

A refusal is a 400 `content_policy_violation` naming the guardrail. A guardrail that fails
(raises) is a 503 `guardrail_error` unless GATEWAY_GUARDRAIL_FAIL_OPEN lets the request through.
Every decision goes on the request's spend log (metadata.guardrails) and in
gateway_guardrail_decisions_total.

A guardrail of your own: `guardrail: package.module.Class`, made with its litellm_params; it
subclasses Guardrail and overrides `check_text` (or `pre_call` / `post_call` for whole bodies).
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from prometheus_client import Counter

from apps.core.errors import GatewayError
from apps.core.metrics import REGISTRY

logger = logging.getLogger(__name__)

MODES = ("pre_call", "during_call", "post_call")
GUARD_HOLD_BACK = 128  # characters of a streamed answer kept until the text after them is seen

decisions_total = Counter("gateway_guardrail_decisions", "Guardrail decisions, by guardrail, mode and outcome.",
                          ("guardrail", "mode", "outcome"), registry=REGISTRY)


_counters: dict[tuple[str, str, str], object] = {}  # labels() looked up once per (guardrail, mode, outcome)


class GuardrailRefusal(GatewayError):
    """A guardrail's refusal, as the client gets it: final (never retried elsewhere, never counted
    against a deployment)."""


class GuardrailViolation(Exception):
    """Raised by a guardrail to refuse the request or the answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Guardrail:
    """The interface. `check_text(text, mode)` returns the text (changed, to mask it) or raises
    GuardrailViolation; the default pre_call / post_call apply it to every text of the body."""

    kind = "custom"
    masks = False  # changes text (so a streamed answer is held back a little while it is checked)

    def __init__(self, name: str, params: dict) -> None:
        self.name = name
        self.params = params
        mode = params.get("mode") or "pre_call"
        self.modes = frozenset([mode] if isinstance(mode, str) else mode)
        unknown = self.modes - set(MODES)
        if unknown:
            raise ValueError(f"guardrail {name}: mode must be among {', '.join(MODES)}, not {sorted(unknown)}")
        self.default_on = params.get("default_on") is True

    def check_text(self, text: str, mode: str) -> str:
        return text

    def may_match(self, text: str) -> bool:
        """False when check_text would surely leave `text` as it is (a fast pass for clean text)."""
        return True

    async def pre_call(self, body: dict, mode: str) -> dict:
        return map_request_text(body, lambda text: self.check_text(text, mode))

    @property
    def checks_text_only(self) -> bool:
        """Its request check is check_text over the request's texts (pre_call not overridden)."""
        return type(self).pre_call is Guardrail.pre_call

    async def post_call(self, answer: dict) -> dict:
        return map_answer_text(answer, lambda text: self.check_text(text, "post_call"))


# --- the texts of a request and of an answer -------------------------------------------------------


def _map_content(content, change):
    """`content` (a string, or parts with text) with `change` applied; the same object if unchanged."""
    if isinstance(content, str):
        return change(content)
    if isinstance(content, list):
        parts = [{**part, "text": new} if isinstance(part, dict) and isinstance(part.get("text"), str)
                 and (new := change(part["text"])) != part["text"] else part for part in content]
        return content if all(a is b for a, b in zip(parts, content)) else parts
    return content


def _map_list(values: list, change) -> list:
    mapped = []
    for value in values:
        if isinstance(value, str):
            mapped.append(change(value))
        elif isinstance(value, dict) and "content" in value:
            content = _map_content(value.get("content"), change)
            mapped.append(value if content is value.get("content") else {**value, "content": content})
        else:
            mapped.append(value)
    return values if all(a is b for a, b in zip(mapped, values)) else mapped


def map_request_text(body: dict, change) -> dict:
    """The body with `change` applied to each text a model reads (messages, prompt, input, ...);
    the same object when no text changed (the common case costs no copy)."""
    changed = None
    for name in ("messages", "prompt", "input", "instructions", "query", "documents"):
        value = body.get(name)
        if isinstance(value, str):
            new = change(value)
        elif isinstance(value, list):
            new = _map_list(value, change)
        else:
            continue
        if new is not value and new != value:
            if changed is None:
                changed = dict(body)
            changed[name] = new
    return body if changed is None else changed


def request_texts(body: dict) -> list[str]:
    texts: list[str] = []
    map_request_text(body, lambda text: texts.append(text) or text)
    return texts


def map_answer_text(answer: dict, change) -> dict:
    """The answer (OpenAI's format) with `change` applied to each text it says."""
    changed = dict(answer)
    if isinstance(answer.get("choices"), list):
        choices = []
        for choice in answer["choices"]:
            choice = dict(choice)
            message = choice.get("message")
            if isinstance(message, dict) and message.get("content") is not None:
                choice["message"] = {**message, "content": _map_content(message["content"], change)}
            if isinstance(choice.get("text"), str):
                choice["text"] = change(choice["text"])
            choices.append(choice)
        changed["choices"] = choices
    if isinstance(answer.get("output"), list):  # the Responses API
        changed["output"] = [{**item, "content": [
            {**part, "text": change(part["text"])} if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part for part in item.get("content") or []]} if isinstance(item, dict) and item.get("content")
            else item for item in answer["output"]]
    return changed


# --- built-ins ---------------------------------------------------------------------------------------


class _PatternGuardrail(Guardrail):
    """Named patterns, each masked or refused (`action: MASK | BLOCK`)."""

    masks = True
    default_action = "MASK"

    def patterns(self) -> list[tuple[str, re.Pattern, str]]:
        raise NotImplementedError

    def __init__(self, name: str, params: dict) -> None:
        super().__init__(name, params)
        self._patterns = self.patterns()
        self.masks = any(action == "MASK" for _, _, action in self._patterns)
        # One search for any of them first: most texts hold none, and then one pass is all it costs.
        try:
            self._any = re.compile("|".join(f"(?:{p.pattern})" for _, p, _ in self._patterns))
        except re.error:  # patterns that do not combine (global flags): each is searched
            self._any = re.compile("")

    def prefilter(self, text: str) -> bool:
        """A cheaper test than the patterns that any match needs to pass (default: none)."""
        return True

    def may_match(self, text: str) -> bool:
        return bool(self._patterns) and self.prefilter(text) and self._any.search(text) is not None

    def check_text(self, text: str, mode: str) -> str:
        if not self.may_match(text):
            return text
        for label, pattern, action in self._patterns:
            if action == "BLOCK":
                if pattern.search(text):
                    raise GuardrailViolation(f"the text holds {label}")
            else:
                text = pattern.sub(f"[{label.upper().replace(' ', '_')}]", text)
        return text


_SECRET_PATTERNS = {
    "an OpenAI key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    "an Anthropic key": r"\bsk-ant-[A-Za-z0-9_-]{20,}",
    "an AWS access key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    "a Slack token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "a Google API key": r"\bAIza[0-9A-Za-z_-]{35}",
    "a Stripe key": r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{20,}",
    "a private key": r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)",
    "a JSON web token": r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    "a password": r"(?i:\b(?:password|passwd|pwd|secret|api[_-]?key|token)\s*[:=]\s*['\"]?[^\s'\"]{8,})",
}


class SecretsGuardrail(_PatternGuardrail):
    """LiteLLM's `hide-secrets`: API keys, private keys and tokens, masked (`action: BLOCK` refuses)."""

    kind = "hide-secrets"
    # Every pattern needs one of these (case-folded): most texts hold none, and `in` is fast.
    _LITERALS = ("sk-", "akia", "asia", "gh", "xox", "aiza", "k_live_", "k_test_", "private key", "eyj", "pass",
                 "pwd", "secret", "api", "token")

    def prefilter(self, text: str) -> bool:
        folded = text.lower()
        return any(literal in folded for literal in self._LITERALS)

    def patterns(self):
        action = str(self.params.get("action") or "MASK").upper()
        return [("secret", re.compile(pattern), action) for pattern in _SECRET_PATTERNS.values()]


_PII_PATTERNS = {
    "EMAIL_ADDRESS": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    "PHONE_NUMBER": r"(?<![\w+])\+?\d{1,3}[\s.-]?\(?\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}\b",
    "CREDIT_CARD": r"\b(?:\d[ -]?){12,18}\d\b",
    "US_SSN": r"\b\d{3}-\d{2}-\d{4}\b",
    "IBAN_CODE": r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b",
    "IP_ADDRESS": r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
}


class PiiGuardrail(_PatternGuardrail):
    """LiteLLM's `presidio`: personal data masked or refused per entity (`pii_entities_config:
    {EMAIL_ADDRESS: MASK, US_SSN: BLOCK}`; without it every entity is masked). Microsoft Presidio's
    analyzer and anonymizer do it where they are installed (with a spaCy model); otherwise the
    gateway's own recognizers for the entities above."""

    kind = "presidio"

    def patterns(self):
        config = self.params.get("pii_entities_config") or {entity: "MASK" for entity in _PII_PATTERNS}
        self._presidio = _presidio_engines(self.params.get("presidio_language") or "en")
        return [(entity, re.compile(_PII_PATTERNS[entity]), str(action).upper())
                for entity, action in config.items() if entity in _PII_PATTERNS or self._presidio]

    def prefilter(self, text: str) -> bool:
        # The gateway's own recognizers all need an "@" or a digit.
        return self._presidio is not None or "@" in text or _DIGIT.search(text) is not None

    def check_text(self, text: str, mode: str) -> str:
        if self._presidio is None:
            if not self.may_match(text):
                return text
            return self._luhn_checked(text, mode)
        analyzer, anonymizer = self._presidio
        config = {e: str(a).upper() for e, a in (self.params.get("pii_entities_config") or {}).items()}
        results = analyzer.analyze(text=text, language=self.params.get("presidio_language") or "en",
                                   entities=list(config) or None)
        for result in results:
            if config.get(result.entity_type, "MASK") == "BLOCK":
                raise GuardrailViolation(f"the text holds {result.entity_type}")
        return anonymizer.anonymize(text=text, analyzer_results=results).text if results else text

    def _luhn_checked(self, text: str, mode: str) -> str:
        # A run of digits is a card number only if its Luhn check holds (not an order id, say).
        kept = []
        for match in re.finditer(_PII_PATTERNS["CREDIT_CARD"], text):
            if not _luhn(re.sub(r"\D", "", match.group())):
                kept.append(match.group())
        masked = super().check_text(text, mode) if not kept else self._check_sparing(text, mode, kept)
        return masked

    def _check_sparing(self, text: str, mode: str, kept: list[str]) -> str:
        placeholders = {f"\x00{i}\x00": value for i, value in enumerate(kept)}
        for placeholder, value in placeholders.items():
            text = text.replace(value, placeholder, 1)
        text = super().check_text(text, mode)
        for placeholder, value in placeholders.items():
            text = text.replace(placeholder, value)
        return text


_DIGIT = re.compile(r"\d")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return len(digits) >= 13 and total % 10 == 0


def _presidio_engines(language: str):
    """Presidio's analyzer and anonymizer, when they are installed with a spaCy model for the
    language (Presidio would otherwise download one at start: never on a gateway); else None."""
    try:
        import spacy.util
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine
    except ImportError:
        return None
    model = next((name for name in (f"{language}_core_web_lg", f"{language}_core_web_md", f"{language}_core_web_sm",
                                    f"{language}_core_news_lg", f"{language}_core_news_sm")
                  if spacy.util.is_package(name)), None)
    if model is None:
        logger.warning("Presidio is installed without a spaCy model for %r: the gateway's own PII recognizers "
                       "are used", language)
        return None
    try:
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": language, "model_name": model}]}).create_engine()
        return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=[language]), AnonymizerEngine()
    except Exception:
        logger.warning("Presidio could not start: the gateway's own PII recognizers are used", exc_info=True)
        return None


class ContentFilterGuardrail(_PatternGuardrail):
    """Keyword and regex blocklists (LiteLLM's `litellm_content_filter`): `blocked_words: ["word",
    {keyword, action}]` and `patterns: [{pattern, name, action}]`; BLOCK by default."""

    kind = "litellm_content_filter"

    def patterns(self):
        patterns = []
        for word in self.params.get("blocked_words") or []:
            keyword, action = (word, "BLOCK") if isinstance(word, str) else (word.get("keyword"), word.get("action"))
            if keyword:
                patterns.append((f"a blocked word", re.compile(rf"(?i:\b{re.escape(keyword)}\b)"),
                                 str(action or "BLOCK").upper()))
        for entry in self.params.get("patterns") or []:
            if isinstance(entry, str):
                entry = {"pattern": entry}
            patterns.append((entry.get("name") or "a blocked pattern", re.compile(entry["pattern"]),
                             str(entry.get("action") or "BLOCK").upper()))
        return patterns


class PromptSizeGuardrail(Guardrail):
    """A request longer than `max_characters` (or `max_tokens`, counted as the spend logs count) is refused."""

    kind = "prompt_size"

    async def pre_call(self, body: dict, mode: str) -> dict:
        texts: list[str] = []
        map_request_text(body, lambda text: texts.append(text) or text)
        size = sum(len(text) for text in texts)
        if self.params.get("max_characters") and size > int(self.params["max_characters"]):
            raise GuardrailViolation(f"the prompt is {size} characters, over {self.params['max_characters']}")
        if self.params.get("max_tokens"):
            from apps.spend.tokens import estimate_text_tokens

            tokens = sum(estimate_text_tokens(text) for text in texts)
            if tokens > int(self.params["max_tokens"]):
                raise GuardrailViolation(f"the prompt is {tokens} tokens, over {self.params['max_tokens']}")
        return body

    async def post_call(self, answer: dict) -> dict:
        return answer


class ModerationGuardrail(Guardrail):
    """A moderation model of the gateway's own (`model`: a model group serving /v1/moderations),
    called through its routing; a flagged text is refused."""

    kind = "openai_moderation"

    async def _flagged(self, texts: list[str]) -> list[str]:
        from apps.routing.internal_calls import moderation_categories

        return await moderation_categories(self.params.get("model") or "omni-moderation-latest", texts)

    async def pre_call(self, body: dict, mode: str) -> dict:
        texts: list[str] = []
        map_request_text(body, lambda text: texts.append(text) or text)
        await self._refuse_flagged(texts)
        return body

    async def post_call(self, answer: dict) -> dict:
        texts: list[str] = []
        map_answer_text(answer, lambda text: texts.append(text) or text)
        await self._refuse_flagged(texts)
        return answer

    async def _refuse_flagged(self, texts: list[str]) -> None:
        texts = [t for t in texts if t.strip()]
        if texts:
            categories = await self._flagged(texts)
            if categories:
                raise GuardrailViolation(f"moderation flagged it ({', '.join(categories)})")


class _NotSetUp(Guardrail):
    """A configured guardrail that could not be made (a bad pattern, a missing class): fails when used."""

    def __init__(self, name: str, params: dict, error: Exception) -> None:
        try:
            super().__init__(name, params)
        except ValueError:
            self.name, self.params, self.modes = name, params, frozenset(MODES)
            self.default_on = params.get("default_on") is True
        self.error = error

    def check_text(self, text: str, mode: str) -> str:
        raise RuntimeError(f"guardrail {self.name} is not set up: {self.error}")

    async def pre_call(self, body: dict, mode: str) -> dict:
        return self.check_text("", mode)

    async def post_call(self, answer: dict) -> dict:
        return self.check_text("", "post_call")


BUILT_IN = {cls.kind: cls for cls in (SecretsGuardrail, PiiGuardrail, ContentFilterGuardrail, PromptSizeGuardrail,
                                      ModerationGuardrail)}
BUILT_IN.update({"hide_secrets": SecretsGuardrail, "secret_detection": SecretsGuardrail, "pii": PiiGuardrail,
                 "content_filter": ContentFilterGuardrail, "moderation": ModerationGuardrail})


# --- the registry and one request's run ---------------------------------------------------------------


class Guardrails:
    """The configured guardrails of this process (read from GATEWAY_CONFIG at its start)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Guardrail] = {}
        self.default_on: tuple[str, ...] = ()
        self.default_run: tuple[list[Guardrail], list[Guardrail]] | None = None

    @property
    def any(self) -> bool:
        return bool(self.by_name)

    def configure(self, entries) -> None:
        self.by_name = {}
        for entry in entries if isinstance(entries, list) else ():
            try:
                guardrail = guardrail_make(entry)
            except Exception as exc:
                # Kept under its name, failing each request it applies to: a guardrail that does not
                # start must not let requests through unguarded (unless GATEWAY_GUARDRAIL_FAIL_OPEN).
                logger.exception("guardrail %r could not be set up", entry.get("guardrail_name"))
                guardrail = _NotSetUp(str(entry.get("guardrail_name")), entry.get("litellm_params") or {}, exc)
            self.by_name[guardrail.name] = guardrail
        self.default_on = tuple(name for name, g in self.by_name.items() if g.default_on)
        self.default_run = _ordered([self.by_name[n] for n in self.default_on]) if self.default_on else None

    def selected(self, attached, requested) -> list[Guardrail]:
        """The guardrails of a request: the default ones, those its key, team or model group names
        (`attached`; one not configured is the operator's mistake: a 503, not a request let through
        unguarded) and those it names itself (`requested`; unknown: a 400)."""
        chosen = dict.fromkeys(self.default_on)
        for name in attached:
            if name not in self.by_name:
                raise GatewayError(f"Guardrail '{name}', which this key, its team or the model group requires, is "
                                   f"not configured on the gateway.", status=503, type="api_error",
                                   code="guardrail_error")
            chosen[name] = None
        for name in requested:
            if name not in self.by_name:
                raise GatewayError(f"No guardrail named {name!r} is configured.", param="guardrails",
                                   code="guardrail_not_found")
            chosen[name] = None
        return [self.by_name[name] for name in chosen]


def guardrail_make(entry: dict) -> Guardrail:
    name = entry["guardrail_name"]
    params = dict(entry.get("litellm_params") or {})
    kind = params.get("guardrail") or ""
    cls = BUILT_IN.get(kind)
    if cls is None and "." in kind:
        module, _, attribute = kind.rpartition(".")
        cls = getattr(importlib.import_module(module), attribute)
        if not (isinstance(cls, type) and issubclass(cls, Guardrail)):
            raise ValueError(f"{kind} is not a Guardrail subclass")
    if cls is None:
        raise ValueError(f"unknown guardrail {kind!r} (built in: {', '.join(sorted(BUILT_IN))}, or a dotted path)")
    return cls(name, params)


guardrails = Guardrails()


def request_guardrail_names(body: dict) -> list[str]:
    """The guardrails a request asks for: `guardrails` or `metadata.guardrails` (a list of names)."""
    names = []
    for where, value in (("guardrails", body.get("guardrails")),
                         ("metadata.guardrails", (body.get("metadata") or {}).get("guardrails")
                          if isinstance(body.get("metadata"), dict) else None)):
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise GatewayError(f"'{where}' must be a list of guardrail names.", param=where, code="invalid_type")
        names += value
    return names


@dataclass(slots=True)
class GuardrailRun:
    """The guardrails of one request, and what each decided (for its spend log)."""

    pre: list[Guardrail]
    post: list[Guardrail]
    decisions: list[dict]

    def record(self, guardrail: Guardrail, mode: str, outcome: str) -> None:
        self.decisions.append({"name": guardrail.name, "mode": mode, "outcome": outcome})
        counter = _counters.get((guardrail.name, mode, outcome))
        if counter is None:
            counter = _counters[guardrail.name, mode, outcome] = decisions_total.labels(guardrail.name, mode, outcome)
        counter.inc()

    async def _apply(self, guardrail: Guardrail, mode: str, call) -> object | None:
        """Run one hook: its result; None when it failed open. Raises the refusal or the failure."""
        try:
            return await call()
        except GuardrailViolation as violation:
            self.record(guardrail, mode, "refused")
            raise refusal(guardrail, violation.reason, mode) from None
        except GatewayError:
            raise
        except Exception as exc:
            logger.warning("guardrail %s failed in %s", guardrail.name, mode, exc_info=True)
            self.record(guardrail, mode, "error")
            if settings.GATEWAY_GUARDRAIL_FAIL_OPEN:
                return None
            raise GatewayError(f"Guardrail '{guardrail.name}' failed ({type(exc).__name__}); the request was not "
                               f"sent.", status=503, type="api_error", code="guardrail_error") from None

    async def before(self, body: dict) -> dict:
        """pre_call and during_call: the body to send (masked), or a refusal."""
        texts = None
        for guardrail in self.pre:
            if guardrail.checks_text_only:
                if texts is None:
                    texts = request_texts(body)
                if not any(guardrail.may_match(text) for text in texts):  # clean: nothing to run
                    for mode in ("pre_call", "during_call"):
                        if mode in guardrail.modes:
                            self.record(guardrail, mode, "passed")
                    continue
            for mode in ("pre_call", "during_call"):
                if mode not in guardrail.modes:
                    continue
                changed = await self._apply(guardrail, mode, lambda g=guardrail, m=mode: g.pre_call(body, m))
                if changed is None:
                    continue
                if mode == "pre_call" and changed is not body and changed != body:
                    body = changed
                    texts = None  # read again for the next guardrail
                    self.record(guardrail, mode, "masked")
                else:
                    self.record(guardrail, mode, "passed")
        return body

    async def after(self, answer: dict) -> dict:
        """post_call on a whole answer: the answer to send (masked), or a refusal."""
        for guardrail in self.post:
            changed = await self._apply(guardrail, "post_call", lambda g=guardrail: g.post_call(answer))
            if changed is None:
                continue
            self.record(guardrail, "post_call", "masked" if changed != answer else "passed")
            answer = changed
        return answer

    def stream_guard(self) -> StreamGuard | None:
        return StreamGuard(self) if self.post else None


def guardrail_run_for(attached, requested) -> GuardrailRun | None:
    """The run of a request's guardrails (None: none apply)."""
    if not attached and not requested:  # the common case: the default ones, ordered once
        if guardrails.default_run is None:
            return None
        pre, post = guardrails.default_run
        return GuardrailRun(pre=pre, post=post, decisions=[])
    pre, post = _ordered(guardrails.selected(attached, requested))
    return GuardrailRun(pre=pre, post=post, decisions=[]) if pre or post else None


def _ordered(selected: list[Guardrail]) -> tuple[list[Guardrail], list[Guardrail]]:
    # Those that only refuse go first: they judge what the client sent, before anything is masked.
    ordered = sorted(selected, key=lambda g: g.masks)
    return ([g for g in ordered if g.modes & {"pre_call", "during_call"}],
            [g for g in ordered if "post_call" in g.modes])


def refusal(guardrail: Guardrail, reason: str, mode: str) -> GuardrailRefusal:
    where = "the request" if mode != "post_call" else "the answer"
    return GuardrailRefusal(f"Refused by guardrail '{guardrail.name}': {reason} in {where}.", status=400,
                        param="messages" if mode != "post_call" else None, code="content_policy_violation")


class StreamGuard:
    """post_call guardrails on a streamed answer. Each choice's text is checked as it arrives; with a
    masking guardrail the last GUARD_HOLD_BACK characters are held back until the text after them is
    seen, so a span is masked whole even when it arrives over several chunks. A refusal (also of a
    span that straddles what was already sent) cuts the stream."""

    def __init__(self, run: GuardrailRun) -> None:
        self.run = run
        self.hold = GUARD_HOLD_BACK if any(g.masks for g in run.post) else 0
        self.pending: dict[int, str] = {}  # checked (masked) text not sent yet, by choice
        self.sent_tail: dict[int, str] = {}  # the end of what was sent, by choice
        self.outcomes: dict[str, str] = {}

    def _check(self, text: str) -> str:
        for guardrail in self.run.post:
            try:
                changed = guardrail.check_text(text, "post_call")
            except GuardrailViolation as violation:
                self.run.record(guardrail, "post_call", "refused")
                raise refusal(guardrail, violation.reason, "post_call") from None
            if changed != text:
                self.outcomes[guardrail.name] = "masked"
            text = changed
        return text

    def _text(self, index: int, text: str, final: bool) -> str:
        combined = self.pending.get(index, "") + text
        tail = self.sent_tail.get(index, "")
        if tail:
            self._check(tail + combined)  # a refusal that starts in what was sent already
        masked = self._check(combined)  # masked text stays masked when checked again
        cut = len(masked) if final else max(len(masked) - self.hold, 0)
        send, self.pending[index] = masked[:cut], masked[cut:]
        self.sent_tail[index] = (tail + send)[-GUARD_HOLD_BACK:]
        return send

    def feed(self, chunks: list[dict]) -> list[dict]:
        """The chunks to send, their text checked (raises the refusal)."""
        out = []
        for chunk in chunks:
            choices = chunk.get("choices")
            if not choices:
                out.append(chunk)
                continue
            changed = []
            for choice in choices:
                index, final = choice.get("index", 0), bool(choice.get("finish_reason"))
                delta = choice.get("delta")
                if isinstance(delta, dict):  # chat
                    text = delta.get("content")
                    if isinstance(text, str) or final and self.pending.get(index):
                        choice = {**choice, "delta": {**delta, "content": self._text(index, text or "", final)}}
                elif isinstance(choice.get("text"), str) or final and self.pending.get(index):  # completions
                    choice = {**choice, "text": self._text(index, choice.get("text") or "", final)}
                changed.append(choice)
            out.append({**chunk, "choices": changed})
        return out

    def finish(self) -> list[dict]:
        """Text still held back when the stream ended without a finish reason: a last chunk."""
        chunks = [{"object": "chat.completion.chunk", "choices": [
            {"index": index, "delta": {"content": text}, "finish_reason": None}]}
            for index, text in self.pending.items() if text]
        self.pending.clear()
        return chunks

    def done(self) -> None:
        for guardrail in self.run.post:
            self.run.record(guardrail, "post_call", self.outcomes.get(guardrail.name, "passed"))


def guardrails_configure(entries) -> None:
    guardrails.configure(entries)

