"""Secrets out of any text resmagic shows or writes: URI passwords, tokens in query strings.

One rule for every place a URI can surface: ``%resmagic status`` (the MLflow tracking URI),
sink warnings, a report's error text (the run store, the MLflow ``cell.N.error`` tag, the
watch log). ``MLFLOW_TRACKING_URI=https://alice:s3cr3t@host`` was printed as is into saved
notebooks (reliability 2026-12-06 #10).
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "***"
"""What a secret is replaced by."""

# A scheme, not preceded by a scheme's character: "\b" let the pattern start again at each
# word of a long dotted or hyphenated token (quadratic: 1.6 s for 40,000 characters).
_SCHEME = r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://"
# scheme://user-info@ : the user-info ends at the last "@" before the path, query or end
# (a password may hold an unescaped "@": all of it is masked).
_USERINFO = re.compile(rf"(?P<scheme>{_SCHEME})(?P<info>[^/?#\s]*)@")
# scheme://user:password@ where the password breaks the URI's rules (a space, "?" or "#"
# in it: https://alice:pa ss@host): up to the last "@" before a "/" or the line's end, 128
# characters at most. Such a URI is invalid, but a user can type it, and it is shown as
# typed.
_USER_COLON = (
    r"[^/?#\s:@\[\]]*:"
    r"(?!\d+(?:[\s)/?#;,]|$))"  # host:port and then text: "...:5000 refused; ask ops@x.com"
)
_LOOSE_PASSWORD = re.compile(rf"(?P<scheme>{_SCHEME})(?P<info>{_USER_COLON}[^/\n]{{0,128}})@")
# ... and a password with an unescaped "/" in it (https://alice:pa/ss@host): up to the first
# "@" (a "/" then an "@" further on is a path's more often than a password's), no space.
# Its run of characters is taken whole (a lookahead, Python 3.10's atomic group): backing off
# one at a time to look for an "@" was 128 steps at every "x://" of a long text.
_SLASHED_PASSWORD = re.compile(
    rf"(?P<scheme>{_SCHEME})(?P<info>{_USER_COLON}"
    r"(?=(?P<password>[^\s@/]{0,128}/[^\s@]{0,128}))(?P=password))@"
)
# ?name=value or &name=value (also ;name=value), in a URI or a bare path such as urllib3's
# "Max retries exceeded with url: /api?token=...".
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s'\"]*)")
_SECRET_NAME = re.compile(
    r"token|key|secret|passw|pwd|sig|auth|credential|session|cookie|bearer|jwt",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the secrets of every URI in it replaced by ``***``.

    - ``user:password@`` keeps the user and masks the password: ``https://alice:***@host``;
      a user-info with no password is often a token by itself and is masked whole:
      ``https://***@github.com``.
    - The value of a query parameter whose name says it is secret (it contains ``token``,
      ``key``, ``secret``, ``passw``, ``pwd``, ``sig``, ``auth``, ``credential``,
      ``session``, ``cookie``, ``bearer`` or ``jwt``, in any case: ``access_token``,
      ``api_key``, ``X-Amz-Signature``, ``sig``) is masked; other parameters stay.

    Cheap on text with no ``://``, ``?``, ``&`` or ``;``: it is returned as is.
    """
    if "://" not in text and "=" not in text:
        return text
    text = _LOOSE_PASSWORD.sub(_mask_userinfo, text)
    text = _SLASHED_PASSWORD.sub(_mask_userinfo, text)
    text = _USERINFO.sub(_mask_userinfo, text)
    return _PARAM.sub(_mask_param, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["info"].partition(":")
    kept = f"{user}:{MASK}" if colon and user else MASK
    return f"{match['scheme']}{kept}@"


def _mask_param(match: re.Match[str]) -> str:
    if not _SECRET_NAME.search(match["name"]) or not match["value"]:
        return match[0]
    value = match["value"]
    tail = _texts_tail(match.string[: match.start()], value)
    return f"{match['lead']}{match['name']}={MASK}{tail}"


_CLOSES = {")": "(", "]": "[", "}": "{", ">": "<"}


def _texts_tail(before: str, value: str) -> str:
    """The end of ``value`` that is the text's, not the secret's: "" when in any doubt.

    Only closing brackets that an opener before the URI left open (``(see ...?token=abc)``),
    and one ``.,:;!`` right after them (``(...?token=abc): retry``). Anything else stays
    masked, so a secret ending in ``!`` or ``)`` is never shown, even in part.
    """
    end = len(value)
    if end > 1 and value[-1] in ".,:;!" and value[-2] in _CLOSES:
        end -= 1
    start = end
    used: dict[str, int] = {}
    while start > 1 and value[start - 1] in _CLOSES:  # a secret of brackets alone stays masked
        close = value[start - 1]
        if before.count(_CLOSES[close]) - before.count(close) - used.get(close, 0) <= 0:
            break
        used[close] = used.get(close, 0) + 1
        start -= 1
    return value[start:] if start < end else ""
