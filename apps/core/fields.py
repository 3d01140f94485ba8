from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput

from apps.core import crypto


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Is `value` nested deeper than `limit` arrays and objects? (Iterative: no recursion to exhaust.)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def json_holds_nul(value: Any) -> bool:
    """Does any string of `value` (a key included) hold a NUL character? PostgreSQL refuses them
    in jsonb, so such a value would fail at the write: a 500 instead of a 400."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_without_nul(value: Any) -> Any:
    """`value` with every NUL character dropped from its strings (keys included), for a write
    that must not fail (a spend log keeps its counts even if a client's metadata held one)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {json_without_nul(k): json_without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_without_nul(v) for v in value]
    return value


class BoundedJSONFormField(forms.JSONField):
    """The admin's JSON fields: nested past GATEWAY_MAX_JSON_DEPTH is a form error (deeper still,
    Python's json parser would exhaust the recursion limit: a 500)."""

    def to_python(self, value):
        try:
            converted = super().to_python(value)
        except RecursionError:
            converted = None
            too_deep = True
        else:
            too_deep = json_depth_exceeds(converted, settings.GATEWAY_MAX_JSON_DEPTH)
        if too_deep:
            raise ValidationError(f"Nested deeper than {settings.GATEWAY_MAX_JSON_DEPTH} levels.", code="invalid")
        if json_holds_nul(converted):
            raise ValidationError("Null characters are not allowed.", code="null_characters_not_allowed")
        return converted

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:  # the form shown again with the text as it was sent
            return InvalidJSONInput(data)


class BoundedJSONAdminMixin:
    """For every ModelAdmin that edits JSON fields."""

    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONFormField}}


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code only ever sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return crypto.encrypt(value)


class EncryptedJSONField(EncryptedTextField):
    """A JSON object stored encrypted (provider secrets beyond a single key)."""

    def from_db_value(self, value, expression, connection):
        import json

        text = super().from_db_value(value, expression, connection)
        return json.loads(text) if text else self.get_default()

    def to_python(self, value):
        import json

        if isinstance(value, (dict, list)):
            return value
        if not value:
            return self.get_default()
        return json.loads(value)

    def get_prep_value(self, value):
        import json

        if not value:
            return ""
        # Not through TextField.get_prep_value: its to_python would parse the JSON back.
        return crypto.encrypt(json.dumps(value, sort_keys=True))
