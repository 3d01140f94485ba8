"""The body reader of every /v1 route (apps.routing.validation.json_body): a JSON object naming a
key twice at any depth is a 400, and no other body is refused for it, however its text is
spelled (spacing, escaped colons, colons inside strings, nesting)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core.errors import GatewayError
from apps.routing.validation import json_body


class _Request:
    def __init__(self, raw: bytes) -> None:
        self.body = raw
        self.META = {"CONTENT_TYPE": "application/json"}


def _refused_as_repeated(raw: bytes) -> bool:
    try:
        json_body(_Request(raw))
    except GatewayError as error:
        assert error.code == "invalid_json" and "more than once" in error.message, error.message
        return True
    return False


_text = st.text(alphabet=st.sampled_from('ab:"\\é\n{}u03A'), max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


def _spelled(value, escape_colons: bool, spaced: bool) -> str:
    """JSON text of `value`, colons inside strings escaped as \\u003a or not."""
    separators = (", ", ": ") if spaced else (",", ":")
    if isinstance(value, dict):
        items = [f"{_spelled(k, escape_colons, spaced)}{separators[1]}{_spelled(v, escape_colons, spaced)}"
                 for k, v in value.items()]
        return "{" + separators[0].join(items) + "}"
    if isinstance(value, list):
        return "[" + separators[0].join(_spelled(v, escape_colons, spaced) for v in value) + "]"
    text = json.dumps(value)
    return text.replace(":", "\\u003a") if escape_colons and isinstance(value, str) else text


def _dicts(value) -> list[dict]:
    found = [value] if isinstance(value, dict) else []
    for child in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()):
        found += _dicts(child)
    return found


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(_text, _json, min_size=1, max_size=5), escape_colons=st.booleans(),
       spaced=st.booleans(), data=st.data())
def test_a_repeated_key_is_found_at_any_depth_and_nothing_else_is_refused(body, escape_colons, spaced, data):
    assert not _refused_as_repeated(_spelled(body, escape_colons, spaced).encode())
    # Repeat a key in one object, the top one or a nested one: a marker key (no generated text can
    # spell it) is written out, then replaced by the same key twice.
    data.draw(st.sampled_from(_dicts(body)))["MARK"] = 0
    text = _spelled(body, escape_colons, spaced)
    repeated = text.replace('"MARK": 0' if spaced else '"MARK":0', '"k":1,"k":2')
    assert repeated != text
    assert _refused_as_repeated(repeated.encode())


@pytest.mark.parametrize("raw", [
    b'{"a": "x\\u003a", "a": "y"}',  # an escaped colon beside a repeated key: the counts may not cancel
    b'{"a\\u003A": 1, "a:": 2}',  # the same key spelled two ways
    b'{"a": "\\\\u003a", "b": {"c": 1, "c": 2}}',  # a backslash then "u003a": no escape
    b'{"a": ' + b"[" * 300 + b"]" * 300 + b', "a": 1}',  # deeper than orjson writes
    b'{"n": 123456789012345678901234567890, "n": 1}',  # a number larger than orjson writes
])
def test_repeated_keys_behind_escapes_depth_and_big_numbers(raw):
    assert _refused_as_repeated(raw)


@pytest.mark.parametrize("raw", [
    b'{"a": "x\\u003a", "b": "y:z"}',
    b'{"a": "\\\\u003a"}',
    b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}",
])
def test_escapes_and_depth_alone_are_not_refused(raw):
    assert not _refused_as_repeated(raw)
