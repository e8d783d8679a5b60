"""Procedural pictures for the sample web: topic images and the web's visual noise.

A topic is a shape family drawn in a colour family. Two pictures of one topic share
those semantics but differ in position, size, count, rotation, fill pattern, background
and texture, so they look like two photos of one subject, not like copies. At 32×32 the
shape and hue survive, so a tiny model can learn topics and a simple classifier can tell
them apart.
"""
from __future__ import annotations

import colorsys
import io
import math
import random

from PIL import Image, ImageDraw, ImageOps

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon")
SUPERSAMPLE = 2  # draw at 2× and downsample: anti-aliased edges, like photos


def topic_name(topic: int, num_topics: int) -> str:
    return f"{SHAPES[topic % len(SHAPES)]}-hue{round(topic_hue(topic, num_topics) * 360):03d}"


def topic_hue(topic: int, num_topics: int) -> float:
    return (topic / num_topics) % 1.0


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(math.cos(angle + math.pi / 4 + k * math.pi / 2), math.sin(angle + math.pi / 4 + k * math.pi / 2))
               for k in range(4)]
    elif shape == "triangle":
        start = angle - math.pi / 2
        pts = [(math.cos(start + k * 2 * math.pi / 3), math.sin(start + k * 2 * math.pi / 3)) for k in range(3)]
    elif shape == "diamond":
        pts = [(math.cos(angle) * x - math.sin(angle) * y, math.sin(angle) * x + math.cos(angle) * y)
               for x, y in [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]]
    elif shape == "hexagon":
        pts = [(math.cos(angle + k * math.pi / 3), math.sin(angle + k * math.pi / 3)) for k in range(6)]
    elif shape == "star":
        pts = []
        for k in range(10):
            rr = 1.0 if k % 2 == 0 else 0.45
            a = angle - math.pi / 2 + k * math.pi / 5
            pts.append((rr * math.cos(a), rr * math.sin(a)))
    elif shape == "cross":
        w = 0.35
        base = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
                (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
        pts = [(math.cos(angle) * x - math.sin(angle) * y, math.sin(angle) * x + math.cos(angle) * y) for x, y in base]
    else:
        raise ValueError(shape)
    return [(cx + r * x, cy + r * y) for x, y in pts]


def _background(rng: random.Random, w: int, h: int) -> Image.Image:
    """A low-saturation two-tone gradient with a texture: the 'scene' behind the subject."""
    h1, h2 = rng.random(), rng.random()
    c1 = _rgb(h1, rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.95))
    c2 = _rgb(h2, rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.95))
    horizontal = rng.random() < 0.5
    grad = Image.linear_gradient("L").resize((w, h))
    if horizontal:
        grad = grad.rotate(90, expand=False).resize((w, h))
    img = Image.composite(Image.new("RGB", (w, h), c1), Image.new("RGB", (w, h), c2), grad)
    draw = ImageDraw.Draw(img)
    texture = rng.choice(("none", "stripes", "dots", "grid"))
    tone = _rgb(rng.random(), rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.9))
    step = rng.randint(8, 20) * SUPERSAMPLE
    if texture == "stripes":
        for x in range(-h, w, step):
            draw.line([(x, 0), (x + h, h)], fill=tone, width=SUPERSAMPLE)
    elif texture == "dots":
        for y in range(0, h, step):
            for x in range(0, w, step):
                draw.ellipse([x, y, x + 2 * SUPERSAMPLE, y + 2 * SUPERSAMPLE], fill=tone)
    elif texture == "grid":
        for x in range(0, w, step):
            draw.line([(x, 0), (x, h)], fill=tone, width=1)
        for y in range(0, h, step):
            draw.line([(0, y), (w, y)], fill=tone, width=1)
    return img


def draw_topic_picture(rng: random.Random, topic: int, num_topics: int, width: int, height: int) -> Image.Image:
    """One picture of `topic`: 1–3 instances of its shape in its colour family."""
    W, H = width * SUPERSAMPLE, height * SUPERSAMPLE
    img = _background(rng, W, H)
    draw = ImageDraw.Draw(img)
    shape = SHAPES[topic % len(SHAPES)]
    hue = topic_hue(topic, num_topics)
    side = min(W, H)
    for _ in range(rng.choice((1, 1, 2, 3))):
        r = side * rng.uniform(0.18, 0.36)
        cx, cy = rng.uniform(r, W - r), rng.uniform(r, H - r)
        angle = rng.uniform(0, 2 * math.pi)
        fill = _rgb(hue + rng.uniform(-0.03, 0.03), rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
        outline = _rgb(hue, 1.0, rng.uniform(0.2, 0.45)) if rng.random() < 0.5 else None
        width_px = SUPERSAMPLE * rng.randint(1, 3)
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width_px)
        elif shape == "ring":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r * rng.uniform(0.25, 0.4))))
        else:
            draw.polygon(_polygon(shape, cx, cy, r, angle), fill=fill, outline=outline, width=width_px)
        if rng.random() < 0.35:  # a pattern on the subject: highlights
            hl = _rgb(hue, rng.uniform(0.2, 0.4), 1.0)
            for _ in range(rng.randint(2, 5)):
                dx, dy = rng.uniform(-r / 2, r / 2), rng.uniform(-r / 2, r / 2)
                s = r * 0.1
                draw.ellipse([cx + dx - s, cy + dy - s, cx + dx + s, cy + dy + s], fill=hl)
    return img.resize((width, height), Image.LANCZOS)


def draw_logo(rng: random.Random, width: int = 180, height: int = 60) -> Image.Image:
    """A wordmark-like logo: a coloured badge and bars standing for letters."""
    img = Image.new("RGB", (width, height), _rgb(rng.random(), 0.05, 0.98))
    d = ImageDraw.Draw(img)
    c = _rgb(rng.random(), 0.8, 0.7)
    d.ellipse([6, 6, height - 6, height - 6], fill=c)
    x = height + 4
    while x < width - 12:
        w = rng.randint(6, 16)
        d.rectangle([x, height * 0.3, x + w, height * 0.7], fill=_rgb(0, 0, 0.2))
        x += w + 4
    return img


def draw_banner(rng: random.Random, width: int = 300, height: int = 250) -> Image.Image:
    """An ad creative (300×250, the commonest ad size): bold stripes and a call-to-action box."""
    img = Image.new("RGB", (width, height), _rgb(rng.random(), 0.9, 0.9))
    d = ImageDraw.Draw(img)
    for k in range(0, width + height, 40):
        d.line([(k, 0), (k - height, height)], fill=_rgb(rng.random(), 0.9, 0.6), width=12)
    d.rectangle([width * 0.2, height * 0.65, width * 0.8, height * 0.85], fill=(255, 255, 255), outline=(0, 0, 0),
                width=3)
    return img


def draw_icon(rng: random.Random, size: int = 16) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse([1, 1, size - 2, size - 2], fill=_rgb(rng.random(), 0.8, 0.8) + (255,))
    return img


def mirror(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


def encode(img: Image.Image, fmt: str, quality: int = 88) -> bytes:
    """Encode as the web serves it. fmt: jpeg, png, png-rgba, gif-palette, gif-animated, webp, jpeg-cmyk."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=False)
    elif fmt == "jpeg-cmyk":
        img.convert("CMYK").save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        img.convert("RGB").save(buf, "PNG")
    elif fmt == "png-rgba":
        rgba = img.convert("RGBA")
        w, h = rgba.size
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).rounded_rectangle([0, 0, w - 1, h - 1], radius=min(w, h) // 6, fill=255)
        rgba.putalpha(mask)  # transparent rounded corners, as on many sites
        rgba.save(buf, "PNG")
    elif fmt == "gif-palette":
        img.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(buf, "GIF")
    elif fmt == "gif-animated":
        first = img.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        second = ImageOps.invert(img.convert("RGB")).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        first.save(buf, "GIF", save_all=True, append_images=[second], duration=500, loop=0)
    elif fmt == "webp":
        img.convert("RGB").save(buf, "WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


CONTENT_TYPES = {"jpeg": "image/jpeg", "jpeg-cmyk": "image/jpeg", "png": "image/png", "png-rgba": "image/png",
                 "gif-palette": "image/gif", "gif-animated": "image/gif", "webp": "image/webp"}
EXTENSIONS = {"jpeg": ".jpg", "jpeg-cmyk": ".jpg", "png": ".png", "png-rgba": ".png",
              "gif-palette": ".gif", "gif-animated": ".gif", "webp": ".webp"}

# A 1×1 transparent GIF, byte for byte the one trackers serve.
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

SVG_ICON = (b'<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">'
            b'<path d="M12 2L2 22h20z" fill="#333"/></svg>')
