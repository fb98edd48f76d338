"""A small Tk window for screen tests: shows a picture, records keys and clicks.

Usage: python tests/support/screen_app.py PICTURE.ppm +X+Y

Layout (window at +X+Y, no window manager on Xvfb so no decorations): the picture
at the top left, a text entry under it, a 40x40 patch right of the picture.

Reports on stdout, one line each (times are time.monotonic(), comparable between
processes on Linux):
  ready X Y W H            window placed; the picture's screen rectangle
  entry X Y W H            the entry's screen rectangle
  patch X Y W H            the patch's screen rectangle
  key TIME KEYSYM CHAR     a key press reached the window
  click TIME X Y BUTTON    a button press, at screen coordinates
  text CONTENT             the entry's content after each key
Commands on stdin: ``patch COLOR`` recolours the patch; ``animate N`` recolours it
N times, every 20 ms; ``quit``.
"""

from __future__ import annotations

import sys
import threading
import time
import tkinter as tk


def main() -> None:
    picture_path, geometry = sys.argv[1], sys.argv[2]
    root = tk.Tk()
    root.geometry(geometry)
    root.configure(background="#d0d0d0", borderwidth=0, highlightthickness=0)
    photo = tk.PhotoImage(file=picture_path)
    label = tk.Label(root, image=photo, borderwidth=0, highlightthickness=0, padx=0, pady=0)
    label.grid(row=0, column=0, sticky="nw")
    patch = tk.Frame(root, width=40, height=40, background="#2060c0", borderwidth=0)
    patch.grid(row=0, column=1, sticky="n", padx=20, pady=20)
    entry = tk.Entry(root, width=40, insertofftime=0, font=("DejaVu Sans Mono", 12))
    entry.grid(row=1, column=0, columnspan=2, sticky="w", pady=10)

    def say(text: str) -> None:
        print(text, flush=True)

    def on_key(event: tk.Event) -> None:
        say(f"key {time.monotonic():.6f} {event.keysym} {event.char!r}")
        root.after(1, lambda: say(f"text {entry.get()}"))

    def on_click(event: tk.Event) -> None:
        say(f"click {time.monotonic():.6f} {event.x_root} {event.y_root} {event.num}")
        entry.focus_set()

    root.bind_all("<KeyPress>", on_key)
    root.bind_all("<ButtonPress>", on_click)

    def animate(count: int, index: int = 0) -> None:
        if index < count:
            patch.configure(background=("#e02020", "#20c040", "#2060c0")[index % 3])
            root.after(20, animate, count, index + 1)

    def command(line: str) -> None:
        words = line.split()
        if not words:
            return
        if words[0] == "patch":
            patch.configure(background=words[1])
            root.update_idletasks()
            say(f"patched {words[1]}")
        elif words[0] == "animate":
            animate(int(words[1]))
        elif words[0] == "quit":
            root.destroy()

    def read_stdin() -> None:
        for line in sys.stdin:
            root.after(0, command, line.strip())
        root.after(0, root.destroy)

    def report() -> None:
        root.update_idletasks()
        say(
            f"ready {label.winfo_rootx()} {label.winfo_rooty()} "
            f"{label.winfo_width()} {label.winfo_height()}"
        )
        for name, widget in (("entry", entry), ("patch", patch)):
            say(
                f"{name} {widget.winfo_rootx()} {widget.winfo_rooty()} "
                f"{widget.winfo_width()} {widget.winfo_height()}"
            )
        entry.focus_force()

    threading.Thread(target=read_stdin, daemon=True).start()
    root.after(300, report)
    root.mainloop()


if __name__ == "__main__":
    main()
