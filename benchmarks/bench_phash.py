"""Images/s per core of the miner's decode + hash, against plain imagehash, on the same JPEGs.

Draws --images (default 300) pictures of ~250 px (random shapes, gradients and noise with
PIL), encodes them as JPEG (quality 85), then, on one core, best of --repeat passes:
  decode_image      mining/decode.py: header checks, decode, to_rgb, pHash, sha256 id
  plain phash       imagehash.phash(Image.open(BytesIO(data)))  (baseline)
  decode only       Image.open + load (the floor both pay)
  draft phash       plain phash after JPEG draft mode (decode at 1/2-1/8 scale): not the
                    project's code, shown as what a cheaper decode would give
The figure is the throughput ratio decode_image / plain phash, measured in the same run;
hash agreement (Hamming distance between the two hashes) is printed as a check.

  .venv/bin/python benchmarks/bench_phash.py [--images 300] [--repeat 3]
"""
from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def draw(rng: random.Random):
    from PIL import Image, ImageDraw
    w, h = rng.randint(220, 280), rng.randint(180, 280)
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    img = Image.blend(img, Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3))), 0.6)
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 12)):
        box = sorted((rng.randrange(w), rng.randrange(w)))
        ys = sorted((rng.randrange(h), rng.randrange(h)))
        fill = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice((d.ellipse, d.rectangle, d.line))
        if shape is d.line:
            d.line((box[0], ys[0], box[1], ys[1]), fill=fill, width=rng.randint(1, 8))
        else:
            shape((box[0], ys[0], box[1], ys[1]), fill=fill)
    noise = Image.effect_noise((w, h), rng.uniform(20, 60)).convert("RGB")
    img = Image.blend(img, noise, 0.3)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300, help="JPEGs to draw (default 300)")
    ap.add_argument("--repeat", type=int, default=3, help="passes per case; the best is kept (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import imagehash
    from PIL import Image
    from semantica.config import load_settings
    from semantica.images import hamming, to_signed
    from semantica.mining.decode import Decoded, decode_image
    cfg = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml").stages.mine.decode
    print(_common.pin_one_core())
    rng = random.Random(args.seed)
    images = [draw(rng) for _ in range(args.images)]
    print(f"{len(images)} JPEGs, {sum(map(len, images)) / len(images) / 1e3:.1f} KB each on average")

    def ours():
        return [decode_image(b, cfg) for b in images]

    def plain():
        return [imagehash.phash(Image.open(io.BytesIO(b))) for b in images]

    def decode_only():
        for b in images:
            Image.open(io.BytesIO(b)).load()

    def draft():
        out = []
        for b in images:
            img = Image.open(io.BytesIO(b))
            img.draft("L", (64, 64))
            out.append(imagehash.phash(img))
        return out

    cases = [("decode_image", ours), ("plain phash", plain), ("decode only", decode_only), ("draft phash", draft)]
    best, results = {}, {}
    for _ in range(args.repeat):
        for name, fn in cases:
            t0 = time.perf_counter()
            results[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)

    decoded = results["decode_image"]
    assert all(isinstance(d, Decoded) for d in decoded), [d for d in decoded if not isinstance(d, Decoded)][:3]
    same = [hamming(d.phash, to_signed(int(str(h), 16))) for d, h in zip(decoded, results["plain phash"])]
    drift = [hamming(d.phash, to_signed(int(str(h), 16))) for d, h in zip(decoded, results["draft phash"])]
    base = len(images) / best["plain phash"]
    print(f"\n{'case':<16}{'seconds':>9}{'images/s':>10}{'ms/image':>10}{'vs plain phash':>16}")
    for name, _ in cases:
        rate = len(images) / best[name]
        print(f"{name:<16}{best[name]:>9.3f}{rate:>10.1f}{1e3 / rate:>10.2f}{rate / base:>15.2f}x")
    print(f"decode_image vs plain phash: {len(images) / best['decode_image'] / base:.2f}x throughput "
          f"(one core, best of {args.repeat})")
    print(f"hash agreement: identical for {same.count(0)}/{len(same)} images (max distance {max(same)}); "
          f"draft phash differs by {sum(drift) / len(drift):.2f} bits on average (max {max(drift)})")


if __name__ == "__main__":
    main()
