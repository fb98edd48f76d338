"""The secure channel: one ChaCha20-Poly1305 record per WebSocket message.

Rules:

1. One key per direction, from the pairing. Nonce = 32 zero bits || 64-bit counter;
   the counter is implicit (never sent), starts at 0 and goes up by one per record.
2. Associated data = session id || record type || counter. A record that was
   altered, replayed, dropped or reordered fails to open: :class:`IntegrityError`,
   and the channel refuses everything after it.
3. Every ``REKEY_INTERVAL`` records both sides replace the direction's key with
   HKDF(key, "rekey"), well before 2**32 records; the counter keeps counting.
"""

from __future__ import annotations

import enum
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import IntegrityError, LocalProtocolError, MalformedMessage
from .pairing import SessionKeys, _hkdf

REKEY_INTERVAL = 1 << 20
MAX_COUNTER = (1 << 64) - 1
TAG_SIZE = 16


class RecordType(enum.IntEnum):
    DATA = 0x10  # multiplexer frames
    CLOSE = 0x11  # authenticated end of the session, with a reason
    ACK = 0x12  # how many DATA frames arrived so far (the sender may forget them)


class _Direction:
    def __init__(self, session_id: bytes, key: bytes, rekey_interval: int) -> None:
        self._session_id = session_id
        self._key = key
        self._aead = ChaCha20Poly1305(key)
        self._rekey_interval = rekey_interval
        self.counter = 0

    def nonce_and_aad(self, record_type: int) -> tuple[bytes, bytes]:
        if self.counter >= MAX_COUNTER:
            raise LocalProtocolError("the session sent too many records; start a new one")
        nonce = b"\x00\x00\x00\x00" + struct.pack(">Q", self.counter)
        aad = self._session_id + bytes([record_type]) + struct.pack(">Q", self.counter)
        return nonce, aad

    def advance(self) -> None:
        self.counter += 1
        if self.counter % self._rekey_interval == 0:
            self._key = _hkdf(self._key, self._session_id, b"rekey")
            self._aead = ChaCha20Poly1305(self._key)

    @property
    def aead(self) -> ChaCha20Poly1305:
        return self._aead


class SecureChannel:
    """Seal records to send and open records received, strictly in order."""

    def __init__(self, keys: SessionKeys, rekey_interval: int = REKEY_INTERVAL) -> None:
        if rekey_interval < 1:  # 0 would divide by zero on the first record
            raise LocalProtocolError("rekey_interval must be at least one record")
        self._send = _Direction(keys.session_id, keys.send_key, rekey_interval)
        self._recv = _Direction(keys.session_id, keys.recv_key, rekey_interval)
        self._broken = False

    @property
    def records_sent(self) -> int:
        return self._send.counter

    @property
    def records_received(self) -> int:
        return self._recv.counter

    def seal(self, record_type: RecordType, plaintext: bytes | bytearray | memoryview) -> bytearray:
        """Encrypt one record: ``type byte || ciphertext``.

        The ciphertext is written straight after the type byte (no copy of the record
        afterwards: bulk data crosses this layer at hundreds of MB/s).
        """
        nonce, aad = self._send.nonce_and_aad(record_type)
        sealed = bytearray(1 + len(plaintext) + TAG_SIZE)
        sealed[0] = record_type
        self._send.aead.encrypt_into(nonce, plaintext, aad, memoryview(sealed)[1:])
        self._send.advance()
        return sealed

    def open(self, record: bytes | bytearray | memoryview) -> tuple[RecordType, bytes]:
        """Decrypt the next record; any failure is final."""
        if self._broken:
            raise IntegrityError("the channel already failed an integrity check")
        if len(record) < 1 + TAG_SIZE:
            self._broken = True
            raise MalformedMessage("record too short")
        try:
            record_type = RecordType(record[0])
        except ValueError:
            self._broken = True
            raise MalformedMessage(f"unknown record type {record[0]}") from None
        nonce, aad = self._recv.nonce_and_aad(record_type)
        try:
            # A view, not a slice: the record is not copied before it is decrypted.
            plaintext = self._recv.aead.decrypt(nonce, memoryview(record)[1:], aad)
        except InvalidTag:
            self._broken = True
            raise IntegrityError() from None
        self._recv.advance()
        return record_type, plaintext
