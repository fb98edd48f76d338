"""Input events of the ``input`` channel (and of one-shot ``control`` requests).

Pure: plain values in and out. The technician sends pointer and keyboard events;
the agent checks each one here before it touches the customer's desktop.

On the ``input`` channel a message is the msgpack array
``[stream, monitor, [event, ...]]`` where ``stream`` is the id the technician chose
in its ``control``/``stream`` request (events of any other stream are dropped) and
``monitor`` the monitor whose pixels the coordinates are in. Each event is an array whose
first item is an :class:`InputKind`:

=========  ================================  =====================================
kind       fields                            meaning
=========  ================================  =====================================
MOVE       x, y                              pointer to (x, y)
BUTTON     x, y, button, down                press (down) or release a button there
CLICK      x, y, button, count               move there and click ``count`` times
WHEEL      x, y, dx, dy                      scroll by whole steps (dy > 0 is down)
KEY        name, down                        press or release one key
COMBO      [name, ...]                       press in order, release in reverse
TEXT       text                              type text, whatever the keyboard layout
=========  ================================  =====================================

Coordinates are pixels of the monitor the stream is about (0 = the whole desktop);
the agent maps them to its input system's coordinates. Key names are single
characters or names from :data:`SPECIAL_KEYS` (with a few aliases); anything else
is refused, so a hostile technician client cannot reach unexpected key codes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .errors import MalformedMessage
from .messages import pack, unpack

MAX_EVENTS_PER_MESSAGE = 512
MAX_TEXT = 4096
MAX_COORD = 1 << 17
MAX_WHEEL = 100
MAX_INPUT_MESSAGE = 256 * 1024


class InputKind(enum.IntEnum):
    MOVE = 1
    BUTTON = 2
    CLICK = 3
    WHEEL = 4
    KEY = 5
    COMBO = 6
    TEXT = 7


class Button(enum.StrEnum):
    LEFT = "left"
    RIGHT = "right"
    MIDDLE = "middle"


#: Named keys (pynput's names); single characters are allowed besides these.
SPECIAL_KEYS: frozenset[str] = frozenset(
    [
        "alt",
        "alt_l",
        "alt_r",
        "alt_gr",
        "backspace",
        "caps_lock",
        "cmd",
        "cmd_l",
        "cmd_r",
        "ctrl",
        "ctrl_l",
        "ctrl_r",
        "delete",
        "down",
        "end",
        "enter",
        "esc",
        "home",
        "insert",
        "left",
        "menu",
        "num_lock",
        "page_down",
        "page_up",
        "pause",
        "print_screen",
        "right",
        "scroll_lock",
        "shift",
        "shift_l",
        "shift_r",
        "space",
        "tab",
        "up",
        *(f"f{n}" for n in range(1, 21)),
    ]
)

KEY_ALIASES = {
    "control": "ctrl",
    "ctl": "ctrl",
    "return": "enter",
    "escape": "esc",
    "super": "cmd",
    "win": "cmd",
    "windows": "cmd",
    "meta": "cmd",
    "command": "cmd",
    "del": "delete",
    "pgup": "page_up",
    "pageup": "page_up",
    "pgdn": "page_down",
    "pagedown": "page_down",
    "ins": "insert",
    "bksp": "backspace",
    "altgr": "alt_gr",
    "prtsc": "print_screen",
    "plus": "+",
}


@dataclass(frozen=True)
class Move:
    x: int
    y: int


@dataclass(frozen=True)
class ButtonEvent:
    x: int
    y: int
    button: Button
    down: bool


@dataclass(frozen=True)
class Click:
    x: int
    y: int
    button: Button = Button.LEFT
    count: int = 1


@dataclass(frozen=True)
class Wheel:
    x: int
    y: int
    dx: int
    dy: int


@dataclass(frozen=True)
class Key:
    name: str
    down: bool


@dataclass(frozen=True)
class Combo:
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Text:
    text: str


InputEvent = Move | ButtonEvent | Click | Wheel | Key | Combo | Text


def normalize_key(name: str) -> str:
    """The canonical name of a key; raise ValueError with a helpful sentence if unknown."""
    if not isinstance(name, str) or not name:
        raise ValueError("a key name must be a non-empty string")
    if len(name) == 1:
        return name
    lowered = name.lower()
    lowered = KEY_ALIASES.get(lowered, lowered)
    if len(lowered) == 1 or lowered in SPECIAL_KEYS:
        return lowered
    raise ValueError(
        f"unknown key {name!r}; use a single character or one of: "
        "ctrl, alt, shift, cmd, enter, esc, tab, space, backspace, delete, "
        "up, down, left, right, home, end, page_up, page_down, f1..f20"
    )


def parse_combo(text: str) -> Combo:
    """``"ctrl+alt+t"`` -> Combo(("ctrl", "alt", "t")). ``+`` alone is the plus key."""
    if not text:
        raise ValueError("empty key combination; write it like ctrl+alt+t")
    if text == "+":
        return Combo(("+",))
    parts = text.split("+")
    if text.endswith("++"):  # "ctrl++" means ctrl and the plus key
        parts = [*text[:-2].split("+"), "+"]
    if any(not p for p in parts):
        raise ValueError(f"cannot read {text!r}; write it like ctrl+alt+t")
    if len(parts) > 8:
        raise ValueError("at most 8 keys at once")
    return Combo(tuple(normalize_key(p) for p in parts))


# Wire ---------------------------------------------------------------------------------


def event_to_wire(event: InputEvent) -> list[Any]:
    if isinstance(event, Move):
        return [InputKind.MOVE, event.x, event.y]
    if isinstance(event, ButtonEvent):
        return [InputKind.BUTTON, event.x, event.y, str(event.button), event.down]
    if isinstance(event, Click):
        return [InputKind.CLICK, event.x, event.y, str(event.button), event.count]
    if isinstance(event, Wheel):
        return [InputKind.WHEEL, event.x, event.y, event.dx, event.dy]
    if isinstance(event, Key):
        return [InputKind.KEY, event.name, event.down]
    if isinstance(event, Combo):
        return [InputKind.COMBO, list(event.keys)]
    return [InputKind.TEXT, event.text]


def _want(condition: bool, problem: str) -> None:
    if not condition:
        raise MalformedMessage(problem)


def _coord(value: Any) -> int:
    _want(type(value) is int and -MAX_COORD <= value <= MAX_COORD, "bad input coordinate")
    return int(value)


def _button(value: Any) -> Button:
    try:
        return Button(value)
    except ValueError:
        raise MalformedMessage(f"unknown mouse button {value!r}") from None


def _key(value: Any) -> str:
    try:
        return normalize_key(value)
    except ValueError as exc:
        raise MalformedMessage(str(exc)) from None


def event_from_wire(value: Any) -> InputEvent:
    """Check and decode one event; anything unexpected is MalformedMessage."""
    _want(isinstance(value, list) and bool(value) and type(value[0]) is int, "bad input event")
    try:
        kind = InputKind(value[0])
    except ValueError:
        raise MalformedMessage(f"unknown input event kind {value[0]!r}") from None
    args = value[1:]
    sizes = {
        InputKind.MOVE: 2,
        InputKind.BUTTON: 4,
        InputKind.CLICK: 4,
        InputKind.WHEEL: 4,
        InputKind.KEY: 2,
        InputKind.COMBO: 1,
        InputKind.TEXT: 1,
    }
    _want(len(args) == sizes[kind], f"{kind.name} event has the wrong number of fields")
    if kind is InputKind.MOVE:
        return Move(_coord(args[0]), _coord(args[1]))
    if kind is InputKind.BUTTON:
        _want(type(args[3]) is bool, "BUTTON down must be a boolean")
        return ButtonEvent(_coord(args[0]), _coord(args[1]), _button(args[2]), args[3])
    if kind is InputKind.CLICK:
        _want(type(args[3]) is int and 1 <= args[3] <= 3, "CLICK count must be 1, 2 or 3")
        return Click(_coord(args[0]), _coord(args[1]), _button(args[2]), args[3])
    if kind is InputKind.WHEEL:
        for step in args[2:]:
            _want(type(step) is int and abs(step) <= MAX_WHEEL, "WHEEL steps out of range")
        return Wheel(_coord(args[0]), _coord(args[1]), args[2], args[3])
    if kind is InputKind.KEY:
        _want(type(args[1]) is bool, "KEY down must be a boolean")
        return Key(_key(args[0]), args[1])
    if kind is InputKind.COMBO:
        keys = args[0]
        _want(isinstance(keys, list) and 0 < len(keys) <= 8, "COMBO needs 1 to 8 keys")
        return Combo(tuple(_key(k) for k in keys))
    text = args[0]
    _want(isinstance(text, str) and len(text) <= MAX_TEXT, "TEXT must be a short string")
    return Text(text)


def events_to_wire(events: list[InputEvent]) -> list[list[Any]]:
    return [event_to_wire(e) for e in events]


def events_from_wire(value: Any) -> list[InputEvent]:
    _want(isinstance(value, list), "input events must be a list")
    _want(len(value) <= MAX_EVENTS_PER_MESSAGE, "too many input events in one message")
    return [event_from_wire(v) for v in value]


def serialize(stream: int, monitor: int, events: list[InputEvent]) -> bytes:
    """One ``input`` channel message."""
    return pack([stream, monitor, events_to_wire(events)])


def parse(data: bytes) -> tuple[int, int, list[InputEvent]]:
    """``(stream, monitor, events)`` of one ``input`` channel message."""
    value = unpack(data, max_size=MAX_INPUT_MESSAGE)
    _want(
        isinstance(value, list) and len(value) == 3,
        "an input message is [stream, monitor, events]",
    )
    _want(type(value[0]) is int, "input stream id must be an integer")
    _want(type(value[1]) is int and 0 <= value[1] <= 64, "input monitor must be 0..64")
    return value[0], value[1], events_from_wire(value[2])
