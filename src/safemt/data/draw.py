"""Seed images drawn with Pillow: a flat scene plus a typeset key phrase (MM-SafetyBench style).

Drawing is deterministic so that a rebuild gives the same bytes: colours come from sha256 of the
seed id (never from `random`), the font is Pillow's built-in one (no network, no system fonts), and
the PNG is saved with fixed options and no metadata.
"""

from __future__ import annotations

import hashlib
import io
from typing import Callable, NamedTuple

from PIL import Image, ImageDraw, ImageFont

SIZE = 128
BAND_TOP = 92          # the scene fills the rows above, the phrase the band below
FONT_SIZE = 12
MAX_LINES = 2
MARGIN = 4

RGB = tuple[int, int, int]


class Palette:
    """Colours near a base colour, shifted by bytes of a sha256 stream of the seed id."""

    def __init__(self, key: str):
        self._key = key
        self._stream = b""
        self._pos = 0

    def _byte(self) -> int:
        if self._pos >= len(self._stream):
            block = hashlib.sha256(f"{self._key}#{len(self._stream) // 32}".encode("utf-8")).digest()
            self._stream += block
        self._pos += 1
        return self._stream[self._pos - 1]

    def near(self, base: RGB, spread: int = 40) -> RGB:
        return tuple(max(0, min(255, c + self._byte() * 2 * spread // 255 - spread)) for c in base)


Painter = Callable[[ImageDraw.ImageDraw, Palette], None]

SKY, GRASS, GREY, WHITE, DARK = (170, 205, 235), (110, 170, 90), (120, 120, 125), (245, 245, 240), (50, 50, 60)


def _sky_and_ground(d: ImageDraw.ImageDraw, p: Palette, ground: RGB, horizon: int) -> None:
    d.rectangle((0, 0, SIZE, horizon), fill=p.near(SKY))
    d.rectangle((0, horizon, SIZE, BAND_TOP), fill=p.near(ground))


def _house(d: ImageDraw.ImageDraw, p: Palette) -> None:
    _sky_and_ground(d, p, GRASS, 70)
    d.ellipse((100, 6, 118, 24), fill=(250, 215, 90))
    d.rectangle((34, 40, 94, 82), fill=p.near((210, 170, 120)))
    d.polygon([(28, 42), (64, 14), (100, 42)], fill=p.near((160, 60, 50)))
    d.rectangle((58, 60, 70, 82), fill=p.near((90, 60, 40)))
    d.rectangle((40, 50, 52, 60), fill=WHITE, outline=DARK)
    d.rectangle((76, 50, 88, 60), fill=WHITE, outline=DARK)


def _street(d: ImageDraw.ImageDraw, p: Palette) -> None:
    _sky_and_ground(d, p, GREY, 70)
    for x0, top in ((4, 22), (46, 34), (88, 10)):
        d.rectangle((x0, top, x0 + 36, 70), fill=p.near((150, 130, 120)))
        for y in range(top + 6, 64, 12):
            d.rectangle((x0 + 6, y, x0 + 14, y + 6), fill=p.near((240, 220, 140), 15))
            d.rectangle((x0 + 22, y, x0 + 30, y + 6), fill=p.near((240, 220, 140), 15))
    for x in range(4, SIZE, 24):
        d.rectangle((x, 80, x + 12, 82), fill=WHITE)


def _office(d: ImageDraw.ImageDraw, p: Palette) -> None:
    _sky_and_ground(d, p, (150, 120, 90), 76)
    d.rectangle((0, 0, SIZE, 76), fill=p.near((225, 220, 200)))
    d.rectangle((8, 10, 36, 38), fill=p.near(SKY), outline=DARK)
    d.rectangle((20, 56, 108, 62), fill=p.near((120, 85, 55)))
    d.rectangle((24, 62, 28, 88), fill=DARK)
    d.rectangle((100, 62, 104, 88), fill=DARK)
    d.rectangle((44, 28, 84, 54), fill=DARK)
    d.rectangle((47, 31, 81, 51), fill=p.near((120, 170, 220)))
    d.ellipse((110, 30, 126, 50), fill=p.near(GRASS))
    d.rectangle((114, 50, 122, 76), fill=p.near((150, 90, 60)))


def _screen(d: ImageDraw.ImageDraw, p: Palette) -> None:
    d.rectangle((0, 0, SIZE, BAND_TOP), fill=p.near((60, 60, 80)))
    d.rectangle((14, 6, 114, 70), fill=(30, 30, 35))
    d.rectangle((18, 10, 110, 66), fill=p.near((225, 235, 245), 20))
    d.rectangle((18, 10, 110, 18), fill=p.near((70, 110, 190)))
    for i, y in enumerate(range(24, 62, 8)):
        d.rectangle((24, y, 104 - (i * 13) % 40, y + 3), fill=p.near((110, 110, 120), 30))
    d.rectangle((58, 70, 70, 78), fill=(30, 30, 35))
    d.rectangle((30, 80, 98, 88), fill=p.near((190, 190, 195), 20))


def _park(d: ImageDraw.ImageDraw, p: Palette) -> None:
    _sky_and_ground(d, p, GRASS, 60)
    d.ellipse((8, 6, 26, 24), fill=(250, 215, 90))
    d.rectangle((82, 40, 90, 74), fill=p.near((110, 75, 45)))
    d.ellipse((62, 8, 110, 50), fill=p.near((60, 140, 60)))
    d.rectangle((14, 66, 56, 70), fill=p.near((150, 100, 60)))
    d.rectangle((18, 70, 21, 80), fill=DARK)
    d.rectangle((49, 70, 52, 80), fill=DARK)


def _crowd(d: ImageDraw.ImageDraw, p: Palette) -> None:
    d.rectangle((0, 0, SIZE, BAND_TOP), fill=p.near((215, 210, 200)))
    for row, (y, step, offset) in enumerate(((22, 20, 4), (40, 22, 12), (58, 24, 0))):
        for x in range(offset, SIZE, step):
            d.ellipse((x + 4, y, x + 14, y + 10), fill=p.near((205, 160, 125), 50))
            d.rounded_rectangle((x + 1, y + 11, x + 17, BAND_TOP + 4), radius=5,
                                fill=p.near((90 + 40 * row, 100, 150), 60))


def _shop(d: ImageDraw.ImageDraw, p: Palette) -> None:
    _sky_and_ground(d, p, GREY, 84)
    d.rectangle((12, 20, 116, 92), fill=p.near((200, 180, 150)))
    stripe = p.near((200, 60, 60))
    for i, x in enumerate(range(12, 116, 13)):
        d.rectangle((x, 30, x + 12, 40), fill=stripe if i % 2 == 0 else WHITE)
    d.rectangle((36, 21, 92, 29), fill=p.near((60, 60, 90)))
    d.rectangle((20, 46, 70, 80), fill=p.near((180, 215, 235), 20), outline=DARK)
    d.rectangle((80, 46, 104, 92), fill=p.near((100, 70, 50)))


def _clinic(d: ImageDraw.ImageDraw, p: Palette) -> None:
    _sky_and_ground(d, p, GRASS, 80)
    d.rectangle((24, 20, 104, 92), fill=p.near((235, 235, 230), 15))
    cross = p.near((200, 40, 40), 30)
    d.rectangle((58, 26, 70, 50), fill=cross)
    d.rectangle((52, 32, 76, 44), fill=cross)
    for x in (32, 84):
        d.rectangle((x, 56, x + 12, 68), fill=p.near(SKY, 20), outline=DARK)
    d.rectangle((56, 66, 72, 92), fill=p.near((90, 120, 160)))


class Scene(NamedTuple):
    description: str   # what the templates say the picture shows
    paint: Painter
    parts: tuple[str, ...] = ()  # the things the painter draws, named for the image facts


SCENES: dict[str, Scene] = {
    "house": Scene("a small house with a front garden", _house,
                   ("a red roof", "a front door", "two white windows", "a yellow sun")),
    "street": Scene("a city street lined with buildings", _street,
                    ("three tall buildings", "rows of lit windows", "white road markings")),
    "office": Scene("an office with a desk and a computer", _office,
                    ("a desk", "a computer monitor", "a window", "a potted plant")),
    "screen": Scene("a computer screen full of text", _screen,
                    ("a monitor showing lines of grey text", "a blue title bar", "a keyboard")),
    "park": Scene("a park with a tree and a bench", _park,
                  ("a leafy tree", "a wooden bench", "green grass", "a yellow sun")),
    "crowd": Scene("a crowd of people standing together", _crowd,
                   ("rows of people standing shoulder to shoulder", "a pale wall behind them")),
    "shop": Scene("a small shop front with an awning", _shop,
                  ("a striped awning", "a dark sign above the awning", "a shop window", "a brown door")),
    "clinic": Scene("a clinic building with a cross on it", _clinic,
                    ("a red cross", "two windows", "a blue door", "green grass")),
}


def facts(phrase: str, scene: str) -> tuple[str, ...]:
    """What a drawn picture shows, for the templates: the scene, its parts, and the printed words."""
    check(phrase, scene)
    return (SCENES[scene].description, *SCENES[scene].parts,
            f'the words "{phrase}" printed in a white band at the bottom')


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _text_width(d: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> float:
    left, _, right, _ = d.textbbox((0, 0), text, font=font)
    return right - left


def wrap(phrase: str) -> list[str]:
    """Greedy word wrap to the image width; ValueError if the phrase does not fit the band."""
    if not phrase.strip() or not phrase.isascii() or not phrase.isprintable():
        raise ValueError("draw.phrase must be non-empty printable ASCII")
    d = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font, limit = _font(), SIZE - 2 * MARGIN
    lines: list[str] = []
    for word in phrase.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and _text_width(d, candidate, font) <= limit:
            lines[-1] = candidate
        else:
            lines.append(word)
    if len(lines) > MAX_LINES or any(_text_width(d, line, font) > limit for line in lines):
        raise ValueError(f"draw.phrase {phrase!r} does not fit in {MAX_LINES} lines of a {SIZE}px image")
    return lines


def check(phrase: str, scene: str) -> None:
    """Raise ValueError with the reason if this phrase and scene cannot be drawn."""
    if scene not in SCENES:
        raise ValueError(f"unknown draw.scene {scene!r} (one of {', '.join(SCENES)})")
    wrap(phrase)


def _caption(d: ImageDraw.ImageDraw, phrase: str) -> None:
    d.rectangle((0, BAND_TOP, SIZE, SIZE), fill=(255, 255, 255))
    font, lines = _font(), wrap(phrase)
    line_h = FONT_SIZE + 3
    y = BAND_TOP + (SIZE - BAND_TOP - line_h * len(lines)) // 2
    for line in lines:
        x = (SIZE - _text_width(d, line, font)) / 2
        d.text((x, y), line, fill=(0, 0, 0), font=font)
        y += line_h


def render_png(key: str, phrase: str, scene: str) -> bytes:
    """PNG bytes of the seed image; the same (key, phrase, scene) always gives the same bytes."""
    check(phrase, scene)
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    SCENES[scene].paint(draw, Palette(key))
    _caption(draw, phrase)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()
