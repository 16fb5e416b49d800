#!/usr/bin/env python3
"""Render `tmux capture-pane -p -e` output (text with SGR colour escapes) to a PNG.

Usage: ansi_to_png.py CAPTURE.txt OUT.png
Needs Pillow (pip install pillow) and DejaVu Sans Mono (Debian: fonts-dejavu-core).
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 15
BG, FG = (24, 24, 27), (220, 220, 215)
BASE16 = [(24, 24, 27), (220, 80, 80), (110, 200, 110), (230, 200, 90), (100, 150, 230),
          (200, 120, 200), (90, 200, 200), (210, 210, 205), (110, 110, 115), (255, 110, 110),
          (140, 230, 140), (250, 225, 120), (130, 175, 250), (225, 150, 225), (120, 225, 225),
          (255, 255, 255)]


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


def parse(text):
    """Yields rows of (char, fg, bg, bold) cells; SGR state carries across lines."""
    fg, bg, bold, reverse = FG, BG, False, False
    rows = []
    for line in text.split("\n"):
        row = []
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
            if not m:
                for ch in part:
                    f, b = (bg, fg) if reverse else (fg, bg)
                    row.append((ch, f, b, bold))
                continue
            codes = [int(c) if c else 0 for c in m.group(1).split(";")]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold, reverse = FG, BG, False, False
                elif c == 1:
                    bold = True
                elif c == 22:
                    bold = False
                elif c == 7:
                    reverse = True
                elif c == 27:
                    reverse = False
                elif 30 <= c <= 37:
                    fg = BASE16[c - 30]
                elif 90 <= c <= 97:
                    fg = BASE16[c - 90 + 8]
                elif c == 39:
                    fg = FG
                elif 40 <= c <= 47:
                    bg = BASE16[c - 40]
                elif 100 <= c <= 107:
                    bg = BASE16[c - 100 + 8]
                elif c == 49:
                    bg = BG
                elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                    colour = xterm256(codes[i + 2])
                    if c == 38:
                        fg = colour
                    else:
                        bg = colour
                    i += 2
                i += 1
        rows.append(row)
    return rows


def main():
    text = open(sys.argv[1], encoding="utf-8").read().rstrip("\n")
    rows = parse(text)
    font, bold = ImageFont.truetype(FONT, SIZE), ImageFont.truetype(BOLD, SIZE)
    cw = int(font.getlength("M"))
    ch = SIZE + 4
    width = max((len(r) for r in rows), default=80)
    img = Image.new("RGB", (width * cw + 16, len(rows) * ch + 16), BG)
    draw = ImageDraw.Draw(img)
    for y, row in enumerate(rows):
        for x, (c, f, b, is_bold) in enumerate(row):
            px, py = 8 + x * cw, 8 + y * ch
            if b != BG:
                draw.rectangle([px, py, px + cw, py + ch], fill=b)
            if c != " ":
                draw.text((px, py), c, fill=f, font=bold if is_bold else font)
    img.save(sys.argv[2])


if __name__ == "__main__":
    main()
