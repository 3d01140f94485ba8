"""Invalidations published on Redis by another replica reach this process's key cache."""

import openai
import orjson
import pytest
from django.conf import settings

from conftest import wait_for

MESSAGES = [{"role": "user", "content": "hi"}]

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


def test_a_block_published_by_another_replica_is_honoured_within_a_second(
    gateway, openai_client, make_deployment, make_key
):
    import redis

    from apps.core.invalidation import channel
    from apps.keys.models import VirtualKey

    make_deployment("gpt-test")
    key, raw_key = make_key()
    client = openai_client(raw_key)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)  # cached now

    # Another replica blocks the key: the row changes without this process's signals...
    VirtualKey.objects.filter(pk=key.pk).update(blocked=True)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)  # still served from cache
    # ...and its invalidation arrives over Redis pub/sub.
    redis.Redis.from_url(settings.REDIS_URL).publish(
        channel(), orjson.dumps({"kind": "key", "hash": key.token_hash})
    )

    def refused() -> bool:
        try:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        except openai.AuthenticationError:
            return True
        return False

    assert wait_for(refused, timeout=1.0, interval=0.05)
