"""A disclosed input, checked against the prediction's salted input commitment."""
from __future__ import annotations

import hmac

from compliance.ledger.offline.commitments import input_commitment
from compliance.ledger.offline.parse import _DTYPE, _HEX64, Malformed, _b64, _int, _keys, _list, _str
from compliance.ledger.offline.results import Check, _Link

MAX_DISCLOSED_TENSORS = 256


def disclosed_check(disclosed, scope: dict, preds: list[dict]) -> list[Check]:
    """One check of the bundle's disclosed input (none when it carries no input)."""
    if disclosed is None:
        return []
    link = _Link("input")
    _keys(disclosed, {"inference_id", "salt", "tensors"}, "disclosed_input")
    salt = _str(disclosed["salt"], "disclosed_input.salt")
    if not _HEX64.fullmatch(salt):
        raise Malformed("disclosed_input.salt must be 64 lowercase hex digits")
    items = _list(disclosed["tensors"], "disclosed_input.tensors")
    if len(items) > MAX_DISCLOSED_TENSORS:
        raise Malformed(f"disclosed_input carries more than {MAX_DISCLOSED_TENSORS} tensors")
    tensors = []
    for i, t in enumerate(items):
        where = f"disclosed_input.tensors[{i}]"
        _keys(t, {"name", "dtype", "shape", "data"}, where)
        m = _DTYPE.fullmatch(_str(t["dtype"], f"{where}.dtype"))
        shape = [_int(d, f"{where}.shape") for d in _list(t["shape"], f"{where}.shape")]
        if len(shape) > 32:
            raise Malformed(f"{where}.shape has more than 32 dimensions")
        data = _b64(t["data"], f"{where}.data")
        if not m:
            raise Malformed(f"{where}.dtype must look like <f4, <i8, <b1")
        count = 0 if 0 in shape else 1
        for d in shape:  # capped: a shape of huge dimensions must not cost a huge product
            count = min(count * d, len(data) + 1)
        if len(data) != count * int(m.group(2)):
            raise Malformed(f"{where}: {len(data)} bytes do not fill shape {shape} of {t['dtype']}")
        tensors.append((_str(t["name"], f"{where}.name"), t["dtype"], shape, data))
    names = [t[0] for t in tensors]
    if names != sorted(set(names)):
        raise Malformed("disclosed_input.tensors must be sorted by name, each name once")
    pred = next((p for p in preds if p.get("inference_id") == disclosed["inference_id"]), None)
    if link.need(pred is not None and scope["kind"] != "service", "the disclosed input's prediction is not the bundle's"):
        digest = input_commitment(bytes.fromhex(salt), tensors)
        link.need(hmac.compare_digest(digest, str(pred.get("input_digest"))),
                  "disclosed input and salt do not match the prediction's input commitment")
    shapes = ", ".join(f"{n} {d}{list(s)}" for n, d, s, _ in tensors)
    return [link.check(f"disclosed input ({shapes}) matches the salted commitment in the ledger")]
