"""A gan-gpu DCGAN checkpoint in PyTorch: load_state_dict(strict=True) into
the nn.Sequential of scripts/torch_dcgan.py (the README's), then the
generator's images for the noise of NOISE.npy against gan-gpu's
`sample --noise NOISE.npy --out SAMPLES.npy` (uint8, MNIST polarity).

Usage: python tests/python/torch_dcgan_check.py CHECKPOINT NOISE.npy SAMPLES.npy [--batch-stats]

With --batch-stats the generator runs in training mode (each batch's own
statistics, pytorch/examples' grids; the whole NOISE.npy is one batch, so
gan-gpu must have drawn it in one chunk of at most 256); else in eval mode
(running statistics). Prints the largest pixel difference and exits 1 if
any pixel differs by more than 1 level (rounding of (tanh + 1) * 127.5 at a
.5 boundary can flip by one).
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import torch_dcgan  # noqa: E402

checkpoint, noise_path, samples_path = sys.argv[1:4]
batch_stats = "--batch-stats" in sys.argv[4:]
G, D = torch_dcgan.models()
sd = load_file(checkpoint)
for prefix, net in [("generator", G), ("discriminator", D)]:
    sub = {k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")}
    net.load_state_dict(sub, strict=True)
print("strict load ok:", sum(p.numel() for p in G.parameters()), "G parameters,",
      sum(p.numel() for p in D.parameters()), "D parameters,",
      "num_batches_tracked", int(G[1].num_batches_tracked))
z = torch.from_numpy(np.load(noise_path).astype(np.float32))
G.train(batch_stats)
with torch.no_grad():
    x = G(z)
ours = np.load(samples_path).astype(np.int32)
theirs = np.clip(np.round((x.numpy()[:, 0] + 1.0) * 127.5), 0, 255).astype(np.int32)
diff = np.abs(ours - theirs)
print(f"{len(z)} images; largest pixel difference {diff.max()}, pixels off by one: {(diff == 1).sum()}")
sys.exit(0 if diff.max() <= 1 else 1)
