"""The screen and input pipeline's pure parts, without a display or a network."""

from __future__ import annotations

import numpy as np
import pytest

from agent.capabilities.screen.capture import NO_DISPLAY, WAYLAND, unavailable_reason
from agent.capabilities.screen.encoder import (
    FINGERPRINT_SAMPLES,
    FrameEncoder,
    TileClass,
    changed_tiles,
    classify_tiles,
    find_move,
    line_fingerprints,
    merge_tiles,
    tiles_any,
)
from agent.capabilities.screen.input import desktop_point
from agent.capabilities.screen.pacing import LEVELS, FramePacer
from agent.capabilities.screen.pipeline import split_rects, tile_window
from protocol import input as input_protocol
from protocol import screen as screen_protocol
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.mux import Channel, FrameKind, Multiplexer
from protocol.screen import Codec, Frame, Info, Monitor, Rect
from technician.errors import ScreenDataError
from technician.screen_stream import FrameDecoder, psnr


def bgra(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    out = np.full((height, width, 4), 255, dtype=np.uint8)
    out[..., :3] = rgb[..., ::-1]
    return out


def desktop(width: int = 320, height: int = 200) -> np.ndarray:
    """Text-like background with a photo-like block and a flat block."""
    rng = np.random.default_rng(7)
    rgb = np.full((height, width, 3), 240, dtype=np.uint8)
    rgb[10:20, 10:150] = 20  # a "line of text"
    # A photo: smooth colour changes with grain, so few neighbours are equal.
    y, x = np.mgrid[0:64, 0:128]
    photo = np.stack([x * 2, y * 4, (x + y) * 2], -1) + rng.integers(0, 12, (64, 128, 3))
    rgb[64:128, 128:256] = photo.clip(0, 255).astype(np.uint8)
    return bgra(rgb)


def decode_all(rects: list[Rect], width: int, height: int, decoder: FrameDecoder) -> np.ndarray:
    decoder.apply(Frame(1, width, height, rects))
    assert decoder.canvas is not None
    return decoder.canvas


# Tiles ----------------------------------------------------------------------------------


def test_tile_diff_and_classes() -> None:
    image = desktop()
    changed = image.copy()
    changed[150, 300] = (0, 0, 0, 255)
    mask = changed_tiles(image, changed)
    assert mask.shape == (4, 5)
    assert mask.sum() == 1 and mask[2, 4]
    kinds = classify_tiles(image)
    assert kinds[1, 2] == TileClass.PHOTO and kinds[1, 3] == TileClass.PHOTO
    assert kinds[0, 0] == TileClass.TEXT
    assert kinds[3, 4] == TileClass.SOLID
    # The per-tile path (few changed tiles) agrees with the whole-image path.
    few = np.zeros_like(mask)
    few[1, 2] = few[0, 0] = few[3, 4] = True
    partial = classify_tiles(image, few)
    for r, c in zip(*np.nonzero(few), strict=True):
        assert partial[r, c] == kinds[r, c]


def test_merge_tiles_into_rectangles() -> None:
    mask = np.zeros((3, 4), dtype=bool)
    mask[0:2, 1:3] = True
    mask[2, 0] = True
    kinds = np.full((3, 4), TileClass.TEXT, dtype=np.int8)
    rects = merge_tiles(mask, kinds)
    assert [(r.col, r.row, r.cols, r.rows) for r in rects] == [(1, 0, 2, 2), (0, 2, 1, 1)]
    kinds[0, 2] = TileClass.PHOTO
    assert len(merge_tiles(mask, kinds)) == 4


def test_encoder_sends_whole_then_only_changes() -> None:
    encoder = FrameEncoder()
    decoder = FrameDecoder()
    image = desktop()
    decoder.apply(Info(1, [Monitor(0, 0, 320, 200)], 0, 320, 200))
    first = encoder.encode(image, quality=90)
    assert {r.codec for r in first} == {Codec.FILL, Codec.ZLIB, Codec.JPEG}
    canvas = decode_all(first, 320, 200, decoder)
    assert decoder.complete
    assert psnr(canvas, image[..., 2::-1]) > 30
    assert encoder.encode(image) == []
    changed = image.copy()
    changed[5:9, 70:80] = (0, 0, 255, 255)
    rects = encoder.encode(changed)
    # Only the changed tile is coded, cropped to the pixels that differ.
    assert [(r.x, r.y, r.width, r.height) for r in rects] == [(70, 5, 10, 4)]
    canvas = decode_all(rects, 320, 200, decoder)
    assert tuple(canvas[6, 75]) == (255, 0, 0)


def test_lossless_is_exact_and_size_change_restarts() -> None:
    encoder = FrameEncoder()
    decoder = FrameDecoder()
    image = desktop()
    decoder.apply(Info(1, [Monitor(0, 0, 320, 200)], 0, 320, 200))
    canvas = decode_all(encoder.encode(image, lossless=True), 320, 200, decoder)
    assert psnr(canvas, image[..., 2::-1]) == float("inf")
    smaller = desktop(300, 150)
    rects = encoder.encode(smaller, lossless=True)
    assert sum(r.width * r.height for r in rects) == 300 * 150  # whole again


def test_sustained_motion_becomes_video_and_back() -> None:
    rng = np.random.default_rng(3)
    encoder = FrameEncoder()
    decoder = FrameDecoder()
    base = desktop(640, 384)
    decoder.apply(Info(1, [Monitor(0, 0, 640, 384)], 0, 640, 384))
    decode_all(encoder.encode(base), 640, 384, decoder)
    y, x = np.mgrid[0:192, 0:256]
    codecs = []
    for step in range(30):
        frame = base.copy()
        # A moving smooth picture with some grain, like a video.
        picture = np.stack([(x + 4 * step) % 256, (y + 2 * step) % 256, (x + y) % 256], -1)
        grain = rng.integers(0, 24, picture.shape)
        frame[64:256, 128:384, :3] = (picture + grain).clip(0, 255).astype(np.uint8)
        rects = encoder.encode(frame, quality=80)
        codecs.append({r.codec for r in rects})
        canvas = decode_all(rects, 640, 384, decoder)
    assert Codec.JPEG in codecs[0]
    assert codecs[-1] == {Codec.H264}
    assert psnr(canvas[64:256, 128:384], frame[64:256, 128:384, 2::-1]) > 25
    # Motion stops: after a while the region is sent once more as tiles.
    still = []
    for _ in range(40):
        still.append({r.codec for r in encoder.encode(frame, quality=80)})
    assert {Codec.JPEG} in still or {Codec.JPEG, Codec.ZLIB} in still


def test_split_rects_keeps_frames_bounded() -> None:
    rects = [Rect(0, 0, 1, 1, Codec.ZLIB, b"x" * 600) for _ in range(5)]
    assert [len(g) for g in split_rects(rects, budget=1000)] == [1, 1, 1, 1, 1]
    assert [len(g) for g in split_rects(rects, budget=1300)] == [2, 2, 1]


# Messages -------------------------------------------------------------------------------


def test_screen_messages_round_trip_and_hostile_input() -> None:
    info = Info(5, [Monitor(0, 0, 800, 600, True)], 0, 800, 600)
    frame = Frame(3, 800, 600, [Rect(0, 0, 64, 64, Codec.FILL, b"\x01\x02\x03")], 12, 3)
    for message in (info, frame, screen_protocol.Ack(5, 3, 1), screen_protocol.Stop(5)):
        assert screen_protocol.parse(screen_protocol.serialize(message)) == message
    outside = Frame(3, 800, 600, [Rect(780, 0, 64, 64, Codec.FILL, b"\x01\x02\x03")])
    with pytest.raises(MalformedMessage):
        screen_protocol.serialize(outside)
    from protocol.messages import pack

    for bad in (
        pack([2, 1, 800, 600, [[0, 0, 10, 10, 9, b"", 0]], 0, 0]),  # unknown codec
        pack([2, 1, 800, 600, [[700, 0, 200, 10, 1, b"", 0]], 0, 0]),  # outside
        pack([1, 1, [], 0, 800, 600]),  # no monitors
        pack([99]),
        b"\xc1",
    ):
        with pytest.raises(MalformedMessage):
            screen_protocol.parse(bad)


def test_decoder_rejects_pixels_that_do_not_match() -> None:
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, 100, 100)], 0, 100, 100))
    import zlib

    short = Rect(0, 0, 10, 10, Codec.ZLIB, zlib.compress(b"\x00" * 299))
    with pytest.raises(ScreenDataError):
        decoder.apply(Frame(1, 100, 100, [short]))
    from agent.capabilities.screen.encoder import encode_jpeg

    wrong = Rect(0, 0, 10, 10, Codec.JPEG, encode_jpeg(np.zeros((20, 20, 4), np.uint8), 80))
    with pytest.raises(ScreenDataError):
        decoder.apply(Frame(1, 100, 100, [wrong]))
    with pytest.raises(ScreenDataError):
        decoder.apply(Frame(1, 100, 100, [Rect(0, 0, 16, 16, Codec.H264, b"garbage", 1)]))
    with pytest.raises(ScreenDataError):
        decoder.apply(Frame(1, 50, 50, []))


def test_input_events_round_trip_and_checks() -> None:
    events: list[input_protocol.InputEvent] = [
        input_protocol.Move(1, 2),
        input_protocol.ButtonEvent(3, 4, input_protocol.Button.RIGHT, True),
        input_protocol.Click(5, 6, input_protocol.Button.MIDDLE, 2),
        input_protocol.Wheel(7, 8, 0, 3),
        input_protocol.Key("enter", False),
        input_protocol.parse_combo("ctrl+alt+t"),
        input_protocol.Text("ñandú ✓"),
    ]
    assert input_protocol.parse(input_protocol.serialize(9, 1, events)) == (9, 1, events)
    assert input_protocol.parse_combo("Control+Return").keys == ("ctrl", "enter")
    assert input_protocol.parse_combo("ctrl++").keys == ("ctrl", "+")
    for bad_combo in ("", "ctrl+", "ctrl+launch_missiles"):
        with pytest.raises(ValueError):
            input_protocol.parse_combo(bad_combo)
    for bad in (
        [[5, "not_a_key", True]],
        [[3, 0, 0, "left", 9]],
        [[1, 0]],
        [[42]],
        [[7, "x" * 5000]],
    ):
        with pytest.raises(MalformedMessage):
            input_protocol.events_from_wire(bad)


def test_desktop_point_maps_monitors_and_scaling() -> None:
    right = Monitor(1920, 0, 1280, 1024)
    assert desktop_point(right, 10, 20) == (1930, 20)
    assert desktop_point(right, 5000, -3) == (1920 + 1279, 0)  # clamped to its monitor
    retina = Monitor(0, 0, 1440, 900)  # points; captured at 2880x1800 pixels
    assert desktop_point(retina, 2000, 1000, scale=2.0) == (1000, 500)
    assert desktop_point(retina, 2879, 1799, scale=2.0) == (1439, 899)


def test_unavailable_reasons() -> None:
    assert unavailable_reason({}, "linux") == NO_DISPLAY
    assert unavailable_reason({"DISPLAY": ":0"}, "linux") is None
    wayland = {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    assert unavailable_reason(wayland, "linux") == WAYLAND
    assert unavailable_reason({}, "win32") is None


# Pacing ---------------------------------------------------------------------------------


def test_pacer_window_and_adaptation() -> None:
    pacer = FramePacer(window=3)
    now = 0.0
    seqs = [pacer.sent(1000, now) for _ in range(3)]
    assert not pacer.window_open()
    assert pacer.acked(seqs[0], 0.01) == pytest.approx(0.01)
    assert pacer.window_open()
    start_level = pacer.level
    # Round trips grow far beyond the base: frames are queueing -> lower quality.
    now = 1.0
    for _ in range(20):
        seq = pacer.sent(1000, now)
        now += 0.6
        pacer.acked(seq, now)
    assert pacer.level > start_level
    assert pacer.quality < LEVELS[start_level][0]
    # Calm again for long enough -> back up.
    level = pacer.level
    for _ in range(200):
        seq = pacer.sent(1000, now)
        now += 0.05
        pacer.acked(seq, now + 0.01 - 0.05)
    assert pacer.level < level
    fixed = FramePacer(quality=50, max_fps=10)
    assert fixed.quality == 50 and fixed.max_fps == 10
    assert fixed.delay(0.0) == 0.0
    fixed.captured(0.0)
    fixed.sent(1, 0.03)  # coding took 30 ms: the next capture is still due at 0.1
    assert fixed.delay(0.05) == pytest.approx(0.05)


# Multiplexer: discarding a channel ------------------------------------------------------


def test_mux_discard_drops_queued_and_aborts_half_sent() -> None:
    sender, receiver = Multiplexer(), Multiplexer()
    big = bytes(range(256)) * 4000  # 1,024,000 bytes: four 256 KiB fragments
    sender.send(Channel.SCREEN, big)
    sender.send(Channel.SCREEN, b"second")
    sender.send(Channel.CONTROL, b"revoked")
    assert receiver.receive_frame(sender.next_frame()) is not None  # control first
    assert receiver.receive_frame(sender.next_frame()) is None  # first part of big
    assert sender.discard(Channel.SCREEN) == 2
    abort = sender.next_frame()
    assert abort == bytes([FrameKind.ABORT, Channel.SCREEN])
    assert sender.next_frame() is None
    assert receiver.receive_frame(abort) is None
    # The receiver gives back the credit of the dropped part, and the channel works on.
    credit = receiver.next_frame()
    assert credit is not None and credit[0] == FrameKind.CREDIT
    sender.receive_frame(credit)
    sender.send(Channel.SCREEN, b"after")
    message = receiver.receive_frame(sender.next_frame())
    assert message is not None and message.payload == b"after"
    with pytest.raises(RemoteProtocolError):
        receiver.receive_frame(bytes([FrameKind.ABORT, Channel.SCREEN]))
    assert Multiplexer().discard(Channel.SCREEN) == 0


def test_scrolling_is_sent_as_a_copy() -> None:
    rng = np.random.default_rng(5)
    # "Text": rows of dark and light runs, each row different.
    lines = np.repeat(rng.integers(0, 2, (2000, 38)), 8, axis=1)[:, :300].astype(np.uint8) * 200
    page = np.full((600, 512, 3), 250, dtype=np.uint8)
    page[40:540, 100:400] = lines[:500, :, None]
    encoder = FrameEncoder()
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, 512, 600)], 0, 512, 600))
    decode_all(encoder.encode(bgra(page)), 512, 600, decoder)
    for offset in (3, 6, 9):
        page[40:540, 100:400] = lines[offset : offset + 500, :, None]
        rects = encoder.encode(bgra(page))
        assert rects[0].codec is Codec.COPY
        coded = sum(r.width * r.height for r in rects[1:])
        assert coded <= 2 * 64 * 512  # only the newly exposed strip, not the page
        canvas = decode_all(rects, 512, 600, decoder)
        assert np.array_equal(canvas, page)


def text_lines(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    """Text-like RGB rows (runs of 8 pixels, dark or light), every row different."""
    runs = rng.integers(0, 2, (rows, width // 8 + 1))
    return (np.repeat(runs, 8, axis=1)[:, :width].astype(np.uint8) * 200 + 30)[..., None].repeat(
        3, axis=2
    )


def full_update(image: np.ndarray) -> np.ndarray:
    """What the viewer shows after a whole, lossless frame of ``image``."""
    height, width = image.shape[:2]
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, width, height)], 0, width, height))
    return decode_all(FrameEncoder().encode(image, lossless=True), width, height, decoder).copy()


def test_window_dragged_sideways_is_sent_as_a_copy() -> None:
    rng = np.random.default_rng(11)
    width, height = 640, 400
    window = text_lines(rng, 200, 240)
    encoder = FrameEncoder(video=False)
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, width, height)], 0, width, height))
    x = 100
    for dx in (0, 13, 30, -7, -41, 2):
        x += dx
        rgb = np.full((height, width, 3), (59, 110, 165), dtype=np.uint8)
        rgb[120:320, x : x + 240] = window
        rects = encoder.encode(bgra(rgb))
        canvas = decode_all(rects, width, height, decoder)
        assert np.array_equal(canvas, rgb)
        assert np.array_equal(canvas, full_update(bgra(rgb)))
        if dx == 0:
            continue
        copy = rects[0]
        assert copy.codec is Codec.COPY
        assert screen_protocol.copy_source(copy) == (copy.x - dx, copy.y)
        # The copy covers the window (and any background that matches as well).
        assert copy.x <= x and copy.x + copy.width >= x + 240 and copy.height == 200
        # Besides the copy, only the uncovered strip of background is sent.
        assert sum(r.width * r.height for r in rects[1:]) <= abs(dx) * 200
        assert sum(len(r.data) for r in rects) < 200


def test_moves_decode_to_the_same_pixels_as_a_full_update() -> None:
    """Random scrolls both ways, sideways slides and edits: the viewer's picture is
    always exactly the image, as if the whole screen had been sent losslessly."""
    rng = np.random.default_rng(2024)
    width, height = 576, 448
    page = text_lines(rng, 3000, 400)
    panel = text_lines(rng, 160, 200)
    background = np.tile(text_lines(rng, 16, 64), (height // 16, width // 64, 1))
    encoder = FrameEncoder(video=False)
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, width, height)], 0, width, height))
    top, left, copies = 1000, 300, 0
    for _ in range(40):
        top += int(rng.choice([-23, -5, -1, 0, 1, 3, 17, 64]))
        left = int(np.clip(left + rng.integers(-40, 41), 0, width - 200))
        rgb = background.copy()
        rgb[20:420, 30:430] = page[top : top + 400]
        rgb[250:410, left : left + 200] = panel
        if rng.random() < 0.3:  # something else changes too
            y, x = rng.integers(0, height - 10), rng.integers(0, width - 10)
            rgb[y : y + 10, x : x + 10] = rng.integers(0, 256, 3, dtype=np.uint8)
        rects = encoder.encode(bgra(rgb))
        copies += sum(r.codec is Codec.COPY for r in rects)
        canvas = decode_all(rects, width, height, decoder)
        assert np.array_equal(canvas, rgb)
    assert copies >= 10


def test_move_is_confirmed_pixel_by_pixel() -> None:
    """Lines that look alike to the fingerprints but differ elsewhere are never copied."""
    rng = np.random.default_rng(4)
    width, height = 512, 512
    old_rgb = np.full((height, width, 3), 240, dtype=np.uint8)
    old_rgb[:, :400] = text_lines(rng, height, 400)
    new_rgb = old_rgb.copy()
    new_rgb[0:-16] = old_rgb[16:]  # scrolled by 16 lines...
    # ...except one pixel in every other line, at a column the fingerprints skip.
    assert 400 // FINGERPRINT_SAMPLES > 1
    new_rgb[::2, 1] ^= 0xFF
    old_lines = bgra(old_rgb).view(np.uint32)[..., 0][:, :400]
    new_lines = bgra(new_rgb).view(np.uint32)[..., 0][:, :400]
    # The premise: the fingerprints alone would take every line for a moved one.
    assert np.array_equal(line_fingerprints(new_lines[:-16]), line_fingerprints(old_lines[16:]))
    old, new = bgra(old_rgb), bgra(new_rgb)
    differs = old.view(np.uint32)[..., 0] != new.view(np.uint32)[..., 0]
    move = find_move(old, new, differs, tiles_any(differs))
    assert move is None or move.height <= 1
    encoder = FrameEncoder(video=False)
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, width, height)], 0, width, height))
    decode_all(encoder.encode(old), width, height, decoder)
    assert np.array_equal(decode_all(encoder.encode(new), width, height, decoder), new_rgb)


def test_window_updates_decode_like_whole_frames() -> None:
    """Coding only a window that holds every change gives the viewer the same picture
    as coding the whole screen, edges of odd-sized screens and moves included."""
    rng = np.random.default_rng(77)
    width, height = 600, 420  # not whole tiles: the last column and row are partial
    rgb = np.tile(text_lines(rng, 30, 600), (14, 1, 1))
    page = text_lines(rng, 1000, 300)
    encoder = FrameEncoder(video=False)
    decoder = FrameDecoder()
    decoder.apply(Info(1, [Monitor(0, 0, width, height)], 0, width, height))
    with pytest.raises(ValueError):
        encoder.encode_window(bgra(rgb[:64, :64]), 0, 0)
    decode_all(encoder.encode(bgra(rgb)), width, height, decoder)
    top, copies = 0, 0
    for step in range(30):
        rgb = rgb.copy()
        if step % 3 == 0:  # a scrolled text area
            top += int(rng.integers(1, 40))
            rgb[70:370, 140:440] = page[top : top + 300]
            y0, y1, x0, x1 = 70, 370, 140, 440
        else:  # a small change anywhere, often at the screen's edges
            y0 = int(rng.choice([0, int(rng.integers(0, height - 8)), height - 8]))
            x0 = int(rng.choice([0, int(rng.integers(0, width - 8)), width - 8]))
            y1, x1 = y0 + 8, x0 + 8
            rgb[y0:y1, x0:x1] = rng.integers(0, 256, 3, dtype=np.uint8)
        # The window: the change's tiles, sometimes with more around them.
        grow = int(rng.integers(0, 2)) * 64
        wy0, wx0 = max(0, y0 // 64 * 64 - grow), max(0, x0 // 64 * 64 - grow)
        wy1 = min(height, -(-y1 // 64) * 64 + grow)
        wx1 = min(width, -(-x1 // 64) * 64 + grow)
        rects = encoder.encode_window(bgra(rgb[wy0:wy1, wx0:wx1]), wx0, wy0)
        copies += sum(r.codec is Codec.COPY for r in rects)
        for r in rects:  # nothing outside the window is sent
            assert wx0 <= r.x and r.x + r.width <= wx1 and wy0 <= r.y and r.y + r.height <= wy1
        assert np.array_equal(decode_all(rects, width, height, decoder), rgb)
    assert copies >= 5
    # A whole image after windows still compares with everything the windows wrote.
    assert encoder.encode(bgra(rgb)) == []
    with pytest.raises(ValueError):
        encoder.encode_window(bgra(rgb[:64, :64]), 10, 0)  # not on a tile edge
    with pytest.raises(ValueError):
        encoder.encode_window(bgra(rgb[:64, :100]), 0, 0)  # ends inside a tile


def test_drawn_boxes_become_whole_tiles_of_the_monitor() -> None:
    left = Monitor(0, 0, 1000, 700)
    right = Monitor(1000, 0, 1920, 1080)
    assert tile_window((100, 70, 30, 20), left) == (64, 64, 128, 64)
    # Edges: the last tiles are partial; boxes are cut to the monitor.
    assert tile_window((990, 690, 50, 50), left) == (960, 640, 40, 60)
    assert tile_window((-50, -50, 60, 60), left) == (0, 0, 64, 64)
    # Desktop coordinates: the second monitor's own pixels start at its left edge.
    assert tile_window((1000, 0, 1, 1), right) == (0, 0, 64, 64)
    assert tile_window((1100, 500, 10, 10), left) is None
    assert tile_window((999, 10, 2, 2), right) == (0, 0, 64, 64)
    assert tile_window((10, 10, 0, 5), left) is None
