"""Checks a gan-gpu checkpoint with Python's `safetensors` library, the way a
PyTorch user would read it (optional; CI does not run it).

    pip install safetensors numpy
    gan-gpu train --backend cpu --max-steps 20 --out /tmp/run
    python3 tests/python/check_checkpoint.py /tmp/run/checkpoint.safetensors

It loads every tensor, rebuilds the nn.Sequential module lists from the
`architecture` metadata (Linear, then the activation module unless identity,
then Dropout if p > 0), and checks that the Linear layers' state_dict keys and
shapes are exactly the file's `generator.*` / `discriminator.*` tensors, that
Adam's moments mirror them, and that a NumPy forward pass of the generator
gives images in its output range. If torch is installed it also builds the
real nn.Sequential and calls load_state_dict(strict=True).
"""

import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def modules(layers):
    """(index, kind, layer) for every module of the nn.Sequential."""
    out, i = [], 0
    for layer in layers:
        out.append((i, "Linear", layer))
        i += 1
        if layer["activation"] != "Identity":
            out.append((i, layer["activation"], layer))
            i += 1
        if layer["dropout"] > 0:
            out.append((i, "Dropout", layer))
            i += 1
    return out


def activation(name, x):
    if name == "Relu":
        return np.maximum(x, 0)
    if name.startswith("LeakyRelu"):
        slope = float(name[len("LeakyRelu("):-1])
        return np.where(x > 0, x, slope * x)
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "Tanh":
        return np.tanh(x)
    return x


def main(path):
    tensors = load_file(path)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "gan-gpu checkpoint", meta.get("format")
    assert int(meta["format_version"]) >= 1
    settings = json.loads(meta["settings"])
    arch = json.loads(meta["architecture"])
    clock = json.loads(meta["clock"])
    assert int(meta["step"]) == clock["step"]
    print(f"model {settings['model']}, epoch {meta['epoch']}, clock {clock}")

    expected = {}
    for net in ("generator", "discriminator"):
        for index, kind, layer in modules(arch[net]):
            if kind != "Linear":
                continue
            assert index == layer["module"], (net, index, layer)
            expected[f"{net}.{index}.weight"] = (layer["out"], layer["in"])
            expected[f"{net}.{index}.bias"] = (layer["out"],)
    params = {k: v for k, v in tensors.items() if k.startswith(("generator.", "discriminator."))}
    assert set(params) == set(expected), sorted(set(params) ^ set(expected))
    for name, shape in expected.items():
        t = tensors[name]
        assert t.shape == shape and t.dtype == np.float32, (name, t.shape, t.dtype)
        for moment in ("exp_avg", "exp_avg_sq"):
            net, rest = name.split(".", 1)
            m = tensors[f"optimizer.{net}.{moment}.{rest}"]
            assert m.shape == shape, (moment, name, m.shape)
        assert np.isfinite(t).all(), name
    assert tensors["train.epoch_stats"].shape == (4,)

    # A NumPy forward pass of the generator (eval mode: no dropout).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, arch["generator"][0]["in"])).astype(np.float32)
    for index, kind, layer in modules(arch["generator"]):
        if kind == "Linear":
            x = x @ tensors[f"generator.{index}.weight"].T + tensors[f"generator.{index}.bias"]
        elif kind != "Dropout":
            x = activation(kind, x)
    assert x.shape == (4, 784), x.shape
    pixels = (x - arch["pixel_shift"]) / arch["pixel_scale"]
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3, (pixels.min(), pixels.max())
    print(f"{len(tensors)} tensors, names and shapes as nn.Sequential; generator forward OK")

    try:
        import torch
        from torch import nn
    except ImportError:
        print("torch not installed: skipped load_state_dict")
        return
    from safetensors.torch import load_file as load_torch

    def build(layers):
        mods = []
        for _, kind, layer in modules(layers):
            if kind == "Linear":
                mods.append(nn.Linear(layer["in"], layer["out"]))
            elif kind == "Dropout":
                mods.append(nn.Dropout(layer["dropout"]))
            elif kind == "Relu":
                mods.append(nn.ReLU())
            elif kind.startswith("LeakyRelu"):
                mods.append(nn.LeakyReLU(float(kind[len("LeakyRelu("):-1])))
            elif kind == "Sigmoid":
                mods.append(nn.Sigmoid())
            elif kind == "Tanh":
                mods.append(nn.Tanh())
        return nn.Sequential(*mods)

    state = load_torch(path)
    for net in ("generator", "discriminator"):
        model = build(arch[net])
        prefix = net + "."
        model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    print("torch: load_state_dict(strict=True) OK for both networks")


if __name__ == "__main__":
    main(sys.argv[1])
