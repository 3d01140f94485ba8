"""The LiteLLM fields each management route accepts only empty (it does not act on them yet): the
one source of docs/litellm-compat.md's table, read from the routes' input serializers
(`litellm_fields` less the declared ones). Print it with `python -m tests.management.litellm_fields`.
"""

from __future__ import annotations

import json


def not_acted_on() -> dict[str, tuple[list[str], dict]]:
    """POST route → (LiteLLM's fields it does not act on, values accepted and ignored besides empty)."""
    from apps.management.urls import api_urlpatterns

    routes = {}
    for pattern in api_urlpatterns:
        serializer = getattr(pattern.callback.view_class, "input_serializer", None)
        if serializer is None:
            continue
        fields = sorted(frozenset(getattr(serializer, "litellm_fields", ())) - frozenset(serializer().fields))
        if fields:
            routes[f"POST /{pattern.pattern}"] = (fields, getattr(serializer, "ignored_values", {}))
    return routes


def render_markdown() -> str:
    lines = ["| Route | LiteLLM fields accepted only empty (null, false, \"\", [], {}) |", "|---|---|"]
    for route, (fields, ignored) in not_acted_on().items():
        names = []
        for name in fields:
            also = ignored.get(name)
            names.append(f"`{name}`" + (f" (or {', '.join(json.dumps(v) for v in also)})" if also else ""))
        lines.append(f"| `{route}` | {', '.join(names)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import django

    django.setup()
    print(render_markdown(), end="")
