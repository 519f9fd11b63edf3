"""Independent reference for checkpoint import/export: PyTorch definitions of the three
architectures as their public sources write them (Kuang Liu's ResNet-18; PreActResNet-18 as
Wong et al. 2020 / RobustBench; RobustBench's WideResNet), checkpoints written the ways
researchers write them, and the logits / input gradients PyTorch computes.
Used by tests/pytorch-import.test.ts.

usage:
  python3 torch_checkpoints.py make <dir> '<spec json>'
      writes <dir>/ckpt (the checkpoint), <dir>/x.bin (float32 NHWC images in [0,1]),
      <dir>/out.json {logits, grad (dCE/dx, NHWC), labels}
  python3 torch_checkpoints.py check <dir> <file> '<spec json>'
      loads <file> (torch.load or safetensors) into the spec's model with strict=True and
      writes <dir>/check.json {logits} for <dir>/x.bin
spec: {arch, width, depth, numClasses, finalBn, preactShortcut, buffers, wrapper, extras,
       dtype, format, seed, batch}
"""
import collections
import copy
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):  # Kuang Liu
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):  # RobustBench PreActBlock (shortcut_on 'input') / PreActBlockV2 ('preact')
    def __init__(self, cin, cout, stride, shortcut_on):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut_on = shortcut_on
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out if self.shortcut_on == 'preact' else x) if hasattr(self, 'shortcut') else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


def widths(width):
    return [max(1, round(b * width)) for b in (64, 128, 256, 512)]


class ResNet18(nn.Module):
    def __init__(self, s):
        super().__init__()
        w = widths(s['width'])
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        cin, layers = w[0], []
        for c, st in zip(w, (1, 2, 2, 2)):
            blocks = []
            for stride in (st, 1):
                blocks.append(BasicBlock(cin, c, stride))
                cin = c
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(w[3], s['numClasses'])

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


class PreActResNet18(nn.Module):
    def __init__(self, s):
        super().__init__()
        w = widths(s['width'])
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        cin, layers = w[0], []
        for c, st in zip(w, (1, 2, 2, 2)):
            blocks = []
            for stride in (st, 1):
                blocks.append(PreActBlock(cin, c, stride, s.get('preactShortcut', 'preact')))
                cin = c
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.final_bn = s.get('finalBn', True)
        if self.final_bn:
            self.bn = nn.BatchNorm2d(w[3])
        self.linear = nn.Linear(w[3], s['numClasses'])

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.final_bn:
            out = F.relu(self.bn(out))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


class WRNBlock(nn.Module):  # RobustBench wide_resnet.BasicBlock
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equalInOut = cin == cout
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(cin, cout, 1, stride, 0, bias=False) or None

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WRNBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, s):
        super().__init__()
        k, n = s['width'], (s['depth'] - 4) // 6
        ch = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        if s.get('subBlock1'):
            self.sub_block1 = NetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], s['numClasses'])

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(F.avg_pool2d(out, 8).flatten(1))


class Normalized(nn.Module):
    """mu/sigma buffers at top level, as RobustBench-style models hold them."""

    def __init__(self, inner, mean, std):
        super().__init__()
        self.register_buffer('mu', torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('sigma', torch.tensor(std).view(1, 3, 1, 1))
        self.inner = inner

    def forward(self, x):
        return self.inner((x - self.mu) / self.sigma)

    def state_dict(self, *a, **k):
        sd = collections.OrderedDict([('mu', self.mu), ('sigma', self.sigma)])
        for key, v in self.inner.state_dict().items():
            sd[key] = v
        return sd

    def load_state_dict(self, sd, strict=True):
        sd = collections.OrderedDict(sd)
        self.mu.copy_(sd.pop('mu'))
        self.sigma.copy_(sd.pop('sigma'))
        return self.inner.load_state_dict(sd, strict=strict)


CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]


def build(s):
    inner = {'resnet18': ResNet18, 'preact-resnet18': PreActResNet18, 'wide-resnet': WideResNet}[s['arch']](s)
    if s.get('buffers'):
        return Normalized(inner, s.get('mean', [0.5, 0.4, 0.3]), s.get('std', [0.2, 0.25, 0.3]))
    return inner


def preprocess(s, x):
    """Inputs as the model expects them: CIFAR-normalised outside the model for 'cifar10', else raw."""
    if s.get('normalization') == 'cifar10':
        return (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return x


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(7)


def write_safetensors(path, sd):
    codes = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64', torch.float64: 'F64'}
    header, blobs, off = {'__metadata__': {'format': 'pt'}}, [], 0
    for k, v in sd.items():
        v = v.detach().contiguous()
        raw = (v.view(torch.int16) if v.dtype == torch.bfloat16 else v).numpy().tobytes()
        header[k] = {'dtype': codes[v.dtype], 'shape': list(v.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def read_safetensors(path):
    dt = {'F32': torch.float32, 'I64': torch.int64, 'F16': torch.float16}
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = collections.OrderedDict()
    for k, v in header.items():
        if k == '__metadata__':
            continue
        b, e = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(body[b:e]), dtype=dt[v['dtype']]).reshape(v['shape']).clone()
    return out


def images(d, s):
    g = torch.Generator().manual_seed(s.get('seed', 0) + 1)
    x = torch.rand((s.get('batch', 4), 3, 32, 32), generator=g)
    x.permute(0, 2, 3, 1).contiguous().numpy().astype('<f4').tofile(f'{d}/x.bin')
    return x


def make(d, s):
    torch.manual_seed(s.get('seed', 0))
    model = build(s)
    randomize(model, s.get('seed', 0))
    dtype = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}[s.get('dtype', 'float32')]
    sd = collections.OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items())
    # The reference is the model with the weights as stored (rounded to dtype, computed in float32).
    model.load_state_dict(collections.OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in sd.items()))
    if s.get('noncontiguous'):
        # Saved as a transposed view (stride (1, out)): the reader must honour strides.
        sd['linear.weight'] = sd['linear.weight'].t().contiguous().t()
    wrapper = s.get('wrapper', 'none')
    if wrapper == 'module':
        sd = collections.OrderedDict(('module.' + k, v) for k, v in sd.items())
    elif wrapper == 'model':
        sd = collections.OrderedDict(('model.' + k, v) for k, v in sd.items())
    obj = sd
    if s.get('key'):
        obj = {s['key']: sd}
        if s.get('extras'):
            # The optimizer state comes from a copy: stepping must not change the weights saved above.
            other = copy.deepcopy(model)
            opt = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
            other(preprocess(s, torch.rand(2, 3, 32, 32))).sum().backward()
            opt.step()
            obj.update({'epoch': 110, 'acc': np.float64(0.5312), 'optimizer': opt.state_dict()})
    fmt = s.get('format', 'zip')
    if fmt == 'safetensors':
        write_safetensors(f'{d}/ckpt', sd)
    else:
        torch.save(obj, f'{d}/ckpt', _use_new_zipfile_serialization=(fmt == 'zip'))
    model.eval()
    x = images(d, s).requires_grad_(True)
    logits = model(preprocess(s, x))
    labels = torch.arange(x.shape[0]) % s['numClasses']
    F.cross_entropy(logits, labels, reduction='sum').backward()
    json.dump({
        'logits': logits.detach().flatten().tolist(),
        'grad': x.grad.permute(0, 2, 3, 1).flatten().tolist(),
        'labels': labels.tolist(),
        'numParams': sum(p.numel() for p in model.parameters()),
    }, open(f'{d}/out.json', 'w'))


def check(d, file, s):
    model = build(s)
    if file.endswith('.safetensors'):
        sd = read_safetensors(file)
    else:
        sd = torch.load(file, weights_only=True)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.from_numpy(np.fromfile(f'{d}/x.bin', dtype='<f4').reshape(-1, 32, 32, 3)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(preprocess(s, x))
    json.dump({'logits': logits.flatten().tolist(), 'keys': list(sd.keys())[:3]}, open(f'{d}/check.json', 'w'))


if __name__ == '__main__':
    torch.set_num_threads(1)
    if sys.argv[1] == 'make':
        make(sys.argv[2], json.loads(sys.argv[3]))
    elif sys.argv[1] == 'check':
        check(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    else:
        sys.exit(f'unknown command {sys.argv[1]}')
