"""The LiteLLM fields each management route accepts only empty (it does not act on them yet): the
one source of docs/litellm-compat.md's table, read from the routes' input serializers
(`litellm_fields` less the declared ones). Print it with `python -m tests.management.litellm_fields`,
or put it in place with `... --write`.
"""

from __future__ import annotations

import json
import re


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
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))  # OpenAPI's {key}
            routes[f"POST /{path}"] = (fields, getattr(serializer, "ignored_values", {}))
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


def write_into(path) -> None:
    """Replace the table in `path` (from its header row to the first line that is not a row)."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("| Route | LiteLLM fields accepted only empty"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    path.write_text("".join(lines[:start]) + render_markdown() + "".join(lines[end:]))


if __name__ == "__main__":
    import sys
    from pathlib import Path

    import django

    django.setup()
    if "--write" in sys.argv:
        write_into(Path(__file__).resolve().parents[2] / "docs" / "litellm-compat.md")
    else:
        print(render_markdown(), end="")
