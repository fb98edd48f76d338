"""The screen pipeline's pure core: tile diff, tile classes, rectangles, codecs.

No capture, no network, no clock: numpy images in, :class:`protocol.screen.Rect`
lists out, so every rule here is tested without a display.

Rules:

1. The monitor is cut into 64x64 tiles. A tile is *changed* when any of its
   pixels differs from the previous capture; only changed tiles are coded.
2. Each changed tile gets a class: *solid* (one colour -> FILL), *text-like*
   (most pixels equal their left neighbour, as in text, windows and
   UI -> ZLIB, lossless) or *photo-like* (everything else -> JPEG).
3. Neighbouring changed tiles of the same class merge into rectangles (runs in a
   tile row, then equal runs in consecutive rows), so headers stay few.
4. Motion: each tile keeps a decaying count of how often it changed. A block of
   photo-like tiles that keeps changing (a video, an animation) becomes the *video
   region*: it is coded as one H.264 stream (PyAV's libx264, low-latency settings)
   instead of tiles, at a bounded bit rate. When the motion stops, the region is
   sent once more as ordinary tiles, so no video blur stays on screen.
5. A lossless request (screenshots) codes every changed tile losslessly, no video.
6. Moves: when many tiles changed, the encoder looks for a band of the changed
   area that moved: scrolled up or down (rows of the new image equal rows of the
   old one, shifted), else slid sideways (a window dragged left or right: columns,
   shifted). Lines are matched by cheap numpy fingerprints and then confirmed pixel
   by pixel. The band goes as one COPY rectangle (the viewer moves pixels it already
   has) and only what the copy does not explain is coded, as VNC's CopyRect does.
7. Cost: one pixel comparison of the whole image per frame gives the mask of
   pixels that differ; the tiles, the move search and the cropping of each coded
   rectangle all read that mask instead of comparing images again.
"""

from __future__ import annotations

import itertools
import math
import random
import struct
import zlib
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import simplejpeg

from protocol.screen import Codec, Rect

TILE = 64
#: A tile is text-like when at least this share of pixels equals its left neighbour.
TEXT_LIKE_SHARE = 0.5
#: Motion score: each change adds 1, and the score decays with this time constant,
#: so it approximates how many times a second the tile changes, whatever the capture
#: rate (a 30 fps video scores about 30 whether captured at 30 or 60 Hz).
MOTION_WINDOW_S = 1.0
#: A tile is "moving" when it changes at least this often per second.
MOVING_SCORE = 10.0
#: Capture interval assumed when the caller gives no time.
DEFAULT_INTERVAL_S = 1 / 30
#: Smallest video region, in tiles; smaller motion is cheaper as tiles.
MIN_VIDEO_TILES = 6
#: Seconds the video region must stay still before it is dropped.
VIDEO_QUIET_S = 0.7
#: Bit rate cap of the video region, bits per second.
VIDEO_MAX_BITRATE = 1_500_000
ZLIB_LEVEL = 1

_stream_ids = itertools.count(1)


class TileClass:
    SOLID = 0
    TEXT = 1
    PHOTO = 2


@dataclass(frozen=True)
class TileRect:
    """A rectangle in tile units (column, row, columns, rows) of one class."""

    col: int
    row: int
    cols: int
    rows: int
    kind: int


def grid(height: int, width: int) -> tuple[int, int]:
    """Tile rows and columns covering an image (the last ones may be partial)."""
    return -(-height // TILE), -(-width // TILE)


def _pad_to_tiles(mask: np.ndarray) -> np.ndarray:
    rows, cols = grid(*mask.shape)
    padded = np.zeros((rows * TILE, cols * TILE), dtype=mask.dtype)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded


def _per_tile_sum(mask: np.ndarray) -> np.ndarray:
    rows, cols = grid(*mask.shape)
    padded = _pad_to_tiles(mask)
    sums: np.ndarray = padded.reshape(rows, TILE, cols, TILE).sum(axis=(1, 3), dtype=np.int32)
    return sums


def as_pixels(image: np.ndarray) -> np.ndarray:
    """A BGRA (H, W, 4) uint8 image viewed as (H, W) uint32 pixels (no copy)."""
    return image.view(np.uint32).reshape(image.shape[0], image.shape[1])


def tiles_any(mask: np.ndarray) -> np.ndarray:
    """Boolean (rows, cols): which tiles of a boolean (H, W) mask have a set pixel."""
    height, width = mask.shape
    full_h, full_w = height // TILE * TILE, width // TILE * TILE
    by_row = np.asarray(mask[:full_h].reshape(height // TILE, TILE, width).any(axis=1))
    if full_h < height:
        by_row = np.vstack([by_row, np.asarray(mask[full_h:].any(axis=0, keepdims=True))])
    grouped = by_row[:, :full_w].reshape(by_row.shape[0], width // TILE, TILE)
    tiles = np.asarray(grouped.any(axis=2))
    if full_w < width:
        tiles = np.hstack([tiles, np.asarray(by_row[:, full_w:].any(axis=1, keepdims=True))])
    return tiles


def changed_tiles(
    previous: np.ndarray, current: np.ndarray, within: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Boolean (rows, cols): which tiles differ between two same-sized BGRA images.

    ``within`` (row, col, rows, cols) limits the comparison to those tiles.
    """
    a, b = as_pixels(previous), as_pixels(current)
    if within is None:
        return tiles_any(a != b)
    rows, cols = grid(*a.shape)
    r0, c0, nr, nc = within
    ys, xs = slice(r0 * TILE, (r0 + nr) * TILE), slice(c0 * TILE, (c0 + nc) * TILE)
    result = np.zeros((rows, cols), dtype=bool)
    result[r0 : r0 + nr, c0 : c0 + nc] = tiles_any(a[ys, xs] != b[ys, xs])
    return result


def tile_pixel_counts(height: int, width: int) -> np.ndarray:
    """Pixels in each tile (edge tiles are smaller)."""
    return _per_tile_sum(np.ones((height, width), dtype=np.uint8))


def _classify_one(tile: np.ndarray) -> int:
    same_left = int(np.count_nonzero(tile[:, 1:] == tile[:, :-1]))
    share = same_left / max(tile.size, 1)
    if share > 0.97 and (tile == tile[0, 0]).all():
        return TileClass.SOLID
    return TileClass.TEXT if share >= TEXT_LIKE_SHARE else TileClass.PHOTO


def classify_tiles(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """TileClass of the tiles of a BGRA image (of those set in ``mask``, if given).

    Returns an int8 (rows, cols) array; tiles outside ``mask`` are TEXT.
    """
    pixels = as_pixels(image)
    height, width = pixels.shape
    rows, cols = grid(height, width)
    if mask is not None and mask.any() and mask.sum() * 4 >= mask.size:
        # Classify only the tiles' bounding box (scrolling areas, moving windows).
        r0, c0, nr, nc = _bounding_box(mask)
        if nr < rows or nc < cols:
            kinds = np.full((rows, cols), TileClass.TEXT, dtype=np.int8)
            part = image[r0 * TILE : (r0 + nr) * TILE, c0 * TILE : (c0 + nc) * TILE]
            kinds[r0 : r0 + nr, c0 : c0 + nc] = classify_tiles(part)
            return kinds
    if mask is not None and mask.sum() * 4 < mask.size:
        kinds = np.full((rows, cols), TileClass.TEXT, dtype=np.int8)
        for r, c in zip(*np.nonzero(mask), strict=True):
            y0, x0 = int(r) * TILE, int(c) * TILE
            kinds[r, c] = _classify_one(pixels[y0 : y0 + TILE, x0 : x0 + TILE])
        return kinds
    same_left = np.zeros((height, width), dtype=np.uint8)
    same_left[:, 1:] = pixels[:, 1:] == pixels[:, :-1]
    # Pixels compared per tile: a tile's first column has no left neighbour to match.
    left_share = _per_tile_sum(same_left) / tile_pixel_counts(height, width)
    kinds = np.where(left_share >= TEXT_LIKE_SHARE, TileClass.TEXT, TileClass.PHOTO).astype(np.int8)
    for r, c in zip(*np.nonzero(left_share > 0.97), strict=True):
        y0, x0 = int(r) * TILE, int(c) * TILE
        tile = pixels[y0 : y0 + TILE, x0 : x0 + TILE]
        if (tile == tile[0, 0]).all():
            kinds[r, c] = TileClass.SOLID
    return kinds


def merge_tiles(mask: np.ndarray, kinds: np.ndarray) -> list[TileRect]:
    """Merge set tiles of ``mask`` into rectangles of one class each (rule 3)."""
    rows, cols = mask.shape
    runs: list[TileRect] = []
    for r in range(rows):
        c = 0
        row_mask = mask[r]
        while c < cols:
            if not row_mask[c]:
                c += 1
                continue
            kind = int(kinds[r, c])
            start = c
            while c < cols and row_mask[c] and int(kinds[r, c]) == kind and kind != TileClass.SOLID:
                c += 1
            if c == start:  # solid tiles stay single (each has its own colour)
                c += 1
            runs.append(TileRect(start, r, c - start, 1, kind))
    # Stack equal runs of consecutive rows.
    merged: list[TileRect] = []
    open_runs: dict[tuple[int, int, int], TileRect] = {}
    for run in runs:
        key = (run.col, run.cols, run.kind)
        above = open_runs.get(key)
        if above is not None and above.row + above.rows == run.row and run.kind != TileClass.SOLID:
            open_runs[key] = TileRect(above.col, above.row, above.cols, above.rows + 1, run.kind)
        else:
            if above is not None:
                merged.append(above)
            open_runs[key] = run
    merged.extend(open_runs.values())
    merged.sort(key=lambda t: (t.row, t.col))
    return merged


# Moves (scrolling, dragged windows) ---------------------------------------------------

#: A moved band must be at least this many lines long (along the move) to be a copy.
MIN_COPY_ROWS = 48
#: Look for a move only when at least this many tiles changed.
MIN_COPY_TILES = 6
#: Lines are told apart by a weighted sum of about this many of their pixels.
FINGERPRINT_SAMPLES = 128
#: Fixed odd weights for the fingerprints (any fixed values work; odd ones mix well).
#: From Python's random, not numpy.random: the one-file agent leaves numpy.random out.
_WEIGHT_SOURCE = random.Random(0x5C4011)
_WEIGHTS = np.array(
    [_WEIGHT_SOURCE.getrandbits(64) | 1 for _ in range(2 * FINGERPRINT_SAMPLES)], dtype=np.uint64
)


@dataclass(frozen=True)
class Move:
    """Pixels x..x+width, y..y+height of the new image equal those of the previous image
    at (x + dx, y + dy): the viewer can copy them instead of receiving them."""

    x: int
    y: int
    width: int
    height: int
    dx: int
    dy: int

    def rect(self) -> Rect:
        source = struct.pack(">II", self.x + self.dx, self.y + self.dy)
        return Rect(self.x, self.y, self.width, self.height, Codec.COPY, source)


def line_fingerprints(lines: np.ndarray) -> np.ndarray:
    """One uint64 per line (row) of a 2-D uint32 array; equal lines, equal values.

    A weighted sum (wrapping) of an evenly spread sample of each line's pixels: cheap,
    and different lines rarely collide. Callers confirm any match pixel by pixel.
    """
    step = max(1, lines.shape[1] // FINGERPRINT_SAMPLES)
    sample = lines[:, ::step]
    weighted = sample * _WEIGHTS[: sample.shape[1]]
    sums: np.ndarray = weighted.sum(axis=1, dtype=np.uint64)
    return sums


def _run_starts(prints: np.ndarray) -> np.ndarray:
    """Indices of the lines that differ from the line before them (and of the first)."""
    starts = np.ones(len(prints), dtype=bool)
    starts[1:] = prints[1:] != prints[:-1]
    found: np.ndarray = np.flatnonzero(starts)
    return found


def _find_shift(old: np.ndarray, new: np.ndarray) -> tuple[int, int, int] | None:
    """The longest run of lines of ``new`` that are lines of ``old`` shifted by one offset.

    ``old`` and ``new`` are same-shaped 2-D uint32 arrays whose rows are the lines
    (pass transposed views to look for sideways moves). Returns (start, length, d):
    new[start : start + length] equals old[start + d : start + d + length] exactly,
    with d != 0 and length >= MIN_COPY_ROWS; or None.
    """
    n = old.shape[0]
    if n < 2 * MIN_COPY_ROWS:
        return None
    old_prints, new_prints = line_fingerprints(old), line_fingerprints(new)
    # Vote: each line of new that is a unique line of old says how far it moved. Only
    # the first of a run of equal lines takes part (blank lines between lines of text,
    # the equal columns of a flat button), so repeats do not hide everything else.
    old_at = _run_starts(old_prints)
    values, where, counts = np.unique(old_prints[old_at], return_index=True, return_counts=True)
    values, where = values[counts == 1], old_at[where[counts == 1]]
    if len(values) == 0:
        return None
    new_at = _run_starts(new_prints)
    slot = np.minimum(np.searchsorted(values, new_prints[new_at]), len(values) - 1)
    found = values[slot] == new_prints[new_at]
    shifts = where[slot[found]] - new_at[found]
    shifts = shifts[shifts != 0]
    if len(shifts) < 8:
        return None
    votes = np.bincount(shifts + n)
    d = int(votes.argmax()) - n
    if votes[d + n] < 8:
        return None
    # The longest run of lines that match exactly at that offset.
    lo, hi = max(0, -d), min(n, n - d)
    same = (new[lo:hi] == old[lo + d : hi + d]).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], same.view(np.int8), [0]))))
    if len(edges) == 0:
        return None
    starts, ends = edges[::2], edges[1::2]
    best = int((ends - starts).argmax())
    length = int(ends[best] - starts[best])
    if length < MIN_COPY_ROWS:
        return None
    return lo + int(starts[best]), length, d


def find_move(
    previous: np.ndarray, current: np.ndarray, differs: np.ndarray, changed: np.ndarray
) -> Move | None:
    """Find a band of ``current`` that is a band of ``previous`` moved up, down or sideways.

    ``differs`` is the (H, W) mask of pixels that differ between the two images and
    ``changed`` its (rows, cols) tile summary. Scrolling (a vertical move) is looked for
    first, then a window dragged sideways (a horizontal move); diagonal moves are not
    detected (they are coded as tiles). Every pixel of the band returned matches.
    """
    height, width = current.shape[:2]
    r0, c0, nr, nc = _bounding_box(changed)
    y0, y1 = r0 * TILE, min((r0 + nr) * TILE, height)
    x0, x1 = c0 * TILE, min((c0 + nc) * TILE, width)
    box = differs[y0:y1, x0:x1]
    columns = np.flatnonzero(box.any(axis=0))
    rows = np.flatnonzero(box.any(axis=1))
    if len(columns) == 0:
        return None
    old, new = as_pixels(previous), as_pixels(current)
    # Scrolling: the lines are rows, over the columns that changed.
    cx0, cx1 = x0 + int(columns[0]), x0 + int(columns[-1]) + 1
    shift = _find_shift(old[y0:y1, cx0:cx1], new[y0:y1, cx0:cx1])
    if shift is not None:
        start, length, d = shift
        return Move(cx0, y0 + start, cx1 - cx0, length, 0, d)
    # A window dragged sideways: the lines are columns, over the rows that changed.
    ry0, ry1 = y0 + int(rows[0]), y0 + int(rows[-1]) + 1
    shift = _find_shift(old[ry0:ry1, x0:x1].T, new[ry0:ry1, x0:x1].T)
    if shift is not None:
        start, length, d = shift
        return Move(x0 + start, ry0, length, ry1 - ry0, d, 0)
    return None


# Codecs -------------------------------------------------------------------------------


def encode_zlib(bgra: np.ndarray) -> bytes:
    """Lossless: zlib of the R, G, B bytes, row after row."""
    rgb = np.ascontiguousarray(bgra[:, :, 2::-1])
    return zlib.compress(rgb.tobytes(), ZLIB_LEVEL)


def encode_jpeg(bgra: np.ndarray, quality: int) -> bytes:
    data: bytes = simplejpeg.encode_jpeg(
        np.ascontiguousarray(bgra), quality=quality, colorspace="BGRA", colorsubsampling="420"
    )
    return data


class VideoEncoder:
    """One H.264 stream for one region (PyAV's libx264, tuned for latency)."""

    def __init__(self, width: int, height: int, fps: int = 30) -> None:
        import av

        self.width = width
        self.height = height
        self.stream_id = next(_stream_ids)
        # H.264 with 4:2:0 needs even sides; the edge pixel is repeated to pad.
        self._coded = (width + width % 2, height + height % 2)
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height = self._coded
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, 1000)
        context.framerate = Fraction(fps, 1)
        context.gop_size = 600
        context.max_b_frames = 0
        kbps = VIDEO_MAX_BITRATE // 1000
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "crf": "27",
            "maxrate": f"{kbps}k",
            "bufsize": f"{kbps // 2}k",
            "threads": "1",
        }
        self._context = context
        self._av = av
        self._pts = 0

    def encode(self, bgra: np.ndarray) -> bytes:
        """Encode one picture of the region; return the access unit (Annex B bytes)."""
        image = np.ascontiguousarray(bgra)
        if image.shape[1] != self._coded[0] or image.shape[0] != self._coded[1]:
            pad_y = self._coded[1] - image.shape[0]
            pad_x = self._coded[0] - image.shape[1]
            image = np.pad(image, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(image, format="bgra")
        frame.pts = self._pts
        self._pts += 33
        packets = self._context.encode(frame)
        return b"".join(bytes(p) for p in packets)

    def close(self) -> None:
        try:
            self._context.encode(None)
        except Exception:  # flushing a closing encoder: nothing left to report
            pass


# The frame encoder --------------------------------------------------------------------


@dataclass
class EncodeStats:
    tiles_changed: int = 0
    rects: int = 0
    bytes: int = 0
    video: bool = False


def video_available() -> bool:
    """Whether PyAV (the H.264 video mode) is installed; tiles work without it."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


class FrameEncoder:
    """Turns successive captures of one monitor into the rectangles of each frame.

    ``encode`` returns [] when nothing changed. Keeps the previous image, the
    motion scores and the video region between calls; a size change resets all.
    """

    def __init__(self, *, video: bool = True) -> None:
        # The one-file download leaves PyAV out to stay small: tiles only there.
        self.video_enabled = video and video_available()
        self._previous: np.ndarray | None = None
        self._motion: np.ndarray | None = None
        self._video: VideoEncoder | None = None
        self._video_tiles: tuple[int, int, int, int] | None = None  # row, col, rows, cols
        self._quiet = 0.0
        self._now = 0.0
        self._dt = DEFAULT_INTERVAL_S
        self._pending_region: tuple[int, int, int, int] | None = None
        self._pending_count = 0
        self._video_fresh = False
        self._kinds: np.ndarray | None = None
        self._refreshing = False
        self.last = EncodeStats()

    def reset(self) -> None:
        """Forget the previous image: the next frame is whole."""
        self._previous = None
        self._stop_video()

    @property
    def has_previous(self) -> bool:
        """Whether a whole image was coded (so :meth:`encode_window` may follow)."""
        return self._previous is not None

    def encode(
        self,
        image: np.ndarray,
        *,
        quality: int = 80,
        lossless: bool = False,
        now: float | None = None,
    ) -> list[Rect]:
        """Rectangles that bring the viewer from the previous image to ``image``.

        ``now`` (seconds, any origin) is when ``image`` was captured; without it
        captures are taken to be DEFAULT_INTERVAL_S apart. The encoder keeps
        ``image`` as its previous image without copying it, and later windows
        (:meth:`encode_window`) are written into it: pass a fresh array each time.
        """
        return self._encode(image, None, quality, lossless, now)

    def encode_window(
        self,
        pixels: np.ndarray,
        x: int,
        y: int,
        *,
        quality: int = 80,
        lossless: bool = False,
        now: float | None = None,
    ) -> list[Rect]:
        """Like :meth:`encode` when only one window of the screen can have changed.

        ``pixels`` is the window's new content, its top left at (``x``, ``y``), both
        multiples of TILE; its right and bottom edges are tile edges or the screen's.
        Everything outside the window is taken to be unchanged. Needs a whole image
        first (:attr:`has_previous`); raises ValueError otherwise.
        """
        if self._previous is None:
            raise ValueError("a window can only follow a whole image")
        height, width = self._previous.shape[:2]
        h, w = pixels.shape[:2]
        if (
            x % TILE
            or y % TILE
            or not (0 < w and x + w <= width and 0 < h and y + h <= height)
            or (w % TILE and x + w != width)
            or (h % TILE and y + h != height)
        ):
            raise ValueError(f"window {w}x{h} at ({x}, {y}) is not made of whole tiles")
        return self._encode(pixels, (y, x), quality, lossless, now)

    # Private methods -----------------------------------------------------------------

    def _encode(
        self,
        current: np.ndarray,
        origin: tuple[int, int] | None,
        quality: int,
        lossless: bool,
        now: float | None,
    ) -> list[Rect]:
        """Code ``current``: the whole image (``origin`` None) or the window at origin."""
        if now is None:
            now = self._now + DEFAULT_INTERVAL_S
        self._dt = min(max(now - self._now, 0.0), 1.0)
        self._now = now
        oy, ox = origin or (0, 0)
        first = origin is None and (self._previous is None or self._previous.shape != current.shape)
        # Pixels of the window that differ from what the viewer shows (None: the
        # viewer shows nothing yet), the tiles they touch, and those that moved.
        differs: np.ndarray | None = None
        copy: Rect | None = None
        if first:
            rows, cols = grid(*current.shape[:2])
            changed = np.ones((rows, cols), dtype=bool)
            changed_motion = changed
            self._motion = np.zeros((rows, cols), dtype=np.float32)
            self._stop_video()
            self._previous = current
        else:
            assert self._previous is not None
            h, w = current.shape[:2]
            previous = self._previous[oy : oy + h, ox : ox + w]
            differs = as_pixels(previous) != as_pixels(current)
            local = tiles_any(differs)
            local_motion = local
            if not lossless and self._video is None and local.sum() >= MIN_COPY_TILES:
                move = find_move(previous, current, differs, local)
                if move is not None:
                    # After the copy the viewer shows the new pixels in the band: only
                    # what lies outside it still differs (what scrolled or slid in).
                    copy = replace(move, x=move.x + ox, y=move.y + oy).rect()
                    differs[move.y : move.y + move.height, move.x : move.x + move.width] = False
                    local = _tiles_any_within(differs, _bounding_box(local))
            if origin is None:
                changed, changed_motion = local, local_motion
                self._previous = current
            else:
                if not self._previous.flags.writeable:
                    self._previous = self._previous.copy()
                    previous = self._previous[oy : oy + h, ox : ox + w]
                previous[...] = current
                changed = self._whole_grid(local, oy, ox)
                changed_motion = self._whole_grid(local_motion, oy, ox)
        image = self._previous  # the whole current picture
        assert self._motion is not None
        self._motion *= math.exp(-self._dt / MOTION_WINDOW_S)
        if not first:
            self._motion += changed_motion
        self.last = EncodeStats(tiles_changed=int(changed.sum()))
        if not changed.any() and self._video is None:
            return [copy] if copy is not None else []

        # Classes of unchanged tiles are kept from when they last changed (a scrolled
        # area keeps its class), so only changed tiles are looked at.
        if self._kinds is None or first or self._kinds.shape != changed.shape:
            self._kinds = classify_tiles(image)
        else:
            fresh = classify_tiles(image, changed)
            self._kinds[changed] = fresh[changed]
        kinds = self._kinds.copy()
        if lossless:
            kinds[kinds == TileClass.PHOTO] = TileClass.TEXT
        rects: list[Rect] = [copy] if copy is not None else []
        self._refreshing = False
        if self.video_enabled and not lossless:
            changed = self._video_step(image, changed, kinds, rects)
        elif self._video is not None:
            self._stop_video()
        if self._refreshing:
            differs = None  # the viewer shows video pixels there, not ``previous``
        for tile_rect in merge_tiles(changed, kinds):
            rect = self._code(image, tile_rect, quality, differs, oy, ox)
            if rect is not None:
                rects.append(rect)
        self.last.rects = len(rects)
        self.last.bytes = sum(len(r.data) for r in rects)
        return rects

    def _whole_grid(self, local: np.ndarray, oy: int, ox: int) -> np.ndarray:
        """A window's tile mask placed in the whole screen's tile grid."""
        assert self._previous is not None
        whole = np.zeros(grid(*self._previous.shape[:2]), dtype=bool)
        r0, c0 = oy // TILE, ox // TILE
        whole[r0 : r0 + local.shape[0], c0 : c0 + local.shape[1]] = local
        return whole

    def _code(
        self,
        image: np.ndarray,
        t: TileRect,
        quality: int,
        differs: np.ndarray | None,
        oy: int = 0,
        ox: int = 0,
    ) -> Rect | None:
        """Code one rectangle of tiles; ``differs`` is the mask of the window at (ox, oy)."""
        height, width = image.shape[:2]
        x, y = t.col * TILE, t.row * TILE
        w = min(t.cols * TILE, width - x)
        h = min(t.rows * TILE, height - y)
        if differs is not None:
            # Send only the part that differs from what the viewer has (a typed
            # character is a few pixels, not a 64x64 tile).
            part = differs[y - oy : y - oy + h, x - ox : x - ox + w]
            ys = np.nonzero(part.any(axis=1))[0]
            if len(ys) == 0:
                return None
            xs = np.nonzero(part.any(axis=0))[0]
            x, y = x + int(xs[0]), y + int(ys[0])
            w, h = int(xs[-1] - xs[0]) + 1, int(ys[-1] - ys[0]) + 1
        region = image[y : y + h, x : x + w]
        if t.kind == TileClass.SOLID:
            b, g, r = (int(v) for v in region[0, 0, :3])
            return Rect(x, y, w, h, Codec.FILL, bytes((r, g, b)))
        if t.kind == TileClass.TEXT:
            return Rect(x, y, w, h, Codec.ZLIB, encode_zlib(region))
        return Rect(x, y, w, h, Codec.JPEG, encode_jpeg(region, quality))

    def _video_step(
        self, image: np.ndarray, changed: np.ndarray, kinds: np.ndarray, rects: list[Rect]
    ) -> np.ndarray:
        """Run the video region (rule 4); return the tiles still to code as tiles."""
        assert self._motion is not None
        moving = self._motion >= MOVING_SCORE
        moving_photo = moving & (kinds == TileClass.PHOTO)
        region = None
        if moving_photo.sum() >= MIN_VIDEO_TILES:
            # Moving tiles at the edge of a video are part photo, part still
            # background: they belong to the region too.
            region = _grow(_bounding_box(moving_photo), moving)
        if self._video is None:
            # Start only once the same region has been moving for a few frames.
            if region is not None and region == self._pending_region:
                self._pending_count += 1
            else:
                self._pending_region, self._pending_count = region, 0
            if region is not None and self._pending_count >= 3:
                self._start_video(image, region)
        else:
            assert self._video_tiles is not None
            if (
                region is not None
                and region != self._video_tiles
                and _contains(region, self._video_tiles)
            ):
                # The moving area grew: restart the stream on the bigger region.
                self._stop_video()
                self._start_video(image, region)
            r0, c0, nr, nc = self._video_tiles
            inside_changed = changed[r0 : r0 + nr, c0 : c0 + nc].any()
            self._quiet = 0.0 if inside_changed else self._quiet + self._dt
            if self._quiet >= VIDEO_QUIET_S:
                r0, c0, nr, nc = self._video_tiles
                self._stop_video()
                refresh = np.zeros_like(changed)
                refresh[r0 : r0 + nr, c0 : c0 + nc] = True
                # The region is coded afresh as tiles, each in its own class.
                kinds[refresh] = classify_tiles(image, refresh)[refresh]
                self._refreshing = True
                refreshed: np.ndarray = changed | refresh
                return refreshed
        if self._video is None:
            return changed
        assert self._video_tiles is not None
        r0, c0, nr, nc = self._video_tiles
        if changed[r0 : r0 + nr, c0 : c0 + nc].any() or self._video_fresh:
            self._video_fresh = False
            height, width = image.shape[:2]
            x, y = c0 * TILE, r0 * TILE
            w, h = min(nc * TILE, width - x), min(nr * TILE, height - y)
            data = self._video.encode(image[y : y + h, x : x + w])
            if data:
                rects.append(Rect(x, y, w, h, Codec.H264, data, self._video.stream_id))
                self.last.video = True
        changed = changed.copy()
        changed[r0 : r0 + nr, c0 : c0 + nc] = False
        return changed

    def _start_video(self, image: np.ndarray, region: tuple[int, int, int, int]) -> None:
        height, width = image.shape[:2]
        r0, c0, nr, nc = region
        w, h = min(nc * TILE, width - c0 * TILE), min(nr * TILE, height - r0 * TILE)
        self._video = VideoEncoder(w, h)
        self._video_tiles = region
        self._video_fresh = True
        self._quiet = 0.0
        self._now = 0.0
        self._dt = DEFAULT_INTERVAL_S
        self._pending_region, self._pending_count = None, 0

    def _stop_video(self) -> None:
        if self._video is not None:
            self._video.close()
        self._video = None
        self._video_tiles = None
        self._video_fresh = False


def _tiles_any_within(differs: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Like :func:`tiles_any`, looking only at the tiles of ``box`` (row, col, rows, cols)."""
    rows, cols = grid(*differs.shape)
    r0, c0, nr, nc = box
    result = np.zeros((rows, cols), dtype=bool)
    part = differs[r0 * TILE : (r0 + nr) * TILE, c0 * TILE : (c0 + nc) * TILE]
    result[r0 : r0 + nr, c0 : c0 + nc] = tiles_any(part)
    return result


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _grow(box: tuple[int, int, int, int], moving: np.ndarray) -> tuple[int, int, int, int]:
    """Extend ``box`` by whole tile rows and columns of moving tiles touching it."""
    r0, c0, nr, nc = box
    rows, cols = moving.shape
    for _ in range(4):
        grown = False
        if r0 > 0 and moving[r0 - 1, c0 : c0 + nc].any():
            r0, nr, grown = r0 - 1, nr + 1, True
        if r0 + nr < rows and moving[r0 + nr, c0 : c0 + nc].any():
            nr, grown = nr + 1, True
        if c0 > 0 and moving[r0 : r0 + nr, c0 - 1].any():
            c0, nc, grown = c0 - 1, nc + 1, True
        if c0 + nc < cols and moving[r0 : r0 + nr, c0 + nc].any():
            nc, grown = nc + 1, True
        if not grown:
            break
    return r0, c0, nr, nc


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    r0, c0, nr, nc = outer
    i0, j0, ni, nj = inner
    return r0 <= i0 and c0 <= j0 and i0 + ni <= r0 + nr and j0 + nj <= c0 + nc
