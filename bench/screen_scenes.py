"""Scripted desktop scenes for the screen benchmark (a Tk window filling the display).

Usage: python bench/screen_scenes.py   (on the customer's display, 1920x1080)

Commands on stdin, one per line: ``scene NAME`` with NAME one of static, typing,
scroll, drag, slideshow, video, full (the whole screen changes, 30 times a second:
bench/viewer.py); ``quit``. Prints ``ready`` once drawn and
``scene NAME`` once a scene runs.

Fixed parts (remote pixel coordinates, see LAYOUT): a solid marker the benchmark
finds on the technician's display to learn where the remote picture is drawn, and
a click target that swaps colour on each click (click-to-pixel latency).
"""

from __future__ import annotations

import math
import sys
import threading
import tkinter as tk

import numpy as np

WIDTH, HEIGHT = 1920, 1080
LAYOUT = {
    "marker": (20, 20, 24, 24),
    "target": (1840, 20, 48, 48),
    "text": (60, 100, 1200, 800),
    "photo": (320, 160, 1280, 720),
    "video": (700, 400, 640, 360),
}
MARKER_RGB = (17, 230, 91)
TARGET_RGB = ((200, 40, 40), (40, 40, 200))
#: Bands whose change counts as a delivered frame, per scene (x, y, w, h).
PROBES = {
    "static": (60, 100, 1200, 8),
    "typing": (60, 100, 1200, 40),
    "scroll": (60, 480, 1200, 8),
    "drag": (0, 560, 1920, 8),
    "slideshow": (320, 500, 1280, 8),
    "video": (700, 560, 640, 8),
}
WORDS = (
    "the printer on the third floor says offline although the queue shows twelve "
    "documents waiting and the driver was reinstalled yesterday by the help desk "
).split()


def ppm(rgb: np.ndarray) -> bytes:
    height, width = rgb.shape[:2]
    return f"P6 {width} {height} 255\n".encode() + np.ascontiguousarray(rgb).tobytes()


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def photo_frame(index: int, width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like picture: smooth shapes, shading and grain (no two alike)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b, c = rng.uniform(20, 90, 3)
    red = 128 + 100 * np.sin(x / a + index) * np.cos(y / b)
    green = 128 + 90 * np.sin((x + y) / c + index * 0.7)
    blue = 128 + 80 * np.cos(np.hypot(x - width / 2, y - height / 2) / (a + 10) - index)
    grain = rng.normal(0, 5, (height, width, 3)).astype(np.float32)
    return (np.stack([red, green, blue], -1) + grain).clip(0, 255).astype(np.uint8)


class Scenes:
    def __init__(self) -> None:
        self.root = tk.Tk()
        self.root.geometry(f"{WIDTH}x{HEIGHT}+0+0")
        self.root.configure(background="#3b6ea5")
        self.canvas_bg = tk.Frame(self.root, background="#3b6ea5")
        mx, my, mw, mh = LAYOUT["marker"]
        tk.Frame(self.root, width=mw, height=mh, background=hex_colour(MARKER_RGB)).place(
            x=mx, y=my
        )
        tx, ty, tw, th = LAYOUT["target"]
        self.target = tk.Frame(self.root, width=tw, height=th, background=hex_colour(TARGET_RGB[0]))
        self.target.place(x=tx, y=ty)
        self.target_state = 0
        self.target.bind("<ButtonPress-1>", self.toggle_target)
        x, y, w, h = LAYOUT["text"]
        self.text = tk.Text(
            self.root,
            font=("DejaVu Sans Mono", 12),
            background="white",
            foreground="black",
            insertofftime=0,
            borderwidth=0,
            highlightthickness=0,
        )
        self.text_place = {"x": x, "y": y, "width": w, "height": h}
        self.photo_label = tk.Label(self.root, borderwidth=0, highlightthickness=0)
        self.video_label = tk.Label(self.root, borderwidth=0, highlightthickness=0)
        self.window: tk.Toplevel | None = None
        self.job: str | None = None
        self.step = 0
        self.photos = [photo_frame(i, 1280, 720, 100 + i) for i in range(4)]
        self.video_frames = [photo_frame(i / 6, 640, 360, 7) for i in range(60)]
        self.images: list[tk.PhotoImage] = []

    def toggle_target(self, _event: object = None) -> None:
        self.target_state ^= 1
        self.target.configure(background=hex_colour(TARGET_RGB[self.target_state]))

    # Scenes ----------------------------------------------------------------------------

    def clear(self) -> None:
        if self.job is not None:
            self.root.after_cancel(self.job)
            self.job = None
        self.text.place_forget()
        self.photo_label.place_forget()
        self.video_label.place_forget()
        if self.window is not None:
            self.window.destroy()
            self.window = None
        self.step = 0

    def scene(self, name: str) -> None:
        self.clear()
        getattr(self, f"scene_{name}")()
        print(f"scene {name}", flush=True)

    def fill_text(self, lines: int) -> None:
        self.text.delete("1.0", "end")
        for i in range(lines):
            words = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(14))
            self.text.insert("end", f"{i:5d}  {words}\n")

    def scene_static(self) -> None:
        self.fill_text(40)
        self.text.place(**self.text_place)

    def scene_typing(self) -> None:
        self.text.delete("1.0", "end")
        self.text.place(**self.text_place)
        sentence = " ".join(WORDS) + "\n"

        def type_one() -> None:
            self.text.insert("end", sentence[self.step % len(sentence)])
            self.text.see("end")
            self.step += 1
            self.job = self.root.after(125, type_one)  # 8 characters a second

        type_one()

    def scene_scroll(self) -> None:
        self.fill_text(3000)
        self.text.place(**self.text_place)

        def scroll() -> None:
            self.text.yview_scroll(1, "units")
            self.job = self.root.after(16, scroll)

        scroll()

    def scene_drag(self) -> None:
        window = tk.Toplevel(self.root)
        window.overrideredirect(True)
        text = tk.Text(window, font=("DejaVu Sans Mono", 11), borderwidth=1)
        text.pack(fill="both", expand=True)
        for i in range(30):
            text.insert("end", f"{i:3d} " + " ".join(WORDS[i % 9 : i % 9 + 8]) + "\n")
        self.window = window

        def move() -> None:
            x = int(700 + 600 * math.sin(self.step / 40))
            window.geometry(f"560x380+{x}+360")
            self.step += 1
            self.job = self.root.after(16, move)

        move()

    def scene_slideshow(self) -> None:
        x, y, w, h = LAYOUT["photo"]
        self.photo_label.place(x=x, y=y, width=w, height=h)

        def next_photo() -> None:
            image = tk.PhotoImage(data=ppm(self.photos[self.step % len(self.photos)]))
            self.images = [image]
            self.photo_label.configure(image=image)
            self.step += 1
            self.job = self.root.after(1000, next_photo)

        next_photo()

    def scene_video(self) -> None:
        x, y, w, h = LAYOUT["video"]
        self.video_label.place(x=x, y=y, width=w, height=h)
        images = [tk.PhotoImage(data=ppm(frame)) for frame in self.video_frames]
        self.images = images

        def next_frame() -> None:
            self.video_label.configure(image=images[self.step % len(images)])
            self.step += 1
            self.job = self.root.after(33, next_frame)  # 30 frames a second

        next_frame()

    def scene_full(self) -> None:
        """Every pixel changes, 30 times a second: a full-screen slideshow of photos."""
        if not hasattr(self, "full_images"):
            self.full_images = [
                tk.PhotoImage(data=ppm(photo_frame(i, WIDTH, HEIGHT, 300 + i))) for i in range(6)
            ]
        images = self.full_images
        self.photo_label.place(x=0, y=0, width=WIDTH, height=HEIGHT)

        def next_frame() -> None:
            self.photo_label.configure(image=images[self.step % len(images)])
            self.step += 1
            self.job = self.root.after(33, next_frame)  # 30 frames a second

        next_frame()

    def run(self) -> None:
        def read() -> None:
            for line in sys.stdin:
                words = line.split()
                if words and words[0] == "scene":
                    self.root.after(0, self.scene, words[1])
                elif words and words[0] == "quit":
                    break
            self.root.after(0, self.root.destroy)

        threading.Thread(target=read, daemon=True).start()
        self.scene_static()
        self.root.after(500, lambda: print("ready", flush=True))
        self.root.mainloop()


if __name__ == "__main__":
    Scenes().run()
