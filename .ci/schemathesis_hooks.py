"""Schemathesis hooks for `.ci/schemathesis` (loaded through `hooks` in schemathesis.toml).

Two things JSON Schema cannot say about Stylist's API, handled here instead of by loosening the
server or the schema:

1. What a PNG or JPEG is. The image parts are declared as files with `encoding.contentType`
   `image/png, image/jpeg`, and the server reads them by magic bytes and header: random bytes
   are rightly `415` (not PNG/JPEG) or `422` (corrupt header), and schemathesis's own 1x1 sample
   images are rightly `400` (every side must be at least 16 px once resized to `max_size`). So
   positive data gets real images from `schemathesis.openapi.media_type`: PNGs of random pixels
   and colour types, and three small JPEGs made by `stylist stylize` (the runner has no JPEG
   encoder). All are square and 16 to 48 px, so any `max_size` from 16 keeps both sides at least
   16 px: a non-square image at a small `max_size` is another cross-field `400`. Negative data is
   untouched (schemathesis still sends whatever it likes as a non-image file).

2. Which `400`s a schema-valid job can get. `POST /v1/jobs` has constraints that depend on the
   server's state or span fields, so no schema can state them: `model` must be installed,
   `style_id` must be registered (by the same API key), `style` + `style_id` together are at most
   `max_styles_per_job` (exactly two with a `mask`), `style_weights` has one weight per style and
   a positive sum, and an `Idempotency-Key` reused with a different form is `422`. schemathesis.toml lets
   positive_data_acceptance accept `400` and `422` for that one operation; the check below takes
   that latitude back, so a schema-valid job refused for any *other* reason still fails the run.

And a run-level check that the stateful phase really reached the resources behind the OpenAPI
links (a job's and a style's own URLs answered 2xx), so a broken link cannot pass silently.
"""

import base64
import json
import random
import struct
import sys
import zlib

import schemathesis
from hypothesis import strategies as st


# --- 1. Real images for the image parts --------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# PNG colour type -> channels at 8 bits: grey, RGB, grey+alpha, RGBA.
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _png(side: int, color_type: int, seed: int) -> bytes:
    """A valid side x side, 8-bit PNG of random pixels (filter 0 on every row)."""
    rng = random.Random(seed)
    row = side * _CHANNELS[color_type]
    raw = b"".join(b"\x00" + rng.randbytes(row) for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


# 16x16, 32x32 and 48x48 baseline JPEGs written by `stylist stylize ... -o x.jpg --max-size N`.
_JPEGS = [base64.b64decode(b) for b in (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDREN"
    "Dg8QEBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBAQEBAQEBD/wAARCAAQABADAREAAhEBAxEB/8QAFgABAQEAAAAAAAAAAAAAAAAAAwUH/8QAIhAAAgIBAwQDAAAA"
    "AAAAAAAAAQIDBAAFERITFCFBMVGB/8QAGAEAAwEBAAAAAAAAAAAAAAAAAgMEAQX/xAAcEQACAwEAAwAAAAAAAAAAAAABAgAD"
    "ERIiI0H/2gAMAwEAAhEDEQA/AAtUbFdI73OVJw4jJesSqj8zjJofqWXJiCFTqrbfrNHMk8bskiLGODD7HvNYFX6EVngDNYBp"
    "1aLXHWULJIqbmLzv8DwTlRrUkEQbbTxkjQabpjSPqXaIkglMbTPGQ3JvYG+2JtUBt+we/WJ//9k=",
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDREN"
    "Dg8QEBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBAQEBAQEBD/wAARCAAgACADAREAAhEBAxEB/8QAGAAAAwEBAAAAAAAAAAAAAAAABAYHBQL/xAAnEAABAwMEAgIC"
    "AwAAAAAAAAABAgMEAAURBhITITFRFCJBYXFyof/EABgBAQADAQAAAAAAAAAAAAAAAAMBAgQF/8QAIREBAAIBAwUBAQAAAAAA"
    "AAAAAQACEQMSIQQiMUFhMlH/2gAMAwEAAhEDEQA/AL5IcMZHP8x4v5ACj4/VY735+xfcTdSNouMlpl76yVuDDgXk5/jxWS9e"
    "5tXzNlLgGZDtS22VC1Y5GktvrebuIU3IbXk5xkYT4NTW22tnwwMttQjYEXO96ZRK2OrmxtQMtv78AqSfBAo3UP19JIO6j9ZY"
    "ocp7kkKeukpxpTqAlCkDv6jP+0+rq88MzlE8zK1TazckIeingmtuBbJSdu8fkE+KGup34Y9jGnxJ7cOZu5tmfBQJ43HHKFqR"
    "noLwKLq7gZOJXpjFzMOtbrlqCozkht596ah4JJyohIzmuc3UnRKCh9lADqGGTiW8nKsqcdTgJ6911bpMKY9TpqQ48y0mQStl"
    "1ROCcg+iDVL2qWMy5V24iJrO2SIl9iXSChC5CVIaX3sITu8H3RajuzjmTSmxIFeGWl3N16M47HdMjckAZ2ZHeDQIYcRtN7pj"
    "6uvV/sNuQbjKEyNJzhDdx5kkg/pINbrIeoQDbEbbBd79p/SLV1lrakxHZTLMUfIAUgLPjBTnqi1DY93j1HqeAMw/VMZ2bzLm"
    "FOW3AGuR0p7/ALYqqG9htvUSbe1P4pTc+Qgbn8tITJ5evZVt6qxQR4lT+z//2Q==",
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDREN"
    "Dg8QEBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBAQEBAQEBD/wAARCAAwADADAREAAhEBAxEB/8QAGgAAAwADAQAAAAAAAAAAAAAABQYHAgMECP/EAC4QAAICAQMD"
    "AwQABgMAAAAAAAEDAgQFABEhBhIxE0FRBxQVMhYiJEJhcVKRsf/EABoBAAMBAQEBAAAAAAAAAAAAAAMEBQIBBgD/xAAoEQAC"
    "AgIBAwQBBQEAAAAAAAABAgADERIhBBMxIkFRYXEFMpGh4fD/2gAMAwEAAhEDEQA/APRmQziq5XsgudK2sBco9sgNvI286gdz"
    "bkxs1EASPfWW+53XPT1J0JTrstV2FRPbwGDfcjxp5nBpIPMEqnZQfGZZbjnUHvRicrcpLDZyZViwGBWfBEjyeNQuoGt31mOV"
    "AjHEhnXC+p+ssw1aMfK9TrS7ESbdCxHbz5HJ00WQA+4/MyhY3HM6/pqz18N+FuoknKVbU4rG8ZQdHzsCPcaQdGK5U+DKyk4G"
    "ZnkcrjLUZ0prsffptejNU64MB/ojnRQjMAQeZh7AyiPty5Tyf9Y+qr8kmYMXxE4GH/HjxoVKuXBPmAutrC8Seyw13I9YCWaa"
    "ycGHdjJPEmEb8CI9teg/YpDDiSFsDWCP6L9tdK7jLFhjKtdpTXsGY74jbftOptqq3J/mNBsEYiN1TDMQ6cNijfsyELsYbqED"
    "KAPuB76HZgJyZ9UT3AYpVM7Sq1K4NAo6lVeC5ueslconxKAif2PxpRkbH49zKbFQgEYMZ1X0+L68fdwuTpZmFqcHtkiBVKW2"
    "4kNzvzohLDGo9/ME4yqx4Z1hiUxjZu170YTbGLGhA9vA/wCtM0WbnMnXIdcxXr3E2+qfzUpORB1yMENEB+hPHGqF9pNeREek"
    "rJsBjDGtkV3r8/uu6s6+SQzYSPHnbUu1zoZTRORmCM9VsUHJePRlQjY2Y8OHes7cHt9xoVTGyvb+4RV1yYPfhMXjruK6xZiE"
    "XZV7MVFi57ynKX98YngkedHpTLeoc/8Ae0KzEICJ39X0Om+oLmP6yZhUWX+qezIzhIT3HBE1xO2441vtr3Mt5+f8mgxABMaf"
    "qWip/BFDZCR6mZUJOV+5Hbt2bf720p0yhTkn4i9z5rX7JgHE4lTcLQxWQxqY2Vv5cZ7TX/NvHcD30e18YWB6ZMYMJUo/bZhl"
    "DK2ey990QhgAMXR2/wDdaZcqfmMgEsIL65bWpLZkXURKukynYlDmcjtsBtoP6WR6lb5nbhrUTJn01k7Vy+ijbm51MPjYbUZL"
    "tjW3/WXd87e2qjhabBmCpy9YEodQU8XS7YprfaztAqXBhlEE+ST8nSDOiuceIYodQBNn1CiLWExsMZYm+v8AmU7rUwFhMY7k"
    "iOkems3Xj6g7V1RfyYSw296n+UpsYxTr0obtiIy3ieYkfOnewXyTM1PqoELWqlC5JTzQi5sW+pBk1y3XIHnxroQudPeH3HBi"
    "rmMjDqB9ugugD2NKXKETH1B8x0ROlNTFliz39zKRCt4hPT2UlOpNzk3HxjKI5OwHgg/Gu9SXZdl5jPTFQohzEYiaKdu27OWY"
    "QbaHZWVGJ7Nh52OlO3YTsYYuuvE19X2110J+1kk1o21Nga5Pq78CfPtpPpwK+QYK9fQuI89JUMZQpSGMrwNB+Vi1ZLpSZDuG"
    "5kd/869HXWqDIHBkncAAL8mOz2GtVkVRPfOwI90uONJFtetVY0hJQCSTIQsDMuQtoVeNiT4t7yBGIPz41VvxlseREqzm4wXa"
    "IxuAll8jBTblq/8AbQdFvcYmR4I421O6ZhapH3KQGtIac/T9atRxljOZOw2LDcnWg2J7iCf8fOmmQDHExT6k2P3P/9k=",
)]

_PNGS = st.builds(_png, st.integers(16, 48), st.sampled_from(sorted(_CHANNELS)), st.integers(0, 2**32 - 1))

schemathesis.openapi.media_type("image/png", _PNGS)
schemathesis.openapi.media_type("image/jpeg", st.sampled_from(_JPEGS))


# --- 2. The 400s and 422s a schema-valid job may get --------------------------------------------

# `detail` prefixes of the refusals that depend on server state or on several fields together
# (Sources/StylistService/API.swift, Sources/StylePipeline/Stylizer.swift).
_STATE_OR_CROSS_FIELD = {
    400: (
        "Unknown model '",                       # not installed here (GET /v1/models)
        "Unknown style_id '",                    # not registered, or another API key's
        "At most ",                              # style + style_id over max_styles_per_job
        "style_weights has ",                    # N weights for M styles
        "style_weights must be non-negative numbers with a positive sum",  # all zero
        "a mask needs exactly two styles",       # style + style_id != 2 with a mask
    ),
    422: ("Idempotency-Key '",),                 # the key was used with another form
}


def _is_positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.check
def job_refusals_need_state(ctx, response, case):
    """A schema-valid `POST /v1/jobs` is refused only for a state-dependent or cross-field reason."""
    if case.operation.label != "POST /v1/jobs" or not _is_positive(case):
        return None
    allowed = _STATE_OR_CROSS_FIELD.get(response.status_code)
    if allowed is None:
        return None
    try:
        detail = json.loads(response.content).get("detail", "")
    except (ValueError, AttributeError):
        detail = ""
    if not any(detail.startswith(prefix) for prefix in allowed):
        raise AssertionError(
            f"Schema-valid job refused with {response.status_code} for a reason the schema should state: {detail!r}"
        )
    return None


# --- 3. Negative data is judged as the server reads it -----------------------------------------

# A multipart form carries text, not JSON types. Schemathesis's negative bodies mutate the JSON
# value - `name: -574` for `name: {type: string}`, `alpha: "0.5"` for a number, `style_id: "id"`
# for an array of one - and each goes out as the very text a valid value would: the part
# `name=-574`, one `style_id` part. For path, query and header parameters schemathesis reads the
# sent text back before calling negative data accepted (`sent_text_is_valid`); for multipart it
# does not. This does the same for the form bodies: the request as sent is parsed into parts, the
# parts are read as the form schema describes them (repeated parts as an array, a lone text part as
# the string or as the JSON scalar it spells), and an ST201 "schema-violating request accepted" is
# dropped only when that reading is schema-valid - then the server accepted valid data. Anything
# the reading still finds invalid (an extra field, a missing `content`, `alpha=2`, a 201-character
# name) remains a failure.

import email.parser
import email.utils

import jsonschema_rs
from schemathesis.core.failures import AcceptedNegativeData


def _sent_parts(request):
    """(name, filename, bytes) of each part of a multipart request as sent, or None."""
    content_type = request.headers.get("Content-Type", "")
    body = request.body
    if not content_type.startswith("multipart/form-data") or not isinstance(body, (bytes, bytearray)):
        return None
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + bytes(body)
    )
    if not message.is_multipart():
        return None
    parts = []
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            return None
        parts.append((email.utils.collapse_rfc2231_value(name), part.get_filename(), part.get_payload(decode=True) or b""))
    return parts


def _readings(text):
    """What one text part can stand for: the string, or the JSON number/boolean/null it spells."""
    yield text
    try:
        value = json.loads(text)
    except ValueError:
        return
    if value is None or isinstance(value, (bool, int)) or (isinstance(value, float) and value == value and abs(value) != float("inf")):
        yield value


def _form_reading(schema, parts):
    """The form as the server reads it, as a JSON value for the form schema; None if it cannot be."""
    properties = schema.get("properties", {})
    grouped = {}
    for name, filename, data in parts:
        grouped.setdefault(name, []).append((filename, data))
    form = {}
    for name, values in grouped.items():
        subschema = properties.get(name, {})
        is_array = subschema.get("type") == "array"
        item_schema = subschema.get("items", {}) if is_array else subschema
        is_file = item_schema.get("contentMediaType") == "application/octet-stream"
        items = []
        for filename, data in values:
            if is_file:
                items.append("")          # any bytes are a valid file part; the server judges them
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return None
            validator = jsonschema_rs.validator_for(item_schema) if item_schema else None
            valid = [r for r in _readings(text) if validator is None or validator.is_valid(r)]
            items.append(valid[0] if valid else text)
        if is_array:
            form[name] = items
        elif len(items) == 1:
            form[name] = items[0]
        else:
            return None                   # a repeated single-valued field is invalid as sent
    return form


def _valid_form_as_sent(case, response):
    """The schema-valid reading of the multipart form that was sent, or None."""
    if case.media_type != "multipart/form-data":
        return None
    body = case.operation.get_body_for_media_type("multipart/form-data")
    schema = body.resolved_schema if body is not None else None
    parts = _sent_parts(response.request)
    if not isinstance(schema, dict) or parts is None:
        return None
    form = _form_reading(schema, parts)
    return form if form is not None and jsonschema_rs.validator_for(schema).is_valid(form) else None


# --- 4. DELETE of an unfinished job cancels it -------------------------------------------------

# `DELETE /v1/jobs/{id}` cancels a queued job (200, the job now `canceled`) or asks a running one
# to stop (202, still `running`, then `canceled`); only a finished job is deleted (204, then 404).
# That is the SPEC's contract and openapi.yaml documents it, but schemathesis's use-after-free
# check (ST301) takes any 2xx DELETE for a deletion. So each DELETE's status is remembered, and an
# ST301 is dropped only when the DELETE it blames answered 200 or 202: after a 204, a job that
# still answers remains a failure.

_DELETE_STATUS = {}


@schemathesis.hook
def after_call(context, case, response):
    if case.operation.label == "DELETE /v1/jobs/{id}":
        _DELETE_STATUS[case.id] = response.status_code


def _was_a_cancel(failure) -> bool:
    return _DELETE_STATUS.get(getattr(failure, "deleted_case_id", None)) in (200, 202)


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


_REPORTED = []
_REPORT_LIMIT = 12


def _dropped(failure, case, why) -> bool:
    # On stderr, so a run says what it set aside and why (the first few; the summary counts them all
    # as "Filtered ... dropped by `filter_failure`").
    _REPORTED.append(why)
    if len(_REPORTED) <= _REPORT_LIMIT:
        print(f"schemathesis_hooks: dropped {failure.code} on {case.operation.label}: {why}", file=sys.stderr)
    elif len(_REPORTED) == _REPORT_LIMIT + 1:
        print("schemathesis_hooks: (further drops of the same kinds not shown)", file=sys.stderr)
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure except the two kinds of false alarm described above."""
    if isinstance(failure, AcceptedNegativeData):
        form = _valid_form_as_sent(case, response)
        if form is not None:
            generated = {k: v for k, v in (case.body or {}).items() if isinstance(v, (str, int, float, bool, type(None), list))}
            return _dropped(failure, case, f"generated {_short(generated)}, sent as the schema-valid form {_short(form)}")
    if failure.code == "ST301" and _was_a_cancel(failure):
        return _dropped(failure, case, f"{failure.free} answered {_DELETE_STATUS[failure.deleted_case_id]}: a cancel, not a deletion")
    return True


# --- 5. The links lead somewhere -------------------------------------------------------------------

_MUST_REACH = (
    "POST /v1/jobs",
    "GET /v1/jobs/{id}",
    "GET /v1/jobs/{id}/events",
    "DELETE /v1/jobs/{id}",
    "POST /v1/styles",
    "GET /v1/styles/{id}",
    "DELETE /v1/styles/{id}",
)


@schemathesis.check
class links_reach_resources:
    """After the run: every operation behind a link answered 2xx at least once."""

    def __init__(self):
        self.reached = set()

    def after_response(self, ctx, response, case):
        if 200 <= response.status_code < 300:
            self.reached.add(case.operation.label)

    def after_run(self, ctx):
        missing = [label for label in _MUST_REACH if label not in self.reached]
        if missing:
            raise AssertionError("never answered 2xx (are the OpenAPI links intact?): " + ", ".join(missing))
