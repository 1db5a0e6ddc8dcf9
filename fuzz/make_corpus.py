#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/corpus/ (see FUZZING.md).

Inputs follow the layouts the fuzz targets expect (Sources/Fuzz*/): the HTTP and multipart
targets take a flags byte and split offsets before the payload. Images are copied from
Tests/ImageCodecsTests/Fixtures plus one small golden PNG from the shared data directory.
"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def framed(payload, splits=(), small=False):
    """flags byte (split count, small-limits bit), UInt16 LE split offsets, payload."""
    flags = len(splits) | (8 if small else 0)
    return bytes([flags]) + b"".join(struct.pack("<H", s) for s in splits) + payload


# --- HTTP requests -----------------------------------------------------------------------
MULTIPART_BODY = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="content"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n"
    b"\x89PNG\r\n\x1a\nfake\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="alpha"\r\n\r\n'
    b"0.8\r\n"
    b"--XyZ--\r\n"
)
requests = {
    "get": b"GET /v1/jobs/lK7bz7WFNjOMUPtL8sAiVA?wait=30 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    "get10": b"GET /healthz HTTP/1.0\r\n\r\n",
    "options": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute": b"GET http://example.com/v1/models?x=%41&y=b+c HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer KEY\r\n\r\n",
    "post-length": b"POST /v1/jobs HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
                   + b"Content-Length: %d\r\n\r\n" % len(MULTIPART_BODY) + MULTIPART_BODY,
    "post-chunked": b"POST /v1/styles HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: v\r\n\r\n",
    "pipelined": b"DELETE /v1/jobs/abc HTTP/1.1\r\nHost: h\r\nIdempotency-Key: 7f3c\r\n\r\n"
                 b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                 b"GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "leading-crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
}
for i, (name, req) in enumerate(sorted(requests.items())):
    write("http-parser", name, framed(req))
    write("http-parser", name + "-split", framed(req, splits=(len(req) // 3, len(req) // 2 + i), small=(i % 2 == 0)))

# --- multipart bodies (Content-Type line, LF, body) --------------------------------------
bodies = {
    "form": (b"multipart/form-data; boundary=XyZ", MULTIPART_BODY),
    "quoted": (b'multipart/form-data; boundary="a b:c"; charset=utf-8',
               b"preamble\r\n--a b:c\r\n"
               b"Content-Disposition: form-data; name=\"style\"; filename*=UTF-8''na%C3%AFve.jpg\r\n\r\n"
               b"\xff\xd8\xff\xe0data\r\n--a b:c--\r\nepilogue"),
    "padding": (b"multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                b"------WebKitFormBoundary7MA4YWxkTrZu0gW  \t\r\n"
                b"content-disposition: form-data; name=style_weights\r\n\r\n"
                b"0.6,0.4\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                b"Content-Disposition: form-data; name=\"empty\"\r\n\r\n"
                b"\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--"),
    "near-delimiter": (b"multipart/form-data; boundary=b",
                       b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n\r\n--bx\r\n--b \r\n--b\r\n"
                       b"Content-Disposition: form-data; name=y\r\nContent-Type: text/plain\r\n\r\n--b\r\n--b--"),
}
for i, (name, (ct, body)) in enumerate(sorted(bodies.items())):
    write("multipart", name, framed(ct + b"\n" + body))
    write("multipart", name + "-split", framed(ct + b"\n" + body, splits=(len(body) // 4, len(body) // 2 + i), small=(i % 2 == 1)))

# --- safetensors -------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, shape, values in tensors:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * len(values)]}
        data += struct.pack("<%df" % len(values), *values)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


write("safetensors", "conv", safetensors(
    [("enc.0.weight", [2, 1, 2, 2], [0.5 * i for i in range(8)]), ("enc.0.bias", [2], [1.0, -1.0]), ("scalar", [], [3.25])],
    {"format": "pt", "model": "microast"}))
write("safetensors", "empty-tensor", safetensors([("e", [0, 3], [])]))
write("safetensors", "no-metadata", safetensors([("x", [3], [1.0, 2.0, 3.0])]))
write("safetensors", "empty-header", struct.pack("<Q", 2) + b"{}")

# --- images ------------------------------------------------------------------------------
fixtures = os.path.join(ROOT, "Tests", "ImageCodecsTests", "Fixtures")
for name in sorted(os.listdir(fixtures)):
    if name.endswith((".png", ".jpg")):
        write("image-codecs", name, open(os.path.join(fixtures, name), "rb").read())
shared = os.environ.get("STYLIST_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
golden = os.path.join(shared, "golden", "fullrand-sailboat-matisse-a08.expected.png")
if os.path.exists(golden):
    write("image-codecs", "golden-small.png", open(golden, "rb").read())

# --- PyTorch checkpoints (legacy pickle and zip), pickled like torch.save does, without torch --
import collections
import io
import pickle
import sys
import types
import zipfile

_torch = types.ModuleType("torch")
_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
_torch._utils = _utils
sys.modules.setdefault("torch", _torch)
sys.modules.setdefault("torch._utils", _utils)


def _storage_class(name):
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(_torch, name, cls)
    return cls


FloatStorage = _storage_class("FloatStorage")
LongStorage = _storage_class("LongStorage")


class Storage:
    def __init__(self, key, cls, fmt, values):
        self.key, self.cls, self.fmt, self.values = key, cls, fmt, values

    def data(self):
        return struct.pack("<%d%s" % (len(self.values), self.fmt), *self.values)


class Tensor:
    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.shape), tuple(self.strides), False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            if self.legacy:
                return ("storage", obj.cls, obj.key, "cpu", len(obj.values), None)
            return ("storage", obj.cls, obj.key, "cpu", len(obj.values))
        return None


def _pickle(obj, legacy):
    buf = io.BytesIO()
    p = TorchPickler(buf, protocol=2)
    p.legacy = legacy
    p.dump(obj)
    return buf.getvalue()


def checkpoint_state():
    w = Storage("0", FloatStorage, "f", [0.25 * i for i in range(12)])
    b = Storage("1", FloatStorage, "f", [1.0, -2.0, 3.5])
    n = Storage("2", LongStorage, "q", [7])
    state = collections.OrderedDict()
    state["conv.weight"] = Tensor(w, 0, [3, 1, 2, 2], [4, 4, 2, 1])
    state["conv.bias"] = Tensor(b, 0, [3], [1])
    state["conv.weight_t"] = Tensor(w, 1, [2, 3], [1, 4])   # strided view
    state["steps"] = Tensor(n, 0, [], [])
    return state, [w, b, n]


def legacy_checkpoint(wrapped):
    state, storages = checkpoint_state()
    obj = {"state_dict": state, "epoch": 3} if wrapped else state
    out = _pickle(0x1950A86A20F9469CFC6C, True) + _pickle(1001, True)
    out += _pickle({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, True)
    out += _pickle(obj, True) + _pickle([s.key for s in storages], True)
    for s in storages:
        out += struct.pack("<q", len(s.values)) + s.data()
    return out


def zip_checkpoint():
    state, storages = checkpoint_state()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", _pickle(state, False))
        z.writestr("archive/byteorder", "little")
        for s in storages:
            z.writestr("archive/data/" + s.key, s.data())
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


write("checkpoints", "legacy", legacy_checkpoint(False))
write("checkpoints", "legacy-wrapped", legacy_checkpoint(True))
write("checkpoints", "zip", zip_checkpoint())
real = os.path.join(shared, "models", "pth", "microast_modulator_iter_160000.pth.tar")
if os.path.exists(real):
    write("checkpoints", "microast-modulator-legacy.pth", open(real, "rb").read())
