/**
 * FAB-T (lib/src/attacks/fab.ts): the eps-ball contract, the L∞ projection against hand cases,
 * an independent optimality certificate and the reference's own `projection_linf` (PyTorch),
 * the exact boundary distance of a linear model, and the attack against a PyTorch transcription
 * of the reference's targeted L∞ loop. The PyTorch checks skip when torch is not importable,
 * unless RIFT_REQUIRE_TORCH=1.
 */
import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18, type Classifier } from '../lib/src/nn/model.js';
import { correctMask } from '../lib/src/nn/losses.js';
import { fabTargeted, projectionLinf, DEFAULT_FAB } from '../lib/src/attacks/fab.js';
import { mulberry32 } from '../lib/src/util/rng.js';
import { testEngine, randImages, assertNoLeak, PYTHON, torchSkip, tempDir, assertStateUnchanged, ownLabels } from './helpers.js';

before(testEngine);

const torchSkipped = torchSkip();

/** Per-example L∞ distance of two [b,…] tensors. */
function linfRows(a: tf.Tensor, c: tf.Tensor): number[] {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, c)).reshape([a.shape[0], -1]), 1).arraySync() as number[]);
}

/** logits = flatten(x)·W + c, W [3072,k]; `dispose()` frees W and c. */
function linearModel(W: Float32Array, c: Float32Array): Classifier & { dispose(): void } {
  const k = c.length;
  const Wt = tf.tensor2d(W, [W.length / k, k]);
  const ct = tf.tensor1d(c);
  return {
    forward: (x: tf.Tensor4D) => tf.tidy(() => tf.add(tf.matMul(tf.reshape(x, [x.shape[0], -1]), Wt), ct) as tf.Tensor2D),
    dispose: () => tf.dispose([Wt, ct]),
  };
}

/**
 * The least λ with b in the range of w·z over the box {z ∈ [0,1]^d : ‖z − t‖∞ ≤ λ}, by bisection
 * on λ (that range is an interval computed coordinate by coordinate); Infinity when b is outside
 * the range of the whole box [0,1]^d. Independent of projectionLinf's sort and binary search.
 */
function minLinfToHyperplane(t: ArrayLike<number>, w: ArrayLike<number>, b: number): number {
  const range = (lambda: number) => {
    let lo = 0, hi = 0;
    for (let i = 0; i < t.length; i++) {
      const zl = Math.max(0, t[i] - lambda), zh = Math.min(1, t[i] + lambda);
      lo += Math.min(w[i] * zl, w[i] * zh);
      hi += Math.max(w[i] * zl, w[i] * zh);
    }
    return [lo, hi];
  };
  const within = (lambda: number) => { const [lo, hi] = range(lambda); return lo <= b && b <= hi; };
  if (!within(1)) return Infinity;
  let lo = 0, hi = 1;
  for (let i = 0; i < 200; i++) { const mid = (lo + hi) / 2; if (within(mid)) hi = mid; else lo = mid; }
  return hi;
}

test('FAB-T points lie in the eps-ball and [0,1]; returned adversarial points are misclassified, the rest equal x; pure', async () => {
  const m = createResNet18({ width: 0.125 }, 21);
  const b = 5;
  const x = randImages(b, 21);
  // Labels = the clean predictions (so the attack has work), except the last, which is wrong:
  // a clean-misclassified example must come back as x, unattacked.
  const pred = tf.tidy(() => tf.argMax(m.forward(x, { training: false }), 1).arraySync() as number[]);
  pred[b - 1] = (pred[b - 1] + 1) % 10;
  const y = tf.tensor1d(pred, 'int32');
  try {
    const snap = m.snapshot();
    // At 2/255 this model is fooled on some attackable examples, not all (their distances: ~0.6–4.6/255).
    const eps = 2 / 255;
    const xa = fabTargeted(m, x, y, { eps, steps: 10, targets: 3 });
    assert.deepEqual(xa.shape, x.shape);
    const dist = linfRows(xa, x);
    const [lo, hi] = tf.tidy(() => [tf.min(xa).dataSync()[0], tf.max(xa).dataSync()[0]]);
    assert.ok(lo >= 0 && hi <= 1, `range ${lo}..${hi}`);
    const correct = tf.tidy(() => correctMask(m.forward(xa, { training: false }), y));
    let fooled = 0;
    for (let i = 0; i < b; i++) {
      assert.ok(dist[i] <= eps + 1e-6, `example ${i}: L∞ ${dist[i]} > eps ${eps}`);
      if (dist[i] > 0) { fooled++; assert.equal(correct[i], 0, `example ${i} moved (L∞ ${dist[i]}) but is still classified as ${pred[i]}`); }
    }
    assert.equal(dist[b - 1], 0, 'the clean-misclassified example was attacked');
    assert.ok(fooled >= 1 && fooled <= b - 2, `fooled ${fooled} of ${b - 1} attackable examples (want some, not all: both checks non-vacuous)`);
    // Examples not fooled are x itself, bit for bit.
    const xv = x.dataSync(), av = xa.dataSync(), dim = 32 * 32 * 3;
    for (let i = 0; i < b; i++) if (dist[i] === 0) for (let j = i * dim; j < (i + 1) * dim; j++) assert.equal(av[j], xv[j]);
    xa.dispose();
    assertStateUnchanged(m, snap);
    await assertNoLeak('fabTargeted', () => tf.dispose(fabTargeted(m, x, y, { eps, steps: 2, targets: 2, restarts: 2 })));
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});

test('projectionLinf: hand-computed cases, including the reference\'s infeasible case (the closest box corner)', () => {
  const close = (got: Float64Array, want: number[], what: string) =>
    want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 1e-12, `${what}: d = [${[...got]}], want [${want}]`));
  // w·t = 1.5 ≥ b = 0: both coordinates go down; 3λ = 1.5 → λ = 0.5 (both reach 0).
  close(projectionLinf([0.5, 0.5], [1, 2], [0], 2), [-0.5, -0.5], 'both at the face');
  // w·t = −0.4 < b = 0.2: flipped; coordinate 0 goes up, 1 down; 2λ = 0.6 → λ = 0.3.
  close(projectionLinf([0.5, 0.9], [1, -1], [0.2], 2), [0.3, -0.3], 'sign flip');
  // Coordinate 0 reaches its face at 0.1; then 0.1 + λ = 0.4 → λ = 0.3.
  close(projectionLinf([0.1, 0.5], [1, 1], [0.2], 2), [-0.1, -0.3], 'one at the face');
  // A zero weight never moves, even when its room is the smallest (the reference's binary-search branch).
  close(projectionLinf([0.5, 0.5, 0.01], [1, 1, 0], [0.9], 3), [-0.05, -0.05, 0], 'zero weight');
  // Infeasible: w·z ≥ 0 on the box but b = −1: the corner that comes closest (z = 0).
  close(projectionLinf([0.5, 0.5, 0.3], [1, 1, 0], [-1], 3), [-0.5, -0.5, 0], 'infeasible');
  // Exactly the corner's value: the same corner.
  close(projectionLinf([0.5, 0.5], [1, 1], [0], 2), [-0.5, -0.5], 'corner');
  // Already on the hyperplane: no step.
  close(projectionLinf([0.2, 0.7], [1, 1], [0.9], 2), [0, 0], 'on the plane');
  // Rows are independent.
  close(projectionLinf([0.5, 0.5, 0.5, 0.9], [1, 2, 1, -1], [0, 0.2], 2), [-0.5, -0.5, 0.3, -0.3], 'two rows');
  assert.throws(() => projectionLinf([0.5], [1, 1], [0], 2), /projectionLinf/);
});

test('projectionLinf: feasible, inside the box and of least L∞ norm on random small cases (independent bisection)', () => {
  const r = mulberry32(5);
  let feasible = 0, infeasible = 0;
  for (let c = 0; c < 400; c++) {
    const dim = 4 + (c % 3);
    const t = Array.from({ length: dim }, () => (r() < 0.15 ? (r() < 0.5 ? 0 : 1) : r()));
    const w = Array.from({ length: dim }, () => (r() < 0.15 ? 0 : r() * 4 - 2));
    const wt = w.reduce((s, wi, i) => s + wi * t[i], 0);
    const b = wt + (r() * 2 - 1) * (c % 4 === 0 ? 4 : 1);
    const d = projectionLinf(t, w, [b], dim);
    const z = t.map((ti, i) => ti + d[i]);
    for (let i = 0; i < dim; i++) {
      assert.ok(z[i] >= -1e-12 && z[i] <= 1 + 1e-12, `case ${c}: z ${z} leaves the box`);
      if (w[i] === 0) assert.ok(d[i] === 0, `case ${c}: a zero weight moved`);
    }
    const norm = Math.max(...d.map(Math.abs));
    const lambda = minLinfToHyperplane(t, w, b);
    if (Number.isFinite(lambda)) {
      feasible++;
      const wz = w.reduce((s, wi, i) => s + wi * z[i], 0);
      assert.ok(Math.abs(wz - b) < 1e-5, `case ${c}: w·z − b = ${wz - b}`);
      assert.ok(Math.abs(norm - lambda) < 1e-9, `case ${c}: ‖d‖∞ ${norm}, least ${lambda}`);
    } else {
      // The reference's answer when the box misses the hyperplane: the corner nearest to it.
      infeasible++;
      const sign = wt - b >= 0 ? 1 : -1;
      for (let i = 0; i < dim; i++) {
        const want = w[i] === 0 ? 0 : (sign * w[i] < 0 ? 1 : 0) - t[i];
        assert.ok(Math.abs(d[i] - want) < 1e-12, `case ${c} (infeasible): d ${d}`);
      }
    }
  }
  assert.ok(feasible > 100 && infeasible > 10, `${feasible} feasible, ${infeasible} infeasible cases`);
});

/** The reference's projection_linf, verbatim (fra31/auto-attack, autoattack/fab_projections.py, MIT licence). */
const REFERENCE_PROJECTION = `
import math
import torch

def projection_linf(points_to_project, w_hyperplane, b_hyperplane):
    device = points_to_project.device
    t, w, b = points_to_project, w_hyperplane.clone(), b_hyperplane.clone()

    sign = 2 * ((w * t).sum(1) - b >= 0) - 1
    w.mul_(sign.unsqueeze(1))
    b.mul_(sign)

    a = (w < 0).float()
    d = (a - t) * (w != 0).float()

    p = a - t * (2 * a - 1)
    indp = torch.argsort(p, dim=1)

    b = b - (w * t).sum(1)
    b0 = (w * d).sum(1)

    indp2 = indp.flip((1,))
    ws = w.gather(1, indp2)
    bs2 = - ws * d.gather(1, indp2)

    s = torch.cumsum(ws.abs(), dim=1)
    sb = torch.cumsum(bs2, dim=1) + b0.unsqueeze(1)

    b2 = sb[:, -1] - s[:, -1] * p.gather(1, indp[:, 0:1]).squeeze(1)
    c_l = b - b2 > 0
    c2 = (b - b0 > 0) & (~c_l)
    lb = torch.zeros(c2.sum(), device=device)
    ub = torch.full_like(lb, w.shape[1] - 1)
    nitermax = math.ceil(math.log2(w.shape[1]))

    indp_, sb_, s_, p_, b_ = indp[c2], sb[c2], s[c2], p[c2], b[c2]
    for counter in range(nitermax):
        counter4 = torch.floor((lb + ub) / 2)

        counter2 = counter4.long().unsqueeze(1)
        indcurr = indp_.gather(1, indp_.size(1) - 1 - counter2)
        b2 = (sb_.gather(1, counter2) - s_.gather(1, counter2) * p_.gather(1, indcurr)).squeeze(1)
        c = b_ - b2 > 0

        lb = torch.where(c, counter4, lb)
        ub = torch.where(c, ub, counter4)

    lb = lb.long()

    if c_l.any():
        lmbd_opt = torch.clamp_min((b[c_l] - sb[c_l, -1]) / (-s[c_l, -1]), min=0).unsqueeze(-1)
        d[c_l] = (2 * a[c_l] - 1) * lmbd_opt

    lmbd_opt = torch.clamp_min((b[c2] - sb[c2, lb]) / (-s[c2, lb]), min=0).unsqueeze(-1)
    d[c2] = torch.min(lmbd_opt, d[c2]) * a[c2] + torch.max(-lmbd_opt, d[c2]) * (1 - a[c2])

    return d * (w != 0).float()
`;

/**
 * The reference's FABAttack.perturb (targeted) → attack_single_run (is_targeted, norm 'Linf',
 * use_rand_start = counter > 0) → get_diff_logits_grads_batch_targeted, transcribed for a linear
 * model z = x·W + c on flattened inputs, without the other norms' branches and the logging.
 */
const REFERENCE_FAB_T = `
def fab_t(predict, x, y, eps, n_iter, n_target_classes, alpha_max=0.1, eta=1.05, beta=0.9):
    def get_label(v):
        return predict(v).max(1)[1]

    def single_run(x, y, target_class):
        bs_all = x.shape[0]
        pred = (get_label(x) == y).nonzero().squeeze(1)
        output = predict(x)
        la_target2 = output.sort(dim=-1)[1][:, -target_class][pred]
        im2, la2 = x[pred].clone(), y[pred].clone()
        bs = im2.shape[0]
        u1 = torch.arange(bs)
        adv, adv_c = im2.clone(), x.clone()
        res2 = 1e10 * torch.ones([bs])
        x1, x0 = im2.clone(), im2.clone().reshape([bs, -1])
        for _ in range(n_iter):
            im = x1.clone().requires_grad_()
            z = predict(im)
            diffy = -(z[u1, la2] - z[u1, la_target2])
            diffy.sum().backward()
            df, dg = diffy.detach().unsqueeze(1), im.grad.data.unsqueeze(1)
            with torch.no_grad():
                dg2 = dg[:, 0]
                b = -df[:, 0] + (dg2 * x1).reshape(bs, -1).sum(dim=-1)
                w = dg2.reshape([bs, -1])
                d3 = projection_linf(torch.cat((x1.reshape([bs, -1]), x0), 0), torch.cat((w, w), 0), torch.cat((b, b), 0))
                d1, d2 = d3[:bs].reshape(x1.shape), d3[-bs:].reshape(x1.shape)
                a0 = torch.clamp_min(d3.abs().max(dim=1, keepdim=True)[0], 1e-8)
                a1, a2 = a0[:bs], a0[-bs:]
                alpha = torch.clamp(a1 / (a1 + a2), 0, alpha_max)
                x1 = ((x1 + eta * d1) * (1 - alpha) + (im2 + d2 * eta) * alpha).clamp(0.0, 1.0)
                is_adv = get_label(x1) != la2
                ind_adv = is_adv.nonzero().squeeze(1)
                if ind_adv.numel() > 0:
                    t = (x1[ind_adv] - im2[ind_adv]).reshape([ind_adv.shape[0], -1]).abs().max(dim=1)[0]
                    better = (t < res2[ind_adv]).float().unsqueeze(1)
                    adv[ind_adv] = x1[ind_adv] * better + adv[ind_adv] * (1 - better)
                    res2[ind_adv] = t * better[:, 0] + res2[ind_adv] * (1 - better[:, 0])
                    x1[ind_adv] = im2[ind_adv] + (x1[ind_adv] - im2[ind_adv]) * beta
        ind_succ = (res2 < 1e10).nonzero().squeeze(1)
        adv_c[pred[ind_succ]] = adv[ind_succ].clone()
        return adv_c

    adv = x.clone()
    acc = get_label(x) == y
    for target_class in range(2, n_target_classes + 2):
        ind = acc.nonzero().squeeze(1)
        if ind.numel() == 0:
            continue
        xs, ys = x[ind].clone(), y[ind].clone()
        adv_curr = single_run(xs, ys, target_class)
        acc_curr = get_label(adv_curr) == ys
        res = (xs - adv_curr).abs().reshape(xs.shape[0], -1).max(1)[0]
        acc_curr = torch.max(acc_curr, res > eps)
        ind_curr = (acc_curr == 0).nonzero().squeeze(1)
        acc[ind[ind_curr]] = False
        adv[ind[ind_curr]] = adv_curr[ind_curr].clone()
    return adv
`;

/** Runs `main` (Python, after the reference code) in a temp folder holding in.json; returns out.json. */
function runTorch(main: string, input: unknown): any {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'in.json'), JSON.stringify(input));
  const script = `${REFERENCE_PROJECTION}\n${REFERENCE_FAB_T}\nimport json, sys\nimport os\nos.chdir(sys.argv[1])\nI = json.load(open('in.json'))\n${main}\n`;
  fs.writeFileSync(path.join(dir, 'ref.py'), script);
  const r = spawnSync(PYTHON, [path.join(dir, 'ref.py'), dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `torch reference failed: ${r.stderr}`);
  return JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8'));
}

test('projectionLinf equals the reference projection_linf (PyTorch, float64) on random cases, zero weights and infeasible rows included', { skip: torchSkipped }, () => {
  const r = mulberry32(9);
  const groups: Array<{ dim: number; t: number[]; w: number[]; b: number[] }> = [];
  for (const dim of [1, 2, 3, 5, 8, 33, 3072]) {
    const n = dim === 3072 ? 6 : 40;
    const t: number[] = [], w: number[] = [], b: number[] = [];
    for (let row = 0; row < n; row++) {
      let wt = 0, l1 = 0;
      for (let i = 0; i < dim; i++) {
        const ti = r() < 0.1 ? (r() < 0.5 ? 0 : 1) : r();
        const wi = r() < 0.1 ? 0 : r() * 2 - 1;
        t.push(ti); w.push(wi); wt += wi * ti; l1 += Math.abs(wi);
      }
      // Offsets from on-the-plane to well beyond the box's reach.
      b.push(wt + (r() * 2 - 1) * l1 * [0, 0.01, 0.2, 1.5][row % 4]);
    }
    groups.push({ dim, t, w, b });
  }
  const ref = runTorch(`
out = []
for g in I['groups']:
    n = len(g['b'])
    t = torch.tensor(g['t'], dtype=torch.float64).reshape(n, g['dim'])
    w = torch.tensor(g['w'], dtype=torch.float64).reshape(n, g['dim'])
    b = torch.tensor(g['b'], dtype=torch.float64)
    out.append(projection_linf(t, w, b).reshape(-1).tolist())
json.dump(out, open('out.json', 'w'))
`, { groups });
  groups.forEach((g, gi) => {
    const d = projectionLinf(g.t, g.w, g.b, g.dim);
    let worst = 0;
    for (let i = 0; i < d.length; i++) worst = Math.max(worst, Math.abs(d[i] - ref[gi][i]));
    assert.ok(worst < 1e-9, `dim ${g.dim}: max |d − d_ref| = ${worst}`);
  });
});

/** Weights W [3072,k] (column j scaled by columnScale(j)), biases c [k] and images in [0.2, 0.8] (most boxes stay loose), from a seed. */
function linearSetup(seed: number, b: number, k: number, scale = 0.01, columnScale = (_j: number) => 1) {
  const r = mulberry32(seed);
  const D = 32 * 32 * 3;
  const W = Float32Array.from({ length: D * k }, (_, i) => (r() - 0.5) * scale * columnScale(i % k));
  const c = Float32Array.from({ length: k }, () => (r() - 0.5) * 0.5);
  const xv = Float32Array.from({ length: b * D }, () => 0.2 + 0.6 * r());
  return { W, c, xv, D };
}

test('FAB-T on a linear model finds the minimal L∞ distance to the target boundary, |z_t − z_y| / ‖w_t − w_y‖₁ (box permitting)', () => {
  const b = 4, k = 2;
  const { W, c, xv, D } = linearSetup(3, b, k);
  // Example 3 sits near the box's faces, so the box binds and the distance is no longer the ratio.
  for (let j = 3 * D; j < 4 * D; j++) xv[j] = j % 3 === 0 ? 0.002 : xv[j] > 0.5 ? 0.999 : 0.001;
  const model = linearModel(W, c);
  const x = tf.tensor4d(xv, [b, 32, 32, 3]);
  const logits = tf.tidy(() => model.forward(x).arraySync() as number[][]);
  const y = tf.tensor1d(logits.map((l) => (l[0] >= l[1] ? 0 : 1)), 'int32');
  try {
    const dw = Array.from({ length: D }, (_, i) => W[i * k + 1] - W[i * k]);
    const l1 = dw.reduce((s, v) => s + Math.abs(v), 0);
    const exact = logits.map((_, i) => {
      let gap = c[1] - c[0]; // in float64: the float32 logits are too coarse for a 1e-6 comparison
      for (let j = 0; j < D; j++) gap += dw[j] * xv[i * D + j];
      gap = Math.abs(gap);
      // z_1 − z_0 = dw·x + (c_1 − c_0): the boundary is dw·x = c_0 − c_1.
      return { ratio: gap / l1, boxed: minLinfToHyperplane(xv.subarray(i * D, (i + 1) * D), dw, c[0] - c[1]) };
    });
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(exact[i].boxed - exact[i].ratio) < 1e-6 * exact[i].ratio, `example ${i}: the box should not bind (${exact[i].boxed} vs ${exact[i].ratio})`);
    assert.ok(exact[3].boxed > 1.2 * exact[3].ratio, `example 3: the box should bind (${exact[3].boxed} vs ${exact[3].ratio})`);
    const lambda = exact.map((e) => e.boxed);
    // Found with any eps above the distance: FAB overshoots (η) and backs off (β) toward the boundary.
    const xa = fabTargeted(model, x, y, { eps: 1, targets: 1 });
    const dist = linfRows(xa, x);
    dist.forEach((v, i) => assert.ok(v >= lambda[i] * (1 - 1e-4) && v <= lambda[i] * 1.01, `example ${i}: L∞ ${v}, least ${lambda[i]} (ratio ${(v / lambda[i]).toFixed(5)})`));
    xa.dispose();
    // eps just above one example's distance and below the others': exactly that one is returned moved.
    for (let i = 0; i < b; i++) {
      const eps = lambda[i] * 1.01;
      const xe = fabTargeted(model, x, y, { eps, targets: 1 });
      const de = linfRows(xe, x);
      xe.dispose();
      for (let j = 0; j < b; j++) {
        if (lambda[j] <= lambda[i]) assert.ok(de[j] > 0 && de[j] <= eps + 1e-7, `eps ${eps}: example ${j} (least ${lambda[j]}) got ${de[j]}`);
        else if (lambda[j] > eps) assert.equal(de[j], 0, `eps ${eps}: example ${j} (least ${lambda[j]}) moved to ${de[j]}`);
      }
    }
    // Below every distance nothing is found: every example comes back as x.
    const xs = fabTargeted(model, x, y, { eps: Math.min(...lambda) * 0.99, targets: 1 });
    assert.deepEqual(xs.dataSync(), x.dataSync());
    xs.dispose();
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('FAB-T matches a PyTorch transcription of the reference (targeted L∞ loop, projection_linf verbatim) on a 10-class linear model', { skip: torchSkipped }, () => {
  const b = 8, k = 10;
  // Columns of growing scale, so that for some examples a later target's boundary is nearer than
  // the 2nd class's (distances, ×1e-3: rank 2 ≈ 18–28, ranks 3–5 down to ≈ 18): eps 0.021 needs later targets.
  const { W, c, xv } = linearSetup(17, b, k, 0.004, (j) => 0.3 + 0.3 * j);
  const model = linearModel(W, c);
  const x = tf.tensor4d(xv, [b, 32, 32, 3]);
  // One wrong label: the reference leaves it alone too.
  const labels = tf.tidy(() => tf.argMax(model.forward(x), 1).arraySync() as number[]);
  labels[b - 1] = (labels[b - 1] + 3) % k;
  const y = tf.tensor1d(labels, 'int32');
  const settings = [
    { eps: 0.019, steps: 30, targets: 4 }, { eps: 0.021, steps: 30, targets: 4 }, { eps: 1, steps: 15, targets: 9 },
    // A small α_max binds after the first step (α ≈ 0.05–0.15 there on a linear model).
    { eps: 0.021, steps: 20, targets: 3, alphaMax: 0.02, eta: 1.1, beta: 0.8 },
  ];
  try {
    const ref = runTorch(`
W = torch.tensor(I['W'], dtype=torch.float32).reshape(-1, I['k'])
c = torch.tensor(I['c'], dtype=torch.float32)
predict = lambda v: v.reshape(v.shape[0], -1) @ W + c
x = torch.tensor(I['x'], dtype=torch.float32).reshape(I['b'], -1)
y = torch.tensor(I['y'], dtype=torch.long)
out = [fab_t(predict, x, y, s['eps'], s['steps'], s['targets'], s.get('alphaMax', 0.1), s.get('eta', 1.05), s.get('beta', 0.9)).reshape(-1).tolist()
       for s in I['settings']]
json.dump(out, open('out.json', 'w'))
`, { W: Array.from(W), c: Array.from(c), k, b, x: Array.from(xv), y: labels, settings });
    const movedBy: number[] = [];
    settings.forEach((s, si) => {
      const xa = fabTargeted(model, x, y, s);
      const got = xa.dataSync();
      const refT = tf.tensor4d(ref[si], [b, 32, 32, 3]);
      const dGot = linfRows(xa, x), dRef = linfRows(refT, x);
      for (let i = 0; i < b; i++) {
        assert.equal(dGot[i] > 0, dRef[i] > 0, `${JSON.stringify(s)} example ${i}: L∞ ${dGot[i]}, reference ${dRef[i]}`);
        assert.ok(Math.abs(dGot[i] - dRef[i]) <= 1e-4 * Math.max(dRef[i], 1e-3), `${JSON.stringify(s)} example ${i}: L∞ ${dGot[i]}, reference ${dRef[i]}`);
      }
      movedBy.push(dRef.filter((v) => v > 0).length);
      let worst = 0;
      for (let j = 0; j < got.length; j++) worst = Math.max(worst, Math.abs(got[j] - ref[si][j]));
      assert.ok(worst < 1e-4, `${JSON.stringify(s)}: max |x_adv − x_adv_ref| = ${worst}`);
      tf.dispose([xa, refT]);
    });
    // Non-vacuous: the eps-limited settings fool some examples but not all, more with the larger eps.
    assert.ok(movedBy[0] > 0 && movedBy[0] < movedBy[1] && movedBy[1] < b - 1 && movedBy[2] === b - 1, `examples moved per setting: ${movedBy}`);
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('FAB-T is deterministic; with restarts = 1 it has no random start (the seed is unused, as in the reference); options are validated', () => {
  const m = createResNet18({ width: 0.125 }, 22);
  const x = randImages(3, 22);
  const y = ownLabels(m, x);
  try {
    tf.tidy(() => {
      const base = { eps: 16 / 255, steps: 4, targets: 2 };
      const a = fabTargeted(m, x, y, { ...base, seed: 3 }).dataSync();
      assert.deepEqual(fabTargeted(m, x, y, { ...base, seed: 3 }).dataSync(), a);
      assert.deepEqual(fabTargeted(m, x, y, { ...base, seed: 99 }).dataSync(), a);
      const r = { ...base, steps: 2, restarts: 2, seed: 4 };
      assert.deepEqual(fabTargeted(m, x, y, r).dataSync(), fabTargeted(m, x, y, r).dataSync());
    });
    assert.equal(DEFAULT_FAB.steps, 100);
    assert.equal(DEFAULT_FAB.targets, 9);
    assert.equal(DEFAULT_FAB.restarts, 1);
    for (const [opt, re] of [[{ steps: 0 }, /'steps'/], [{ targets: 1.5 }, /'targets'/], [{ targets: 10 }, /'targets' must be ≤ 9/], [{ restarts: 0 }, /'restarts'/],
      [{ eps: -1 }, /'eps'/], [{ alphaMax: 2 }, /'alphaMax'/], [{ eta: 0 }, /'eta'/], [{ beta: -0.1 }, /'beta'/]] as const)
      assert.throws(() => fabTargeted(m, x, y, opt), re);
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});
