"""The viewer's tests: Qt offscreen, keyring's file backend in a temporary folder.

``signed_out_home`` points HOME and the XDG folders into the test's own directory and
selects ``keyrings.alt``'s plaintext file backend there (the way a user would, through
the environment keyring reads), so no test touches this machine's credential store.
``screenshots`` is the folder under pytest's temporary directory where the tests save
a picture of every panel, in English and Spanish.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6", reason="the viewer extra (PySide6) is not installed")
pytest.importorskip("keyring", reason="the viewer extra (keyring) is not installed")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring.core  # noqa: E402


@pytest.fixture
def signed_out_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home folder of the test's own; the credential store is a file in ``store/``."""
    home = tmp_path / "home"
    for folder in ("config", "cache", "data"):
        (home / folder).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    # keyring's data root (the backend's file) lives apart from the viewer's folders.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    keyring.core.init_backend()
    try:
        yield home
    finally:
        monkeypatch.undo()
        keyring.core.init_backend()


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save the viewer's panels (kept after the run, like any tmp dir)."""
    folder = tmp_path_factory.getbasetemp() / "artifacts" / "viewer-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def collect_garbage_after() -> Iterator[None]:
    """Collect garbage when each viewer test ends, so that anything left unclosed is
    reported in the test that left it (not later, in whatever runs then)."""
    yield
    gc.collect()
