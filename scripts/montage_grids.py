#!/usr/bin/env python3
"""Puts sample grids side by side, each under its label, at a scale: the
README's comparisons of runs (needs Pillow).

    python3 scripts/montage_grids.py OUT.png SCALE LABEL=GRID.png [LABEL=GRID.png ...]
"""
import sys

from PIL import Image, ImageDraw


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    out, scale = argv[1], float(argv[2])
    panels = []
    for arg in argv[3:]:
        label, path = arg.split("=", 1)
        img = Image.open(path).convert("RGB")
        size = (round(img.width * scale), round(img.height * scale))
        panels.append((label, img.resize(size, Image.LANCZOS)))
    pad, head = 8, 22
    width = sum(p.width for _, p in panels) + pad * (len(panels) + 1)
    height = max(p.height for _, p in panels) + head + 2 * pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for label, panel in panels:
        draw.text((x, pad), label, fill="black")
        canvas.paste(panel, (x, pad + head))
        x += panel.width + pad
    canvas.save(out)


if __name__ == "__main__":
    main(sys.argv)
