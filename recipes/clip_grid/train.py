"""A small contrastive (CLIP-style) trainer for the encoder grid: an image encoder and a
text encoder, chosen by name, trained on synthetic paired data (images and token ids drawn
from one shared latent, so pairs really match) with the symmetric InfoNCE loss. Writes the
checkpoint directory and a metrics JSON (per-epoch loss, final image->text recall@1).
With --resume PATH it snapshots the run after every epoch (encoders, optimiser, the random
generator, the epochs so far) and a restarted run continues after the last finished epoch,
as it would have gone on uninterrupted.

Encoder names: image "starnet_s1".."starnet_s4" (a conv net with that many stages), text
"clip:ViT-B/32" (a small transformer over tokens) or "bert-base-chinese" (an embedding bag
with a projection). These are stand-ins with the real names' shapes of choice, small enough
for a CPU; point the recipe at real encoders by replacing build_image/build_text."""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def build_image(name, dim):
    if not name.startswith("starnet_s") or not name[9:].isdigit():
        raise SystemExit(f"unknown image encoder {name!r} (starnet_s1..starnet_s4)")
    stages, layers, ch = int(name[9:]), [], 3
    for s in range(stages):
        out = 16 * (2 ** s)
        layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        ch = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, dim))


class TinyTransformer(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.block = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), 1)
        self.proj = nn.Linear(64, dim)

    def forward(self, tokens):
        return self.proj(self.block(self.embed(tokens)).mean(1))


def build_text(name, vocab, dim):
    if name == "clip:ViT-B/32":
        return TinyTransformer(vocab, dim)
    if name == "bert-base-chinese":
        return nn.Sequential(nn.EmbeddingBag(vocab, 96), nn.ReLU(), nn.Linear(96, dim))
    raise SystemExit(f"unknown text encoder {name!r} (clip:ViT-B/32, bert-base-chinese)")


def synthetic_pairs(n, size, vocab, length, seed):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 8, generator=g)
    basis = torch.randn(8, 3 * 8 * 8, generator=g)
    images = F.interpolate((latent @ basis).view(n, 3, 8, 8), size=size) + 0.3 * torch.randn(n, 3, size, size, generator=g)
    token_basis = torch.randn(8, vocab, generator=g)
    logits = (latent @ token_basis).unsqueeze(1).expand(n, length, vocab) + torch.randn(n, length, vocab, generator=g)
    return images, logits.argmax(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", required=True, help="directory")
    p.add_argument("--out", required=True, help="metrics JSON")
    p.add_argument("--resume", help="the per-epoch snapshot: written after each epoch, continued from if present")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    vocab, length, dim = 200, 12, 64
    images, tokens = synthetic_pairs(args.samples + 128, args.size, vocab, length, 1234)
    images, tokens = images.to(device), tokens.to(device)
    image_enc, text_enc = build_image(args.image, dim).to(device), build_text(args.text, vocab, dim).to(device)
    scale = nn.Parameter(torch.tensor(2.6, device=device))
    opt = torch.optim.AdamW(list(image_enc.parameters()) + list(text_enc.parameters()) + [scale], lr=2e-3)
    epochs, earlier = [], 0.0  # earlier: training time before a resume
    if args.resume and os.path.exists(args.resume):
        snap = torch.load(args.resume, map_location=device)
        image_enc.load_state_dict(snap["image_state"])
        text_enc.load_state_dict(snap["text_state"])
        opt.load_state_dict(snap["optimizer"])
        with torch.no_grad():
            scale.copy_(snap["scale"])
        torch.set_rng_state(snap["rng"].cpu())  # loaded onto the device with the rest: the generator's is the CPU's
        if device.type == "cuda" and snap.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(snap["cuda_rng"].cpu())  # randperm draws from it there
        epochs, earlier = snap["epochs"], snap["train_time"]
        print(f"resuming after epoch {len(epochs)} of {args.epochs} from {args.resume}", flush=True)
    start = time.perf_counter()
    for epoch in range(len(epochs) + 1, args.epochs + 1):
        total, steps = 0.0, 0
        order = torch.randperm(args.samples, device=device)
        for s in range(0, args.samples - args.batch + 1, args.batch):
            idx = order[s:s + args.batch]
            a = F.normalize(image_enc(images[idx]), dim=-1)
            b = F.normalize(text_enc(tokens[idx]), dim=-1)
            logits = scale.exp() * a @ b.t()
            target = torch.arange(len(idx), device=device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        with torch.no_grad():
            image_enc.eval(), text_enc.eval()
            a = F.normalize(image_enc(images[args.samples:]), dim=-1)
            b = F.normalize(text_enc(tokens[args.samples:]), dim=-1)
            recall = ((a @ b.t()).argmax(1) == torch.arange(len(a), device=device)).float().mean().item()
            image_enc.train(), text_enc.train()
        epochs.append({"epoch": epoch, "loss": total / max(steps, 1), "recall_at_1": recall})
        if args.resume:  # before the line: an epoch said done is in the snapshot
            os.makedirs(os.path.dirname(args.resume) or ".", exist_ok=True)
            torch.save({"image_state": image_enc.state_dict(), "text_state": text_enc.state_dict(),
                        "optimizer": opt.state_dict(), "scale": scale.detach(), "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                        "epochs": epochs, "train_time": earlier + time.perf_counter() - start}, args.resume + ".tmp")
            os.replace(args.resume + ".tmp", args.resume)
        print(f"{args.image} x {args.text} epoch {epoch}: loss {total / max(steps, 1):.4f}, recall@1 {recall:.3f}",
              flush=True)
    os.makedirs(args.checkpoint, exist_ok=True)
    torch.save({"image": args.image, "text": args.text, "image_state": image_enc.state_dict(),
                "text_state": text_enc.state_dict()}, os.path.join(args.checkpoint, "model.pt"))
    result = {"image": args.image, "text": args.text, "device": device.type, "train_time": earlier + time.perf_counter() - start,
              "final_loss": epochs[-1]["loss"], "recall_at_1": epochs[-1]["recall_at_1"], "epochs": epochs}
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
