"""The PyTorch peer with CUDA graphs: torch_gan.py's training step, captured once and replayed.

Usage: python torch_gan_graphs.py --mnist DIR [--model vanilla|deep] [--batch N] [--steps N]
                                  [--steps-per-graph K] [--torch-gan DIR]

It imports the models from ../shared/bench/torch_gan.py (or --torch-gan DIR) so
both peers train exactly the same networks, and runs the same step: batch
sampling with randint, noise with randn, the D step and the G step with fused,
capturable Adam. The whole step (K steps with --steps-per-graph K) is captured
into one CUDA graph after a warm-up on a side stream, as in PyTorch's
"whole network capture" recipe, and the timed loop only replays the graph.
Prints the same two lines as torch_gan.py, with compile=cudagraph.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", required=True)
    ap.add_argument("--model", default="vanilla", choices=["vanilla", "deep"])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--steps-per-graph", type=int, default=1)
    ap.add_argument("--torch-gan", default=os.environ.get("TORCH_GAN_DIR", "/work/shared/bench"))
    args = ap.parse_args()
    sys.path.insert(0, args.torch_gan)
    import torch_gan

    dev = torch.device("cuda")
    torch.manual_seed(0)
    x = torch_gan.read_idx(torch_gan.find(args.mnist, "train-images")).reshape(-1, 784).astype(np.float32) / 255.0
    G, D, nz, betas = torch_gan.models(args.model)
    if args.model == "deep":
        x = x * 2 - 1
    X = torch.from_numpy(x).to(dev)
    G, D = G.to(dev), D.to(dev)
    oG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=betas, fused=True, capturable=True)
    oD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=betas, fused=True, capturable=True)
    B = args.batch
    eps = 1e-8
    smooth = 0.9 if args.model == "deep" else 1.0
    losses = torch.zeros(2, device=dev)

    def step():
        idx = torch.randint(0, X.shape[0], (B,), device=dev)
        real = X[idx]
        z = torch.randn(B, nz, device=dev)
        fake = G(z)
        lossD = -(smooth * torch.log(D(real) + eps) + torch.log(1 - D(fake.detach()) + eps)).mean()
        oD.zero_grad(set_to_none=False)
        lossD.backward()
        oD.step()
        z = torch.randn(B, nz, device=dev)
        lossG = -torch.log(D(G(z)) + eps).mean()
        oG.zero_grad(set_to_none=False)
        lossG.backward()
        oG.step()
        losses[0].copy_(lossD.detach())
        losses[1].copy_(lossG.detach())

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(20):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(args.steps_per_graph):
            step()
    for _ in range(20):
        graph.replay()
    torch.cuda.synchronize()
    replays = max(1, args.steps // args.steps_per_graph)
    steps = replays * args.steps_per_graph
    t = time.perf_counter()
    for _ in range(replays):
        graph.replay()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    lD, lG = losses.tolist()
    print(f"torch {torch.__version__} device={dev} model={args.model} batch={B} "
          f"compile=cudagraph steps_per_graph={args.steps_per_graph}")
    print(f"steps={steps} ms/step={1000 * dt / steps:.3f} steps/s={steps / dt:.1f} lossD={lD:.4f} lossG={lG:.4f}")


if __name__ == "__main__":
    main()
