from __future__ import annotations

from django.db import models

from apps.core import crypto


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
        return json.loads(text) if text else {}

    def to_python(self, value):
        import json

        if isinstance(value, dict) or value is None:
            return value or {}
        return json.loads(value) if value else {}

    def get_prep_value(self, value):
        import json

        if not value:
            return ""
        # Not through TextField.get_prep_value: its to_python would parse the JSON back.
        return crypto.encrypt(json.dumps(value, sort_keys=True))
