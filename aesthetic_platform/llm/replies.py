"""JSON out of a model's reply text: bare, inside a Markdown fence, or inside prose."""

from __future__ import annotations

import json
import re
from collections.abc import Collection

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
MAX_QUOTED = 200


class JSONReplyError(ValueError):
    """The reply holds no usable JSON object; the message quotes the start of the reply."""


def extract_json_object(text: str, required_keys: Collection[str] = ()) -> dict:
    """The first JSON object in ``text`` that has at least one of ``required_keys`` (any object if empty).

    Requiring a key keeps a truncated reply from being mistaken for one of its inner
    objects: it is reported as broken JSON instead.
    """
    body = text.strip()
    candidates = [m.group(1) for m in _FENCE.finditer(body)] + [body]
    decoder = json.JSONDecoder()
    first_error: json.JSONDecodeError | None = None
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError as exc:
                first_error = first_error or exc
            except RecursionError:
                raise JSONReplyError(f"the reply nests JSON too deeply: {body[:MAX_QUOTED]!r}") from None
            else:
                if isinstance(value, dict) and (not required_keys or set(required_keys) & value.keys()):
                    return value
            start = candidate.find("{", start + 1)
    if first_error is not None:
        raise JSONReplyError(f"the reply is not valid JSON ({first_error.msg} at char {first_error.pos}): {body[:MAX_QUOTED]!r}")
    raise JSONReplyError(f"no JSON object in the reply: {body[:MAX_QUOTED]!r}")
