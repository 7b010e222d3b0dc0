"""gojson.loads reads JSON as Go's encoding/json does where Python's readers differ. The expected values are
Go's own answers (json.Unmarshal into an interface, then json.Marshal), recorded from Go 1.26."""

from __future__ import annotations

import pytest

from kube_oidc_proxy import gojson

GO_READS = [
    (rb'{"a":"\ud800"}', {"a": "\ufffd"}),  # an escaped lone surrogate
    (rb'{"a":"\udc00x"}', {"a": "\ufffdx"}),
    (rb'{"a":"\ud800\udc00"}', {"a": "\U00010000"}),  # a pair is one character
    (b'{"a":"\xff"}', {"a": "\ufffd"}),  # a byte that is not UTF-8
    (b'{"a":"\xe2\x82"}', {"a": "\ufffd\ufffd"}),  # each byte of a cut sequence
    (b'{"a":"\xed\xa0\x80"}', {"a": "\ufffd\ufffd\ufffd"}),  # a surrogate written as UTF-8
    (b'{"\xff":1}', {"\ufffd": 1}),  # keys too
    (b'{"a":["\xff",{"b":"\xff"}]}', {"a": ["\ufffd", {"b": "\ufffd"}]}),
    (b'{"a":"ok"}', {"a": "ok"}),
]


@pytest.mark.parametrize(("data", "go"), GO_READS)
def test_text_go_reads_is_read_as_go_reads_it(data: bytes, go: object) -> None:
    assert gojson.loads(data) == go


@pytest.mark.parametrize("data", [b'{"a":NaN}', b'{"a":Infinity}', b"{", b"not json", b"[" * 100_000])
def test_what_go_refuses_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        gojson.loads(data)
