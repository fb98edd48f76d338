"""The pictures of the agent's window that the join page shows (relay/static/).

The real Tk window (agent/tk_ui.py) on Xvfb, in English and Spanish: opened the way a
download from the join page opens it (``puente-agent-417``: only the 6 digits to type),
then showing a session (technician, ticket, check code). Each is cropped from the
screen and saved in the test's folder for a person to look at; with
``PUENTE_UPDATE_PICTURES=1`` they also replace the ones committed under relay/static/,
which the relay serves at ``/join/assets/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from relay.downloads import ASSETS
from tests.support.xdisplay import run_in_child, xvfb

PICTURES = [f"agent-{step}-{lang}.png" for step in ("digits", "session") for lang in ("en", "es")]


def test_the_agent_window_pictures_for_the_join_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUENTE_PICTURES_DIR", str(tmp_path))
    with xvfb() as display:
        run_in_child(display, "tests.agent.test_join_pictures", "pictures_scenario")
    for name in PICTURES:
        with Image.open(tmp_path / name) as taken:
            assert taken.width >= 480 and taken.height >= 300, (name, taken.size)
            # Not a blank grab: the window's text and buttons are there.
            assert len(taken.convert("L").getcolors(65536) or []) > 8, name
        if os.environ.get("PUENTE_UPDATE_PICTURES") == "1":
            shutil.copyfile(tmp_path / name, ASSETS / name)
        with Image.open(ASSETS / name) as committed:
            assert committed.format == "PNG" and committed.width >= 480, name


def pictures_scenario(display: str) -> None:
    import tkinter

    from agent import tk_ui
    from agent.i18n import set_language, t
    from agent.ui import SessionInfo

    folder = Path(os.environ["PUENTE_PICTURES_DIR"])
    for language in ("en", "es"):
        set_language(language)
        root = tkinter.Tk()
        window = tk_ui.CustomerWindow(root, lambda code: None, None, {}, nameplate="417")
        root.geometry("+0+0")
        settle(root)
        shown = [w["text"] for w in window.snapshot()]
        assert t("tk.digits_label", nameplate="417") in shown, shown
        assert "417-" in shown, shown
        crop(root, folder / f"agent-digits-{language}.png")
        window.show_session(SessionInfo("Ana Lopez", True, "Acme IT", "HD-5", "", "7302 1486"))
        settle(root)
        shown = [w["text"] for w in window.snapshot()]
        assert t("tk.sas", sas="7302 1486") in shown, shown
        crop(root, folder / f"agent-session-{language}.png")
        root.destroy()


def settle(root: object) -> None:
    import time

    for _ in range(20):
        root.update()  # type: ignore[attr-defined]
        time.sleep(0.05)


def crop(root: object, path: Path) -> None:
    """The window's pixels from the screen, saved as an optimised PNG."""
    from tests.support.xdisplay import grab

    rgb, width, height = grab(os.environ["DISPLAY"])
    screen = Image.frombytes("RGB", (width, height), rgb)
    x, y = root.winfo_rootx(), root.winfo_rooty()  # type: ignore[attr-defined]
    w, h = root.winfo_width(), root.winfo_height()  # type: ignore[attr-defined]
    screen.crop((x, y, x + w, y + h)).save(path, optimize=True)
