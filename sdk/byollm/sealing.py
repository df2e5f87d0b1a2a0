"""Sealed API keys: encrypt to the operator's public key, bound to one LLMConfig.

GitOps users cannot put a provider key in git in clear. ``byollm seal`` encrypts it to
the operator's published X25519 public key; only the operator, holding the private key in
a Secret it creates once, can open it. The format::

    v1.<key-id>.<base64(ephemeral_public[32] || nonce[12] || AES-256-GCM ciphertext+tag)>

* ECDH (ephemeral-static X25519) -> HKDF-SHA256 -> AES-256-GCM: a fresh key per value,
  authenticated encryption (AES-256 at rest).
* ``namespace/name`` of the LLMConfig is in both the HKDF info and the GCM associated
  data, so a sealed value copied to another tenant's LLMConfig fails to open.
* ``key-id`` is a fingerprint of the recipient public key, in clear, so the operator can
  hold several private keys during a rotation and pick the right one without trial
  decryption, and so an error can say which key a value was sealed to.

Rotation (keys kept newest first, see ``KeyRing``):
  1. ``ring.rotated()`` prepends a new key; the operator publishes the new public key.
     New seals use it; values sealed to the old key still open (its key-id still matches).
  2. Re-seal the values in git with the new public key.
  3. ``ring.retired(old_key_id)`` drops the old key; values still sealed to it now fail
     with a SealError naming the missing key-id ("re-seal with the current public key").

Error messages never include the plaintext or the sealed blob.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TextIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION: Final = "v1"
KEY_ID_LEN: Final = 16  # hex chars: 64 bits of the public key's SHA-256
SEALED_PATTERN: Final = r"^v1\.[0-9a-f]{16}\.[A-Za-z0-9+/]+={0,2}$"
"""A regex for the CRD schema: what ``seal`` produces."""
SECRET_DATA_KEY: Final = "private-keys.pem"
"""The data key, in the operator's sealing Secret, holding ``KeyRing.to_pem()``."""
MAX_PLAINTEXT: Final = 4096  # bytes; API keys are far smaller
MAX_SEALED: Final = 8192  # characters; the CRD's maxLength
_INFO: Final = b"byollm.io/sealed-key/v1"
_PUB_LEN, _NONCE_LEN, _TAG_LEN = 32, 12, 16
_SEALED_RE: Final = re.compile(SEALED_PATTERN)
_K8S_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_PEM_BLOCK: Final = re.compile(
    rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----\s*", re.DOTALL
)

PrivateKeyLike = X25519PrivateKey | bytes | str
PublicKeyLike = X25519PublicKey | bytes | str


class SealError(Exception):
    """A value that cannot be sealed or opened. Never carries the plaintext or the blob."""


# --- keys -----------------------------------------------------------------------------


def _pem(data: bytes | str) -> bytes:
    return data.encode("ascii") if isinstance(data, str) else data


def load_private_key(key: PrivateKeyLike) -> X25519PrivateKey:
    if isinstance(key, X25519PrivateKey):
        return key
    try:
        loaded = serialization.load_pem_private_key(_pem(key), password=None)
    except (ValueError, TypeError, UnicodeError):
        raise SealError("sealing private key is not a PEM PKCS#8 key") from None
    if not isinstance(loaded, X25519PrivateKey):
        raise SealError("sealing private key is not an X25519 key")
    return loaded


def load_public_key(key: PublicKeyLike) -> X25519PublicKey:
    if isinstance(key, X25519PublicKey):
        return key
    try:
        loaded = serialization.load_pem_public_key(_pem(key))
    except (ValueError, TypeError, UnicodeError):
        raise SealError("sealing public key is not a PEM public key") from None
    if not isinstance(loaded, X25519PublicKey):
        raise SealError("sealing public key is not an X25519 key")
    return loaded


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_pem(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_keypair() -> tuple[bytes, bytes]:
    """A new sealing key pair as (private PKCS#8 PEM, public SPKI PEM)."""
    key = X25519PrivateKey.generate()
    return private_pem(key), public_pem(key)


def fingerprint(key: PublicKeyLike | X25519PrivateKey) -> str:
    """Key id: the first 64 bits of SHA-256 over the raw public key, in hex.

    Accepts either half of the pair (a private PEM gives its public key's id)."""
    if isinstance(key, bytes | str) and b"PRIVATE KEY" in _pem(key):
        key = load_private_key(key)
    pub = key.public_key() if isinstance(key, X25519PrivateKey) else load_public_key(key)
    return hashlib.sha256(_raw(pub)).hexdigest()[:KEY_ID_LEN]


# --- seal / unseal --------------------------------------------------------------------


def _binding(namespace: str, name: str) -> bytes:
    for what, value in (("namespace", namespace), ("name", name)):
        if not _K8S_NAME.match(value):
            raise SealError(f"invalid LLMConfig {what} {value!r} to bind a sealed key to")
    return f"{namespace}/{name}".encode("ascii")


def _derive(shared: bytes, eph_pub: bytes, rcpt_pub: bytes, binding: bytes) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=eph_pub + rcpt_pub,
        info=_INFO + b"|" + binding,
    ).derive(shared)
    return AESGCM(key)


def seal(plaintext: str, public_key_pem: PublicKeyLike, namespace: str, name: str) -> str:
    """Encrypt ``plaintext`` so only the holder of the private key opens it, and only
    for the LLMConfig ``namespace/name``."""
    data = plaintext.encode("utf-8")
    if not data:
        raise SealError("refusing to seal an empty value")
    if len(data) > MAX_PLAINTEXT:
        raise SealError(f"value too long to seal (max {MAX_PLAINTEXT} bytes)")
    binding = _binding(namespace, name)
    recipient = load_public_key(public_key_pem)
    ephemeral = X25519PrivateKey.generate()
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError:  # low-order public key: all-zero shared secret
        raise SealError("sealing public key is invalid") from None
    eph_pub, rcpt_pub = _raw(ephemeral.public_key()), _raw(recipient)
    header = f"{VERSION}.{fingerprint(recipient)}."
    nonce = os.urandom(_NONCE_LEN)
    aead = _derive(shared, eph_pub, rcpt_pub, binding)
    ct = aead.encrypt(nonce, data, header.encode("ascii") + binding)
    return header + base64.b64encode(eph_pub + nonce + ct).decode("ascii")


def key_id_of(sealed: str) -> str:
    """The key id a sealed value was sealed to (for errors and rotation reports)."""
    return _split(sealed)[1]


def _split(sealed: str) -> tuple[str, str, bytes]:
    s = "".join(sealed.split())  # tolerate line breaks from YAML folding
    if len(s) > MAX_SEALED:
        raise SealError(f"sealed value too long (max {MAX_SEALED} characters)")
    if not _SEALED_RE.match(s):
        if s.startswith(("v", "V")) and not s.startswith(f"{VERSION}."):
            raise SealError(f"unsupported sealed format (this operator reads {VERSION})")
        raise SealError(f"not a sealed value (expected {VERSION}.<key-id>.<base64>)")
    version, kid, body = s.split(".", 2)
    try:
        blob = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise SealError("sealed value is not valid base64") from None
    if base64.b64encode(blob).decode("ascii") != body:  # unused bits set: one value, one form
        raise SealError("sealed value is not canonical base64")
    if len(blob) < _PUB_LEN + _NONCE_LEN + _TAG_LEN + 1:
        raise SealError("sealed value is truncated")
    return version, kid, blob


def unseal(sealed: str, private_keys: Sequence[PrivateKeyLike], namespace: str, name: str) -> str:
    """Open a sealed value for ``namespace/name`` with whichever held key it names."""
    binding = _binding(namespace, name)
    version, kid, blob = _split(sealed)
    keys = [load_private_key(k) for k in private_keys]
    key = next((k for k in keys if fingerprint(k) == kid), None)
    if key is None:
        held = ", ".join(fingerprint(k) for k in keys) or "none"
        raise SealError(
            f"sealed to key {kid}, which the operator does not hold (holds: {held}); "
            "re-seal with the current public key"
        )
    eph_pub = blob[:_PUB_LEN]
    nonce = blob[_PUB_LEN : _PUB_LEN + _NONCE_LEN]
    ct = blob[_PUB_LEN + _NONCE_LEN :]
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        aead = _derive(shared, eph_pub, _raw(key.public_key()), binding)
        data = aead.decrypt(nonce, ct, f"{version}.{kid}.".encode("ascii") + binding)
    except (InvalidTag, ValueError):
        raise SealError(
            f"sealed value does not open for LLMConfig {namespace}/{name}: it was sealed "
            "for another namespace/name, or altered"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SealError("sealed value is not UTF-8 text") from None


def read_secret(stream: TextIO) -> str:
    """Read a key for ``byollm seal`` from stdin: one trailing newline dropped, no echo."""
    text = stream.read(MAX_PLAINTEXT + 2)
    text = text[:-1] if text.endswith("\n") else text
    text = text[:-1] if text.endswith("\r") else text
    if not text.strip():
        raise SealError("no key on stdin")
    return text


# --- key ring (the operator's Secret) -------------------------------------------------


@dataclass(frozen=True)
class KeyRing:
    """The operator's sealing private keys, newest first. The newest is the one published;
    all are tried (by key id) when opening."""

    keys: tuple[X25519PrivateKey, ...]

    @classmethod
    def generate(cls) -> KeyRing:
        return cls((X25519PrivateKey.generate(),))

    @classmethod
    def from_pem(cls, bundle: bytes | str) -> KeyRing:
        """Parse concatenated PEM blocks (the Secret's value), newest first."""
        blocks = _PEM_BLOCK.findall(_pem(bundle))
        if not blocks:
            raise SealError("sealing key Secret holds no private key")
        return cls(tuple(load_private_key(b) for b in blocks))

    def to_pem(self) -> bytes:
        return b"".join(private_pem(k) for k in self.keys)

    @property
    def current(self) -> X25519PrivateKey:
        return self.keys[0]

    @property
    def public_pem(self) -> bytes:
        """What the operator publishes for ``byollm seal``: the newest key's public half."""
        return public_pem(self.current)

    @property
    def key_ids(self) -> list[str]:
        return [fingerprint(k) for k in self.keys]

    def rotated(self) -> KeyRing:
        """A ring with a new current key; older keys stay so existing values still open."""
        return KeyRing((X25519PrivateKey.generate(), *self.keys))

    def retired(self, key_ids: Iterable[str]) -> KeyRing:
        """A ring without the given (old) keys. The current key cannot be retired."""
        drop = set(key_ids)
        if fingerprint(self.current) in drop:
            raise SealError("cannot retire the current sealing key; rotate first")
        return KeyRing(tuple(k for k in self.keys if fingerprint(k) not in drop))

    def seal(self, plaintext: str, namespace: str, name: str) -> str:
        return seal(plaintext, self.current.public_key(), namespace, name)

    def unseal(self, sealed: str, namespace: str, name: str) -> str:
        return unseal(sealed, self.keys, namespace, name)


# --- key rotation from a shell --------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m byollm.sealing {ids,rotate,retire KEY_ID...}``: PEM bundle on
    stdin (the Secret's ``private-keys.pem``), new bundle or key ids on stdout. Lets an
    admin rotate the sealing key with kubectl, without the key touching disk."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m byollm.sealing")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ids", help="print the key ids, newest (the published one) first")
    sub.add_parser("rotate", help="prepend a new key; old values still open")
    retire = sub.add_parser("retire", help="drop old keys; values sealed to them stop opening")
    retire.add_argument("key_ids", nargs="+")
    args = parser.parse_args(argv)
    try:
        ring = KeyRing.from_pem(sys.stdin.buffer.read())
        if args.cmd == "ids":
            sys.stdout.write("\n".join(ring.key_ids) + "\n")
            return 0
        ring = ring.rotated() if args.cmd == "rotate" else ring.retired(args.key_ids)
    except SealError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.buffer.write(ring.to_pem())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
