"""Sealed keys: round trip, tenant binding, tampering, wrong key, rotation."""

from __future__ import annotations

import base64
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.sealing import (
    SEALED_PATTERN,
    KeyRing,
    SealError,
    fingerprint,
    generate_keypair,
    key_id_of,
    read_secret,
    seal,
    unseal,
)

KEY = "sk-or-v1-CANARY-0123456789abcdef"
NS, NAME = "tenant-acme", "acme"


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return generate_keypair()


def _no_leak(err: SealError, *secrets: str) -> None:
    for s in secrets:
        assert s not in str(err)
        assert s not in repr(err.args)


def test_round_trip(pair: tuple[bytes, bytes]) -> None:
    priv, pub = pair
    sealed = seal(KEY, pub, NS, NAME)
    assert re.match(SEALED_PATTERN, sealed)
    assert KEY not in sealed
    assert key_id_of(sealed) == fingerprint(pub) == fingerprint(priv.decode())
    assert unseal(sealed, [priv], NS, NAME) == KEY
    assert unseal(sealed, [priv.decode()], NS, NAME) == KEY  # str PEM too


def test_seal_is_randomised(pair: tuple[bytes, bytes]) -> None:
    priv, pub = pair
    a, b = seal(KEY, pub, NS, NAME), seal(KEY, pub, NS, NAME)
    assert a != b  # fresh ephemeral key and nonce each time
    assert unseal(a, [priv], NS, NAME) == unseal(b, [priv], NS, NAME) == KEY


@pytest.mark.parametrize(
    ("ns", "name"),
    [("tenant-evil", "acme"), ("tenant-acme", "other"), ("tenant-acme.acme", "x"), ("a", "b")],
)
def test_copied_to_another_tenant_fails(pair: tuple[bytes, bytes], ns: str, name: str) -> None:
    priv, pub = pair
    sealed = seal(KEY, pub, NS, NAME)
    with pytest.raises(SealError, match="another namespace/name") as info:
        unseal(sealed, [priv], ns, name)
    _no_leak(info.value, KEY, sealed)


def test_tampering_fails(pair: tuple[bytes, bytes]) -> None:
    priv, pub = pair
    sealed = seal(KEY, pub, NS, NAME)
    head, body = sealed.rsplit(".", 1)
    blob = bytearray(base64.b64decode(body))
    for i in (0, 31, 32, 43, 44, len(blob) - 1):  # ephemeral key, nonce, ciphertext, tag
        bad = bytearray(blob)
        bad[i] ^= 0x01
        forged = f"{head}.{base64.b64encode(bytes(bad)).decode()}"
        with pytest.raises(SealError) as info:
            unseal(forged, [priv], NS, NAME)
        _no_leak(info.value, KEY, forged)
    truncated = f"{head}.{base64.b64encode(bytes(blob[:40])).decode()}"
    with pytest.raises(SealError, match="truncated"):
        unseal(truncated, [priv], NS, NAME)


def test_header_is_authenticated(pair: tuple[bytes, bytes]) -> None:
    """The key id is in the AAD: relabelling a value to another held key fails."""
    priv, pub = pair
    other_priv, _ = generate_keypair()
    sealed = seal(KEY, pub, NS, NAME)
    _, _, body = sealed.split(".", 2)
    relabelled = f"v1.{fingerprint(other_priv.decode())}.{body}"
    with pytest.raises(SealError, match="another namespace/name"):
        unseal(relabelled, [priv, other_priv], NS, NAME)


def test_wrong_key_fails(pair: tuple[bytes, bytes]) -> None:
    _, pub = pair
    stranger, _ = generate_keypair()
    sealed = seal(KEY, pub, NS, NAME)
    with pytest.raises(SealError, match=f"sealed to key {fingerprint(pub)}") as info:
        unseal(sealed, [stranger], NS, NAME)
    _no_leak(info.value, KEY, sealed)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "not a sealed value"),
        ("c2stb3ItdjEtMTIzNDU2Nzg=", "not a sealed value"),  # plain base64 of a key
        ("v2.0123456789abcdef.AAAA", "unsupported sealed format"),
        ("v1.0123456789abcdef.!!!!", "not a sealed value"),
        ("v1.0123456789ABCDEF.AAAA", "not a sealed value"),
        ("v1.0123456789abcdef.AAAAA", "not valid base64"),
        ("v1.0123456789abcdef." + "A" * 9000, "too long"),
    ],
)
def test_garbage_refused_clearly(pair: tuple[bytes, bytes], value: str, match: str) -> None:
    priv, _ = pair
    with pytest.raises(SealError, match=match) as info:
        unseal(value, [priv], NS, NAME)
    if value:
        _no_leak(info.value, value)


def test_whitespace_from_yaml_folding_tolerated(pair: tuple[bytes, bytes]) -> None:
    priv, pub = pair
    sealed = seal(KEY, pub, NS, NAME)
    folded = "\n".join(sealed[i : i + 40] for i in range(0, len(sealed), 40)) + "\n"
    assert unseal(folded, [priv], NS, NAME) == KEY


@pytest.mark.parametrize(("ns", "name"), [("", "a"), ("a/b", "c"), ("A", "b"), ("a", "b/c")])
def test_binding_names_validated(pair: tuple[bytes, bytes], ns: str, name: str) -> None:
    _, pub = pair
    with pytest.raises(SealError, match="invalid LLMConfig"):
        seal(KEY, pub, ns, name)


def test_bad_inputs(pair: tuple[bytes, bytes]) -> None:
    priv, pub = pair
    with pytest.raises(SealError, match="empty"):
        seal("", pub, NS, NAME)
    with pytest.raises(SealError, match="too long"):
        seal("x" * 5000, pub, NS, NAME)
    with pytest.raises(SealError, match="public key"):
        seal(KEY, b"not a pem", NS, NAME)
    with pytest.raises(SealError, match="public key"):
        seal(KEY, priv, NS, NAME)  # a private key where the public one belongs
    with pytest.raises(SealError, match="private key"):
        unseal(seal(KEY, pub, NS, NAME), [b"junk"], NS, NAME)


def test_rotation() -> None:
    """Rotate: old values still open, new seals use the new key; retire: old values fail
    with an error that names the missing key id."""
    ring = KeyRing.generate()
    old_id = ring.key_ids[0]
    old_value = seal(KEY, ring.public_pem, NS, NAME)

    ring = KeyRing.from_pem(ring.rotated().to_pem())  # as stored in and read from the Secret
    new_id = ring.key_ids[0]
    assert ring.key_ids == [new_id, old_id]
    assert fingerprint(ring.public_pem) == new_id  # the published key is the new one
    new_value = ring.seal("sk-new-key", NS, NAME)
    assert key_id_of(new_value) == new_id
    assert ring.unseal(old_value, NS, NAME) == KEY
    assert ring.unseal(new_value, NS, NAME) == "sk-new-key"

    with pytest.raises(SealError, match="current"):
        ring.retired([new_id])
    ring = ring.retired([old_id])
    assert ring.key_ids == [new_id]
    assert ring.unseal(new_value, NS, NAME) == "sk-new-key"
    with pytest.raises(SealError, match=f"sealed to key {old_id}.*re-seal") as info:
        ring.unseal(old_value, NS, NAME)
    _no_leak(info.value, KEY, old_value)


def test_keyring_pem_round_trip() -> None:
    ring = KeyRing.generate().rotated().rotated()
    again = KeyRing.from_pem(ring.to_pem().decode())
    assert again.key_ids == ring.key_ids
    with pytest.raises(SealError, match="no private key"):
        KeyRing.from_pem(b"")


def test_read_secret_from_stdin() -> None:
    assert read_secret(io.StringIO(KEY + "\n")) == KEY
    assert read_secret(io.StringIO(KEY + "\r\n")) == KEY
    assert read_secret(io.StringIO(KEY)) == KEY
    with pytest.raises(SealError, match="no key"):
        read_secret(io.StringIO("\n"))


@settings(max_examples=50, deadline=None)
@given(
    text=st.text(min_size=1, max_size=200).filter(lambda t: 0 < len(t.encode()) <= 4096),
    ns=st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z"),
)
def test_round_trip_property(pair: tuple[bytes, bytes], text: str, ns: str) -> None:
    priv, pub = pair
    sealed = seal(text, pub, ns, NAME)
    assert unseal(sealed, [priv], ns, NAME) == text


def test_rotation_cli(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    from byollm.sealing import main

    ring = KeyRing.generate()
    old_id = ring.key_ids[0]
    old_value = ring.seal(KEY, NS, NAME)

    def run(stdin: bytes, *argv: str) -> tuple[int, bytes, bytes]:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(list(argv))
        out, err = capsysbinary.readouterr()
        return code, out, err

    code, rotated, _ = run(ring.to_pem(), "rotate")
    assert code == 0
    new = KeyRing.from_pem(rotated)
    assert new.key_ids[1] == old_id
    assert new.unseal(old_value, NS, NAME) == KEY
    code, ids, _ = run(rotated, "ids")
    assert ids.decode().split() == new.key_ids
    code, retired, _ = run(rotated, "retire", old_id)
    assert KeyRing.from_pem(retired).key_ids == [new.key_ids[0]]
    code, out, err = run(rotated, "retire", new.key_ids[0])
    assert code == 1
    assert b"current" in err
    assert out == b""
    code, _, err = run(b"garbage", "ids")
    assert code == 1
    assert b"no private key" in err


@settings(max_examples=300, deadline=None)
@given(
    pos=st.integers(min_value=0, max_value=10_000),
    op=st.sampled_from(["replace", "delete", "insert", "truncate", "swap-dot"]),
    char=st.characters(codec="utf-8"),
)
def test_mutated_sealed_values_never_open_or_crash(
    pair: tuple[bytes, bytes], pos: int, op: str, char: str
) -> None:
    """Hostile edits of a sealed value: either a SealError, or (edit was whitespace or a
    no-op) the original plaintext. Never another plaintext, never another exception."""
    priv, pub = pair
    sealed = seal(KEY, pub, NS, NAME)
    i = pos % len(sealed)
    if op == "replace":
        mutated = sealed[:i] + char + sealed[i + 1 :]
    elif op == "delete":
        mutated = sealed[:i] + sealed[i + 1 :]
    elif op == "insert":
        mutated = sealed[:i] + char + sealed[i:]
    elif op == "truncate":
        mutated = sealed[:i]
    else:
        mutated = sealed.replace(".", char, 1)
    try:
        opened = unseal(mutated, [priv], NS, NAME)
    except SealError as err:
        _no_leak(err, KEY, sealed)
        return
    assert opened == KEY
    assert "".join(mutated.split()) == sealed  # only whitespace was added


def test_non_canonical_base64_refused(pair: tuple[bytes, bytes]) -> None:
    """Base64 ignores the unused low bits of the last character; flipping them must not
    give a second spelling of the same sealed value."""
    priv, pub = pair
    sealed = seal(KEY, pub, NS, NAME)
    body = sealed.rstrip("=")
    pad = sealed[len(body) :]
    assert pad, "the test needs a padded encoding"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(body[-1])
    twin = body[:-1] + alphabet[last ^ 1] + pad
    assert base64.b64decode(twin.rsplit(".", 1)[1]) == base64.b64decode(sealed.rsplit(".", 1)[1])
    with pytest.raises(SealError, match="canonical"):
        unseal(twin, [priv], NS, NAME)
