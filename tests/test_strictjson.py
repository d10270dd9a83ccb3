"""Strict JSON decoding: each hostile construct has its own reason code; nothing else escapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mud_ryu.mudfile import strictjson
from mud_ryu.mudfile.strictjson import JSONError, loads_object


def reason_of(data: bytes) -> str:
    with pytest.raises(JSONError) as info:
        loads_object(data)
    return info.value.reason


def test_accepts_plain_object() -> None:
    assert loads_object(b'{"a": [1, -2, 3.5, true, null, "x"], "b": {}}') == {
        "a": [1, -2, 3.5, True, None, "x"],
        "b": {},
    }


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a": 1, "a": 2}', "json-duplicate-key"),
        (b'{"a": {"b": 1, "b": 1}}', "json-duplicate-key"),
        (b'{"a": NaN}', "json-nan"),
        (b'{"a": Infinity}', "json-nan"),
        (b'{"a": -Infinity}', "json-nan"),
        (b'{"a": 1e999}', "json-nan"),
        (b'{"a": ' + b"1" * 21 + b"}", "json-number-too-long"),
        (b'{"a": -' + b"1" * 21 + b"}", "json-number-too-long"),
        (b'{"a": 0.' + b"1" * 60 + b"}", "json-number-too-long"),
        (b'{"a": "\\ud800"}', "json-invalid-string"),
        (b'{"a": "' + b"x" * (strictjson.MAX_STRING_CHARS + 1) + b'"}', "json-string-too-long"),
        (b"[]", "json-not-object"),
        (b'"x"', "json-not-object"),
        (b"1", "json-not-object"),
        (b"", "json-syntax"),
        (b"{", "json-syntax"),
        (b"{} {}", "json-syntax"),
        (b"{'a': 1}", "json-syntax"),
        (b"\xef\xbb\xbf{}", "json-syntax"),
        (b'{"a": "\xc3"}', "json-not-utf8"),
        (b"\xff\xfe{\x00}\x00", "json-not-utf8"),
    ],
)
def test_rejections(data: bytes, reason: str) -> None:
    assert reason_of(data) == reason


def test_depth_limit_is_exact() -> None:
    ok = b'{"a":' * (strictjson.MAX_DEPTH - 1) + b"1" + b"}" * (strictjson.MAX_DEPTH - 1)
    assert loads_object(ok)
    deep = b'{"a":' * strictjson.MAX_DEPTH + b"[]" + b"}" * strictjson.MAX_DEPTH
    assert reason_of(deep) == "json-too-deep"


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    assert loads_object(b'{"a": "' + b"[{" * 100 + b'\\"]"}')


def test_extreme_nesting_does_not_recurse() -> None:
    assert reason_of(b"[" * 200_000) == "json-too-deep"


def test_value_count_limit() -> None:
    many = b'{"a": [' + b",".join([b"0"] * strictjson.MAX_VALUES) + b"]}"
    assert reason_of(many) == "json-too-many-values"


def test_size_limit() -> None:
    big = b'{"a": "' + b" " * strictjson.MAX_FILE_BYTES + b'"}'
    assert reason_of(big) == "file-too-large"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_jsonerror(data: bytes) -> None:
    try:
        loads_object(data)
    except JSONError as exc:
        assert exc.reason.startswith(("json-", "file-"))
