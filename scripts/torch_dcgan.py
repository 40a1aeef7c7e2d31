"""The PyTorch twin of `gan-gpu --model dcgan`: the TensorFlow DCGAN tutorial's MNIST model.

Usage (timing, like ../shared/bench/torch_gan.py):
  python torch_dcgan.py [--data DIR] [--device cpu|cuda] [--batch 256] [--steps N] [--warmup W]
                        [--threads N] [--tf32 off|on] [--seed S] [--limit N]
Usage (training, for the quality comparison):
  python torch_dcgan.py --epochs E [--data DIR] [--out-samples F.npy] [--samples N]
                        [--out-grid F.png] [--save-state F.pt] [--limit N] ...
  python torch_dcgan.py --describe      # parameter counts and state_dict keys/shapes, then exit

Timing prints the same two lines as torch_gan.py (model=dcgan), the last one
    steps=N ms/step=X steps/s=Y lossD=A lossG=B
so `tail -1` parses both scripts alike. Each step samples a real batch with
randint, as torch_gan.py does; warm-up steps are excluded and the clock is read
with perf_counter around the timed loop (after a cuda synchronize on CUDA).
Training runs whole epochs in a fresh shuffled order each (randperm, the last
partial batch dropped), prints one `epoch ...` line per epoch and the summary
line at the end, then writes N samples (default 10000) from the generator in
eval mode (running BN statistics, the tutorial's training=False) as a uint8
(N, 28, 28) .npy in MNIST polarity, round((tanh + 1) / 2 * 255), for
`gan-gpu eval --images F.npy`.

The model (both nn.Sequential, so the state_dict names are those the Rust
checkpoint uses):
  G: Linear(100, 12544, bias=False) BatchNorm1d LeakyReLU(0.3) Unflatten(256, 7, 7)
     ConvTranspose2d(256, 128, 5, 1, 2) BN2d LeakyReLU(0.3)
     ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1) BN2d LeakyReLU(0.3)
     ConvTranspose2d(64, 1, 5, 2, 2, output_padding=1) Tanh            (no conv biases)
  D: Conv2d(1, 64, 5, 2, 2) LeakyReLU(0.3) Dropout(0.3)
     Conv2d(64, 128, 5, 2, 2) LeakyReLU(0.3) Dropout(0.3) Flatten Linear(6272, 1)  (a logit)
Keras defaults: Glorot-uniform weights, zero biases, BN momentum 0.99 (0.01 here),
eps 1e-3, gamma 1, beta 0. BCE with logits (real 1, fake 0, G targets 1), Adam
lr 1e-4 betas (0.9, 0.999), batch 256, pixels in [-1, 1]. Per step: D on a
real batch and on a generated batch in two separate forward passes, then G on
fresh noise (sequential updates, as in the other peers).

Known differences from the TF tutorial, kept on purpose so this twin matches
the Rust model rather than Keras bit for bit: PyTorch pads 'same' symmetrically
(2 each side) where TF pads stride-2 layers 1 before / 2 after; tensors are
NCHW, so Flatten/Unflatten order the 6272/12544 features channel-first; the
tutorial updates G and D simultaneously from one forward pass; BN's running
variance is PyTorch's unbiased one; Adam eps is 1e-8 (--adam-eps; Keras uses
1e-7 on the uncorrected sqrt(v)).
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NZ = 100
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        b = f.read()
    magic, = struct.unpack(">I", b[:4])
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an IDX ubyte file (magic {magic:#x})")
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def find(d, stem):
    """The IDX file in d whose name starts with stem, the raw one before a .gz one."""
    names = sorted((n.endswith(".gz"), n) for n in os.listdir(d) if n.startswith(stem))
    if not names:
        raise FileNotFoundError(f"{d}: no {stem}* file")
    return os.path.join(d, names[0][1])


def models():
    lr = lambda: nn.LeakyReLU(0.3)
    bn1 = lambda c: nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)
    bn2 = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)
    G = nn.Sequential(
        nn.Linear(NZ, 7 * 7 * 256, bias=False), bn1(7 * 7 * 256), lr(),       # 0 1 2
        nn.Unflatten(1, (256, 7, 7)),                                          # 3
        nn.ConvTranspose2d(256, 128, 5, stride=1, padding=2, bias=False), bn2(128), lr(),  # 4 5 6
        nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1, bias=False),  # 7
        bn2(64), lr(),                                                         # 8 9
        nn.ConvTranspose2d(64, 1, 5, stride=2, padding=2, output_padding=1, bias=False),  # 10
        nn.Tanh())                                                             # 11
    D = nn.Sequential(
        nn.Conv2d(1, 64, 5, stride=2, padding=2), lr(), nn.Dropout(0.3),       # 0 1 2
        nn.Conv2d(64, 128, 5, stride=2, padding=2), lr(), nn.Dropout(0.3),     # 3 4 5
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1))                               # 6 7
    for m in list(G) + list(D):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight); nn.init.zeros_(m.bias)
    return G, D


def describe(G, D):
    for name, net in (("generator", G), ("discriminator", D)):
        p = sum(t.numel() for t in net.parameters())
        b = sum(t.numel() for t in net.buffers() if t.dtype.is_floating_point)
        print(f"{name}: params={p} float_buffers={b}")
        for k, v in net.state_dict().items():
            print(f"  {k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}")


def state(net):
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def write_samples(G, dev, n, path, grid):
    G.eval()
    out = np.empty((n, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        for s in range(0, n, 1000):
            k = min(1000, n - s)
            x = G(torch.randn(k, NZ, device=dev)).reshape(k, 28, 28)
            out[s:s + k] = torch.round((x + 1) / 2 * 255).clamp_(0, 255).to(torch.uint8).cpu().numpy()
    G.train()
    if path:
        np.save(path, np.ascontiguousarray(out))
        print(f"wrote {path}: {out.shape} {out.dtype}")
    if grid:
        m = min(100, n) // 10 * 10
        if m == 0:
            print(f"--out-grid: fewer than 10 samples, {grid} not written", file=sys.stderr)
            return
        img = out[:m].reshape(m // 10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(m // 10 * 28, 280)
        try:
            from PIL import Image
            Image.fromarray(img, mode="L").save(grid)
        except ImportError:
            try:
                import matplotlib
                matplotlib.use("Agg")
                import matplotlib.pyplot as plt
                plt.imsave(grid, img, cmap="gray", vmin=0, vmax=255)
            except ImportError:
                print(f"--out-grid: neither PIL nor matplotlib is installed, {grid} not written",
                      file=sys.stderr)
                return
        print(f"wrote {grid}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", "--mnist", dest="data", default=os.path.join(HERE, "..", "data", "mnist"),
                    help="folder with train-images-idx3-ubyte[.gz] (default: data/mnist in the repo)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200, help="timed steps (timing mode)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps before the timed ones")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--tf32", default="off", choices=["off", "on"], help="TF32 matmul/cuDNN on CUDA")
    ap.add_argument("--cudnn-benchmark", default="off", choices=["off", "on"])
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--adam-eps", type=float, default=1e-8)
    ap.add_argument("--epochs", type=int, default=0, help="train E shuffled epochs instead of timing")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--samples", type=int, default=10000, help="images written by --out-samples")
    ap.add_argument("--out-samples", default="", help="write generated images as uint8 (N, 28, 28) .npy")
    ap.add_argument("--out-grid", default="", help="write a 10x10 grid of the samples as PNG")
    ap.add_argument("--save-state", default="", help="torch.save {'generator': ..., 'discriminator': ...}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--describe", action="store_true", help="print parameter counts and state_dict, exit")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.epochs < 0:
        ap.error("--steps and --batch must be at least 1, --warmup and --epochs at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    tf32 = args.tf32 == "on"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    torch.manual_seed(args.seed)
    G, D = models()
    if args.describe:
        describe(G, D)
        return

    x = read_idx(find(args.data, "train-images"))
    if args.limit:
        x = x[:args.limit]
    B = args.batch
    if x.shape[0] < B:
        sys.exit(f"{x.shape[0]} training images, fewer than one batch of {B}")
    X = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0).reshape(-1, 1, 28, 28).to(dev)
    G, D = G.to(dev), D.to(dev)
    fused = dev.type == "cuda"
    betas = (0.9, 0.999)
    oG = torch.optim.Adam(G.parameters(), lr=args.lr, betas=betas, eps=args.adam_eps, fused=fused)
    oD = torch.optim.Adam(D.parameters(), lr=args.lr, betas=betas, eps=args.adam_eps, fused=fused)
    bce = F.binary_cross_entropy_with_logits
    ones = torch.ones(B, 1, device=dev)
    zeros = torch.zeros(B, 1, device=dev)

    def step(real):
        with torch.no_grad():
            fake = G(torch.randn(B, NZ, device=dev))
        lossD = bce(D(real), ones) + bce(D(fake), zeros)
        oD.zero_grad(set_to_none=True); lossD.backward(); oD.step()
        lossG = bce(D(G(torch.randn(B, NZ, device=dev))), ones)
        oG.zero_grad(set_to_none=True); lossG.backward(); oG.step()
        return lossD, lossG

    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    header = (f"torch {torch.__version__} device={dev} model=dcgan batch={B} threads={torch.get_num_threads()} "
              f"compile=False tf32={args.tf32}")

    if args.epochs:
        n = X.shape[0]
        nG = sum(t.numel() for t in G.parameters()); nD = sum(t.numel() for t in D.parameters())
        print(f"{header} images={n} steps/epoch={n // B} params G={nG} D={nD}", flush=True)
        steps = 0
        t = time.perf_counter()
        for e in range(args.epochs):
            perm = torch.randperm(n, device=dev)
            for i in range(n // B):
                lossD, lossG = step(X[perm[i * B:(i + 1) * B]])
                steps += 1
            print(f"epoch {e} lossD={lossD.item():.4f} lossG={lossG.item():.4f} t={time.perf_counter()-t:.1f}s",
                  flush=True)
        sync()
        dt = time.perf_counter() - t
        if args.save_state:
            torch.save({"generator": state(G), "discriminator": state(D)}, args.save_state)
            print(f"wrote {args.save_state}")
        if args.out_samples or args.out_grid:
            write_samples(G, dev, args.samples, args.out_samples, args.out_grid)
        print(f"steps={steps} ms/step={1000*dt/steps:.3f} steps/s={steps/dt:.1f} "
              f"lossD={lossD.item():.4f} lossG={lossG.item():.4f}")
        return

    def batch():
        return X[torch.randint(0, X.shape[0], (B,), device=dev)]

    for _ in range(args.warmup):
        step(batch())
    sync()
    t = time.perf_counter()
    for _ in range(args.steps):
        lD, lG = step(batch())
    sync()
    dt = time.perf_counter() - t
    if args.save_state:
        torch.save({"generator": state(G), "discriminator": state(D)}, args.save_state)
    print(header)
    print(f"steps={args.steps} ms/step={1000*dt/args.steps:.3f} steps/s={args.steps/dt:.1f} "
          f"lossD={lD.item():.4f} lossG={lG.item():.4f}")


if __name__ == "__main__":
    main()
