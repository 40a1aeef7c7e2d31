"""A gan-gpu dcgan64 checkpoint in PyTorch: load_state_dict(strict=True) into
pytorch/examples' DCGAN generator and discriminator (dcgan/main.py's modules
as nn.Sequential, D without its final Sigmoid; the README's), then the
generator's images for the noise of NOISE.npy against gan-gpu's
`sample --noise NOISE.npy --out SAMPLES.npy` (uint8, (N, H, W) or (N, H, W, 3)).

Usage: python tests/python/torch_dcgan64_check.py CHECKPOINT NOISE.npy SAMPLES.npy [--batch-stats]

nz, ngf, ndf and nc are read from the checkpoint's tensor shapes. With
--batch-stats the generator runs in training mode (each batch's own
statistics, as pytorch/examples draws its grids; NOISE.npy is one batch of
at most 256); else in eval mode. Prints the largest pixel difference and
exits 1 if any pixel differs by more than 1 level.
"""
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file


def generator(nz, ngf, nc):
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(nc, ndf):
    return nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))


checkpoint, noise_path, samples_path = sys.argv[1:4]
batch_stats = "--batch-stats" in sys.argv[4:]
sd = load_file(checkpoint)
nz, ngf8 = sd["generator.0.weight"].shape[:2]
ngf, nc = ngf8 // 8, sd["generator.12.weight"].shape[1]
ndf = sd["discriminator.0.weight"].shape[0]
G, D = generator(nz, ngf, nc), discriminator(nc, ndf)
for prefix, net in [("generator", G), ("discriminator", D)]:
    sub = {k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")}
    net.load_state_dict(sub, strict=True)
print(f"strict load ok: nz {nz}, ngf {ngf}, ndf {ndf}, nc {nc};",
      sum(p.numel() for p in G.parameters()), "G parameters,",
      sum(p.numel() for p in D.parameters()), "D parameters,",
      "num_batches_tracked", int(G[1].num_batches_tracked), int(D[3].num_batches_tracked))
z = torch.from_numpy(np.load(noise_path).astype(np.float32))
G.train(batch_stats)
with torch.no_grad():
    x = G(z.reshape(len(z), nz, 1, 1)).numpy()
theirs = np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.int32)
theirs = theirs[:, 0] if nc == 1 else theirs.transpose(0, 2, 3, 1)
ours = np.load(samples_path).astype(np.int32)
assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
diff = np.abs(ours - theirs)
print(f"{len(z)} images; largest pixel difference {diff.max()}, values off by one: {(diff == 1).sum()} of {diff.size}")
sys.exit(0 if diff.max() <= 1 else 1)
