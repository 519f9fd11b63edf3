"""PyTorch CPU yardstick for `npm run bench`: the same CIFAR ResNet-18 (Kuang Liu's, from
tests/reference/torch_resnet.py), the same tasks and batch sizes, the same thread count.

usage: python3 bench_torch.py '{"widths": [1, 0.25], "batches": [128], "threads": 2,
                               "iterations": 5, "warmup": 1, "maxSeconds": 30, "profile": false}'
Prints one JSON object: {"torch": version, "threads": n, "results": [...]}. With "profile": true each
result also holds "profile": the torch.profiler self CPU time per aten op and step (the breakdown
`npm run bench -- --ops` prints beside ours), measured in separate steps after the timed ones.
Run it with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_/MALLOC_TOP_PAD_ set (bench.ts does),
otherwise glibc returns large activations to the OS every step and timings are erratic.
"""
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests', 'reference'))
from torch_resnet import ResNet18  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2471, 0.2435, 0.2616)


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg['threads'])
    torch.manual_seed(0)
    results = []
    for width in cfg['widths']:
        for batch in cfg['batches']:
            model = ResNet18(width, 10, MEAN, STD)
            x = torch.rand(batch, 3, 32, 32)  # NCHW: PyTorch's native CPU layout
            y = torch.arange(batch) % 10
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

            def inference():
                model.eval()
                with torch.no_grad():
                    model(x)

            def pgd_step():
                model.eval()
                for p in model.parameters():
                    p.requires_grad_(False)
                xa = x.clone().requires_grad_(True)
                loss = F.cross_entropy(model(xa), y)
                (g,) = torch.autograd.grad(loss, xa)
                (xa.detach() + 2 / 255 * g.sign()).clamp_(0, 1)
                for p in model.parameters():
                    p.requires_grad_(True)

            def train_step():
                model.train()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()

            for name, fn in (('inference', inference), ('pgd-step', pgd_step), ('train-step', train_step)):
                for _ in range(cfg['warmup']):
                    fn()
                times = []
                start = time.perf_counter()
                for _ in range(cfg['iterations']):
                    t0 = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t0)
                    if time.perf_counter() - start > cfg['maxSeconds']:
                        break
                med = statistics.median(times)
                row = {
                    'task': name, 'width': width, 'batchSize': batch, 'imagesPerSecond': batch / med, 'times': times,
                    'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
                if cfg.get('profile'):
                    row['profile'] = profile(fn, cfg.get('repetitions', 3))
                results.append(row)
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'results': results}))


def profile(fn, repetitions):
    """Self CPU time (ms) and calls per step of every aten op over `repetitions` steps, and the profiled wall time per step."""
    from torch.profiler import profile as tprofile, ProfilerActivity
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(repetitions):
            fn()
        wall = (time.perf_counter() - t0) / repetitions
    ops = [{'op': e.key, 'calls': e.count / repetitions, 'ms': e.self_cpu_time_total / 1000 / repetitions}
           for e in prof.key_averages() if e.self_cpu_time_total > 0]
    ops.sort(key=lambda o: -o['ms'])
    return {'repetitions': repetitions, 'totalMs': wall * 1000, 'ops': ops}


if __name__ == '__main__':
    main()
