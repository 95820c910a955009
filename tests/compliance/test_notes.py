"""C2SP signed-note / tlog-checkpoint / tlog-cosignature (Ed25519) tests.

Known answers come from golang.org/x/mod/sumdb/note (note.go doc example and
note_test.go), c2sp.org/tlog-cosignature (the example checkpoint and signed message)
and transparency-dev/formats note/note_cosigv1_test.go (vkeys, cosignature timestamp).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.ledger import notes as N

# golang.org/x/mod/sumdb/note
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox"
    "33WWd1RvMc+QQ=\n"
)
# c2sp.org/tlog-cosignature example
SPEC_COSIGNED = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcy"
    "v2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def peter_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[0] == N.SIG_ED25519
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def raw_pub(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


ROOT = hashlib.sha256(b"root").digest()
LOG = Ed25519PrivateKey.generate()
WITNESS = Ed25519PrivateKey.generate()
ORIGIN = "traceledger.example/log"


def signed_checkpoint(size: int = 42, extensions: tuple[str, ...] = ()) -> tuple[str, str]:
    body = N.format_checkpoint(ORIGIN, size, ROOT, extensions)
    return body, N.sign_note(body, ORIGIN, LOG)


# ------------------------------------------------------------ known answers


def test_go_sumdb_known_answer() -> None:
    key = peter_key()
    assert N.format_vkey("PeterNeumann", key.public_key()) == PETER_VKEY
    assert N.key_id("PeterNeumann", key.public_key()).hex() == "c74f20a3"
    assert N.sign_note(TEXT, "PeterNeumann", key) == TEXT + "\n" + PETER_SIG
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert N.parse_note(note)[0] == TEXT
    assert N.verify_note(note, [PETER_VKEY, ENOCH_VKEY]) == ["PeterNeumann", "EnochRoot"]
    assert N.verify_note(note, [PETER_VKEY]) == ["PeterNeumann"]  # unknown keys ignored
    assert N.verify_note(note, {"EnochRoot": N.parse_vkey(ENOCH_VKEY).public_key}) == ["EnochRoot"]
    with pytest.raises(N.NoteError, match="no verifiable"):
        N.verify_note(note, [])
    tampered = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(N.NoteError, match="invalid signature"):
        N.verify_note(tampered, [PETER_VKEY])


def test_vkey_known_answers_and_manglings() -> None:
    for vkey, sig_type, kid in [
        (PETER_VKEY, 1, "c74f20a3"),
        (ENOCH_VKEY, 1, "af0cfe78"),
        ("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6", 1, "7997405c"),
        ("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2", 4, "da77ade7"),
    ]:
        v = N.parse_vkey(vkey)
        assert (v.sig_type, v.key_id.hex()) == (sig_type, kid)
        assert N.format_vkey(v.name, v.public_key, v.sig_type) == vkey
    b = PETER_VKEY
    for i in range(len(b) + 1):  # every proper substring, as note_test.go does
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(N.NoteError):
                    N.parse_vkey(b[i:j])
    for i in range(len(b)):
        with pytest.raises(N.NoteError):
            N.parse_vkey(b[:i] + chr(ord(b[i]) + 1) + b[i + 1:])
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "bananas.sigstore.dev+12344556",
        "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
        "rekor.sigstore.dev+12345678+AwEB",
    ]:
        with pytest.raises(N.NoteError):
            N.parse_vkey(bad)


def test_spec_cosignature_example_structure() -> None:
    body, sigs = N.parse_note(SPEC_COSIGNED)
    cp = N.parse_checkpoint(body)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert [s.name for s in sigs] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    assert len(sigs[0].sig) == 64 and len(sigs[1].sig) == 72
    ts = N.cosignature_timestamp(sigs[1])
    assert ts == 1679315147  # the "time" line of the spec's signed-message example
    assert N.cosignature_message(body, ts) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    # transparency-dev/formats TestCosignatureTimestamp
    line = "— w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==\n"
    assert N.cosignature_timestamp(N.parse_note("x\n\n" + line)[1][0]) == 1727964367
    with pytest.raises(N.NoteError):
        N.cosignature_timestamp(sigs[0])


# ---------------------------------------------------------------- round trips


def test_sign_cosign_round_trip() -> None:
    body, note = signed_checkpoint()
    second = Ed25519PrivateKey.generate()
    note2 = N.add_signature(note, "mirror.example", second)
    assert N.verify_note(note2, {ORIGIN: LOG.public_key(), "mirror.example": second.public_key()}) == [
        ORIGIN, "mirror.example"]
    assert N.add_signature(note2, "mirror.example", second) == note2  # same key: replaced
    cosigned = N.add_cosignature(note2, "witness.example/w1", WITNESS, 1_700_000_000)
    wvkey = N.format_vkey("witness.example/w1", WITNESS.public_key(), N.SIG_COSIGNATURE_V1)
    lvkey = N.format_vkey(ORIGIN, LOG.public_key())
    assert N.verify_note(cosigned, [lvkey, wvkey]) == [ORIGIN, "witness.example/w1"]
    assert N.verify_cosignature(cosigned, "witness.example/w1", WITNESS.public_key()) == 1_700_000_000
    recosigned = N.add_cosignature(cosigned, "witness.example/w1", WITNESS, 1_700_000_600)
    assert recosigned.count("witness.example/w1") == 1
    assert N.verify_cosignature(recosigned, "witness.example/w1", raw_pub(WITNESS)) == 1_700_000_600
    assert N.parse_note(recosigned)[0] == body


def test_cosignature_wire_format() -> None:
    body, _ = signed_checkpoint(7, ("ext line",))
    line = N.cosign(body, "w", WITNESS, 1234567890)
    assert line.startswith("— w ") and line.endswith("\n")
    raw = base64.b64decode(line[4:-1])
    pub = raw_pub(WITNESS)
    assert raw[:4] == hashlib.sha256(b"w\n\x04" + pub).digest()[:4]
    assert raw[4:12] == (1234567890).to_bytes(8, "big")
    WITNESS.public_key().verify(raw[12:], b"cosignature/v1\ntime 1234567890\n" + body.encode())
    assert len(raw) == 4 + 8 + 64


def test_checkpoint_round_trip_with_extensions() -> None:
    body, note = signed_checkpoint(0, ("a b", "c"))
    assert body == f"{ORIGIN}\n0\n{base64.b64encode(ROOT).decode()}\na b\nc\n"
    assert N.parse_checkpoint(N.parse_note(note)[0]) == N.Checkpoint(ORIGIN, 0, ROOT, ("a b", "c"))


@settings(max_examples=40, deadline=None)
@given(
    # lone surrogates are not text at all (the module refuses them; tested elsewhere)
    origin=st.text(st.characters(min_codepoint=0x21, exclude_characters="\n", exclude_categories=["Cs"]),
                   min_size=1, max_size=30),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    exts=st.lists(st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=10),
                  max_size=3),
)
def test_round_trip_property(origin: str, size: int, root: bytes, exts: list[str]) -> None:
    body = N.format_checkpoint(origin, size, root, exts)
    note = N.add_cosignature(N.sign_note(body, "log", LOG), "w", WITNESS, size % 2**63)
    assert N.parse_checkpoint(N.parse_note(note)[0]) == N.Checkpoint(origin, size, root, tuple(exts))
    assert N.verify_note(note, {"log": LOG.public_key()}) == ["log"]
    assert N.verify_cosignature(note, "w", WITNESS.public_key()) == size % 2**63


# ------------------------------------------------------------ rejections


def test_wrong_key_and_modified_body() -> None:
    body, note = signed_checkpoint()
    other = Ed25519PrivateKey.generate()
    with pytest.raises(N.NoteError, match="no verifiable"):
        N.verify_note(note, {ORIGIN: other.public_key()})  # other key id: ignored, none left
    kid = N.key_id(ORIGIN, LOG.public_key())
    with pytest.raises(N.NoteError, match="does not match"):
        N.verify_note(note, {(ORIGIN, kid): other.public_key()})
    forged = note.replace("\n42\n", "\n43\n")
    with pytest.raises(N.NoteError, match="invalid signature"):
        N.verify_note(forged, {ORIGIN: LOG.public_key()})
    # a valid signature by the right key over another body, spliced in
    other_note = N.sign_note(N.format_checkpoint(ORIGIN, 43, ROOT), ORIGIN, LOG)
    spliced = body + "\n" + other_note.split("\n\n", 1)[1]
    with pytest.raises(N.NoteError, match="invalid signature"):
        N.verify_note(spliced, {ORIGIN: LOG.public_key()})
    with pytest.raises(N.NoteError, match="invalid signature"):  # known key, one bad line
        N.verify_note(note + spliced.split("\n\n", 1)[1], {ORIGIN: LOG.public_key()})


def test_cosignature_forgeries() -> None:
    body, note = signed_checkpoint()
    name, ts = "witness.example/w1", 1_700_000_000
    good = N.add_cosignature(note, name, WITNESS, ts)
    pub = WITNESS.public_key()
    kid = N.key_id(name, pub, N.SIG_COSIGNATURE_V1)
    sig = WITNESS.sign(N.cosignature_message(body, ts))

    def with_line(payload: bytes) -> str:
        return note + f"— {name} {base64.b64encode(kid + payload).decode()}\n"

    assert N.verify_cosignature(with_line(ts.to_bytes(8, "big") + sig), name, pub) == ts
    for bad in [
        (ts + 1).to_bytes(8, "big") + sig,  # timestamp changed
        ts.to_bytes(8, "big") + WITNESS.sign(body.encode()),  # plain Ed25519 over the body
        ts.to_bytes(8, "big") + sig[:-1] + bytes([sig[-1] ^ 1]),
        sig,  # no timestamp
        (2**63).to_bytes(8, "big") + WITNESS.sign(b"cosignature/v1\ntime 9223372036854775808\n" + body.encode()),
    ]:
        with pytest.raises(N.NoteError):
            N.verify_cosignature(with_line(bad), name, pub)
    with pytest.raises(N.NoteError, match="invalid signature"):
        N.verify_cosignature(good.replace("\n42\n", "\n41\n"), name, pub)
    with pytest.raises(N.NoteError, match="no verifiable"):
        N.verify_cosignature(good, name, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(N.NoteError, match="no verifiable"):  # 0x01 vkey does not match a 0x04 line
        N.verify_note(good, [N.format_vkey(name, pub)])
    with pytest.raises(N.NoteError, match="future"):
        N.verify_cosignature(good, name, pub, not_after=ts - 1)
    log_as_witness = N.add_signature(note, name, WITNESS)  # type 0x01 line by the witness key
    with pytest.raises(N.NoteError, match="no verifiable"):
        N.verify_cosignature(log_as_witness, name, pub)
    for bad_ts in (-1, 2**63, True, 1.5):
        with pytest.raises(N.NoteError):
            N.cosign(body, name, WITNESS, bad_ts)  # type: ignore[arg-type]
    with pytest.raises(N.NoteError):
        N.cosign("just one line\n", name, WITNESS, ts)


@pytest.mark.parametrize(
    "text",
    [
        TEXT,  # no signatures
        TEXT + "\n",  # empty signature block
        TEXT + "\n" + PETER_SIG[:-1],  # no final newline
        "\x01" + TEXT + "\n" + PETER_SIG,  # control character
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"),
        TEXT + "\n" + PETER_SIG.replace("—", "-"),  # hyphen, not em dash
        TEXT + "\n" + PETER_SIG.replace(" x08go", "  x08go"),
        TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # non-canonical base64
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # missing padding
        TEXT + "\n" + "— PeterNeumann AAAAAA==\n",  # shorter than key id + 1 byte
        TEXT + "\n" + "— PeterNeumann \n",
        TEXT + "\n" + PETER_SIG * 101,  # more than 100 signatures
        TEXT + "\n" + PETER_SIG + "\n",  # blank line at the end
        "\ud800" + TEXT + "\n" + PETER_SIG,  # not encodable as UTF-8
    ],
)
def test_parse_note_rejects(text: str) -> None:
    with pytest.raises(N.NoteError):
        N.parse_note(text)
    with pytest.raises(N.NoteError):
        N.verify_note(text, [PETER_VKEY])


def test_parse_note_bytes_and_limits() -> None:
    assert N.parse_note((TEXT + "\n" + PETER_SIG).encode())[0] == TEXT
    with pytest.raises(N.NoteError):
        N.parse_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())
    assert len(N.parse_note(TEXT + "\n" + PETER_SIG * 100)[1]) == 100
    # The text may itself contain blank lines; the last one separates the signatures.
    body = "a\n\nb\n"
    assert N.parse_note(N.sign_note(body, "k", LOG))[0] == body


@pytest.mark.parametrize(
    "body",
    [
        "o\n1\n" + base64.b64encode(ROOT).decode(),  # no final newline
        "o\n1\n",
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n01\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n+1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n 1\n" + base64.b64encode(ROOT).decode() + "\n",
        f"o\n{2**64}\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",
        "o\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension line
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\x07\n",
    ],
)
def test_parse_checkpoint_rejects(body: str) -> None:
    with pytest.raises(N.NoteError):
        N.parse_checkpoint(body)


def test_format_and_sign_reject_bad_input() -> None:
    for args in [
        ("", 1, ROOT), ("a\nb", 1, ROOT), ("o", -1, ROOT), ("o", 2**64, ROOT),
        ("o", True, ROOT), ("o", 1, ROOT[:31]), ("o", 1, "x" * 32),
    ]:
        with pytest.raises(N.NoteError):
            N.format_checkpoint(*args)  # type: ignore[arg-type]
    for exts in ([""], ["a\nb"], ["\x00"]):
        with pytest.raises(N.NoteError):
            N.format_checkpoint("o", 1, ROOT, exts)
    for body, name in [("no newline", "k"), ("ctl\x1b\n", "k"), ("ok\n", "bad name"),
                       ("ok\n", "a+b"), ("ok\n", "")]:
        with pytest.raises(N.NoteError):
            N.sign_note(body, name, LOG)
    with pytest.raises(N.NoteError):
        N.sign_note("ok\n", "k", raw_pub(LOG))  # type: ignore[arg-type]
