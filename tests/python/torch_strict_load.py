"""Loads checkpoints of the three MLP models into PyTorch nn.Sequential
modules with load_state_dict(strict=True).

Usage: python tests/python/torch_strict_load.py ROOT, where ROOT/<model>/checkpoint.safetensors
exist for vanilla, conditional and deep at their default settings. Needs torch and safetensors.
"""
import sys, torch, torch.nn as nn
from safetensors.torch import load_file
def mlp(sizes, hidden_act, out_act, dropout=()):
    layers=[]
    for i,(a,b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a,b))
        last = i == len(sizes)-2
        act = out_act if last else hidden_act
        if act is not None: layers.append(act())
        if not last and i < len(dropout) and dropout[i] > 0: layers.append(nn.Dropout(dropout[i]))
    return nn.Sequential(*layers)
lrelu = lambda: nn.LeakyReLU(0.2)
models = {
 'vanilla': (mlp([128,256,784], nn.ReLU, nn.Sigmoid), mlp([784,256,1], nn.ReLU, None)),
 'conditional': (mlp([138,256,784], nn.ReLU, nn.Sigmoid), mlp([794,256,1], nn.ReLU, None)),
 'deep': (mlp([100,256,512,1024,784], lrelu, nn.Tanh), mlp([784,1024,512,256,1], lrelu, None, dropout=(0.3,0.3))),
}
root = sys.argv[1]
for name,(g,d) in models.items():
    sd = load_file(f'{root}/{name}/checkpoint.safetensors')
    for prefix, net in [('generator', g), ('discriminator', d)]:
        sub = {k[len(prefix)+1:]: v for k, v in sd.items() if k.startswith(prefix + '.')}
        net.load_state_dict(sub, strict=True)
    z = torch.zeros(1, g[0].in_features)
    print(name, 'strict load ok', sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters()), tuple(g(z).shape))
