"""``puente-tech devices show``'s technician-side pieces without a relay: opening the
sealed details a device API answer carries, and the sentences for bad input."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from protocol import sealed_details
from protocol.errors import TrustError
from technician.device_details import PostRefused, opened, post_to_tickets, read_details_key

DEVICE = "ab" * 16


def answer(key: sealed_details.X25519PrivateKey) -> dict[str, object]:
    sealed = sealed_details.seal({"free_bytes": 7}, key.public_key(), DEVICE, "disk", 100)
    return {
        "device_id": DEVICE,
        "details": [{"check": "disk", "at": 100, "status": "failing", "sealed": sealed}],
        "tickets": {"disk": "42"},
        "policy": None,
    }


def test_details_open_with_the_key_and_say_why_not_without_it(tmp_path: Path) -> None:
    key = sealed_details.new_details_key()
    device = answer(key)
    assert opened(device, key)[0]["details"] == {"free_bytes": 7}
    assert opened(device, None)[0]["problem"] == "sealed; pass --details-key to open"
    other = opened(device, sealed_details.new_details_key())[0]
    assert "details" not in other and "do not open with this details key" in other["problem"]

    path = tmp_path / "details.key"
    path.write_bytes(sealed_details.private_to_pem(key))
    assert sealed_details.public_text(read_details_key(path)) == sealed_details.public_text(key)
    with pytest.raises(TrustError, match="Cannot read .* check the path"):
        read_details_key(tmp_path / "missing.key")
    (tmp_path / "org.pub").write_text("not a key")
    with pytest.raises(TrustError, match="not an organisation details key"):
        read_details_key(tmp_path / "org.pub")


def test_nothing_is_posted_for_a_device_on_the_default_policy(tmp_path: Path) -> None:
    key = sealed_details.new_details_key()
    args = argparse.Namespace(org_key=tmp_path / "org.pub", post_to_ticket="http://127.0.0.1:9")
    device = answer(key)
    with pytest.raises(PostRefused, match="default policy, which keeps details off tickets"):
        post_to_tickets(args, device, opened(device, key))
