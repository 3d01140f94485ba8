"""One data-URL reader for every adapter that takes inline media (adapters.base.parse_data_url)."""

import pytest

from apps.core.errors import GatewayError
from apps.providers.adapters.base import DataURL, parse_data_url


@pytest.mark.parametrize("url, expected", [
    ("data:image/png;base64,iVBOR", DataURL("image/png", "iVBOR")),
    ("data:IMAGE/JPEG;base64,/9j/", DataURL("image/jpeg", "/9j/")),
    ("data:application/pdf;name=a.pdf;charset=binary;base64,JVBER", DataURL("application/pdf", "JVBER")),
])
def test_base64_data_urls_with_or_without_parameters(url, expected):
    assert parse_data_url(url, param="p") == expected


@pytest.mark.parametrize("url", [
    "data:image/png,notbase64", "data:;base64,AAAA", "data:image/png;base64,", "https://x/cat.png", None, 7,
    "data:png;base64,AAAA",
])
def test_anything_else_is_a_400_naming_the_param(url):
    with pytest.raises(GatewayError) as info:
        parse_data_url(url, param="messages[0].content[0].image_url.url")
    assert info.value.status == 400 and info.value.param == "messages[0].content[0].image_url.url"
