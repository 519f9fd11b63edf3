"""Independent reference: Kuang Liu's CIFAR ResNet-18 in PyTorch, fed the same weights and
inputs as the TypeScript model. Used by tests/pytorch-reference.test.ts.

usage: python3 torch_resnet.py <dir>
<dir>/spec.json: {width, numClasses, mean, std, tensors: [{key, shape, offset, length}],
                  batch, labels, gradKeys}
<dir>/state.bin: float32 LE state in the TS layout (conv HWIO, linear [in,out]).
<dir>/x.bin:     float32 LE images NHWC in [0,1].
Writes <dir>/out.json.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNet18(nn.Module):
    def __init__(self, width, num_classes, mean, std):
        super().__init__()
        w = lambda b: max(1, round(b * width))
        self.register_buffer('mu', torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('sigma', torch.tensor(std).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, w(64), 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w(64))
        self.in_planes = w(64)
        self.layer1 = self._make(w(64), 1)
        self.layer2 = self._make(w(128), 2)
        self.layer3 = self._make(w(256), 2)
        self.layer4 = self._make(w(512), 2)
        self.linear = nn.Linear(w(512), num_classes)

    def _make(self, planes, stride):
        layers = []
        for s in [stride, 1]:
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        x = (x - self.mu) / self.sigma
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4).flatten(1)
        return self.linear(out)


def to_torch_layout(key, arr):
    if arr.ndim == 4:  # HWIO -> OIHW
        return arr.transpose(3, 2, 0, 1)
    if key == 'linear.weight':  # [in,out] -> [out,in]
        return arr.T
    return arr


def to_ts_layout(key, arr):
    if arr.ndim == 4:
        return arr.transpose(2, 3, 1, 0)
    if key == 'linear.weight':
        return arr.T
    return arr


def main():
    d = sys.argv[1]
    spec = json.load(open(f'{d}/spec.json'))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ResNet18(spec['width'], spec['numClasses'], spec['mean'], spec['std'])
    raw = np.fromfile(f'{d}/state.bin', dtype='<f4')
    sd = model.state_dict()
    for t in spec['tensors']:
        a = raw[t['offset'] // 4: t['offset'] // 4 + t['length']].reshape(t['shape'])
        sd[t['key']].copy_(torch.from_numpy(np.ascontiguousarray(to_torch_layout(t['key'], a))))
    b = spec['batch']
    x = torch.from_numpy(np.fromfile(f'{d}/x.bin', dtype='<f4').reshape(b, 32, 32, 3)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(spec['labels'], dtype=torch.long)
    out = {}

    model.eval()
    out['evalLogits'] = model(x).detach().numpy().ravel().tolist()
    xg = x.clone().requires_grad_(True)
    F.cross_entropy(model(xg), y).backward()
    out['inputGrad'] = xg.grad.permute(0, 2, 3, 1).numpy().ravel().tolist()  # back to NHWC
    model.zero_grad()

    model.train()
    logits = model(x)
    out['trainLogits'] = logits.detach().numpy().ravel().tolist()
    F.cross_entropy(logits, y).backward()
    params = dict(model.named_parameters())
    out['grads'] = {k: to_ts_layout(k, params[k].grad.numpy()).ravel().tolist() for k in spec['gradKeys']}
    sd = model.state_dict()
    out['runningStats'] = {k: sd[k].numpy().ravel().tolist() for k in spec['statKeys']}
    # One SGD step as RiFT/PGD-AT configure it.
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt.step()
    out['afterStep'] = {k: to_ts_layout(k, params[k].detach().numpy()).ravel().tolist() for k in spec['gradKeys']}
    json.dump(out, open(f'{d}/out.json', 'w'))


if __name__ == '__main__':
    main()
