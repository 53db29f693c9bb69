"""Writes N small synthetic photos (PNG, Pillow): a coloured background and a few shapes,
seeded per image, so every run makes the same pictures. Usage: make_images.py N DIR SIZE."""
import os
import random
import sys

from PIL import Image, ImageDraw

COLOURS = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
           "purple": (130, 50, 160), "grey": (120, 120, 120)}


def main():
    n, out, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    names = list(COLOURS)
    for i in range(1, n + 1):
        rnd = random.Random(i)
        back, fore = rnd.sample(names, 2)
        img = Image.new("RGB", (size, size), COLOURS[back])
        draw = ImageDraw.Draw(img)
        for _ in range(rnd.randint(1, 4)):
            x, y, r = rnd.randint(0, size), rnd.randint(0, size), rnd.randint(size // 10, size // 4)
            box = (x - r, y - r, x + r, y + r)
            (draw.ellipse if rnd.random() < 0.5 else draw.rectangle)(box, fill=COLOURS[fore])
        img.save(os.path.join(out, "%04d.png" % i))


if __name__ == "__main__":
    main()
