"""A captioner stand-in for the sharded captioning workflow: it loads its "model" once per
shard (a small torch network, built and warmed up; a real captioner would load its weights
here), then captions the shard's images in the order kiln lists them, writing each caption
atomically (a temporary file, then rename) before moving to the next, which is what lets
kiln record every finished image and resume after a crash at the first unfinished one.

Usage: caption.py --items LIST --images DIR --out DIR [--device cpu|cuda]"""
import argparse
import os
import time

import torch
from PIL import Image

NAMES = ["red", "green", "blue", "yellow", "purple", "grey"]
RGB = torch.tensor([(200, 40, 40), (40, 160, 60), (40, 70, 200), (230, 200, 40), (130, 50, 160), (120, 120, 120)],
                   dtype=torch.float32)


def load_model(device):
    start = time.perf_counter()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(256, 64)).to(device).eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 64, device=device))  # warm-up
    print(f"model loaded on {device} in {time.perf_counter() - start:.2f} s", flush=True)
    return net


def describe(net, path, device):
    img = Image.open(path).convert("RGB")
    pixels = torch.tensor(list(img.getdata()), dtype=torch.float32)
    colours = ((pixels[:, None, :] - RGB[None]) ** 2).sum(-1).argmin(1)
    counts = torch.bincount(colours, minlength=len(NAMES))
    back, fore = counts.argsort(descending=True)[:2].tolist()
    with torch.no_grad():
        x = torch.tensor(list(img.resize((64, 64)).getdata()), dtype=torch.float32, device=device)
        feature = net(x.view(64, 64, 3).permute(2, 0, 1)[None] / 255).norm().item()
    share = counts[fore].item() / len(pixels)
    return f"{NAMES[fore]} shapes covering {share:.0%} of a {NAMES[back]} background (feature {feature:.3f})"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--items", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(1)
    with open(args.items) as f:
        items = [line.strip() for line in f if line.strip()]
    net = load_model(torch.device(args.device))
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    for i, item in enumerate(items, 1):
        text = describe(net, os.path.join(args.images, item + ".png"), args.device)
        target = os.path.join(args.out, item + ".txt")
        with open(target + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(target + ".tmp", target)
        if i % 50 == 0 or i == len(items):
            print(f"{i}/{len(items)} images, {i / (time.perf_counter() - start):.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
