/**
 * SGD with momentum and weight decay exactly as PyTorch's `torch.optim.SGD` (dampening 0,
 * not Nesterov): d = g + wd·θ; buf = μ·buf + d (buf = d on the first step); θ ← θ − lr·buf.
 * TF.js's MomentumOptimizer has no weight decay and a different first step, hence our own.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Hyperparameters of `SGD`; defaults in DEFAULT_SGD. */
export interface SGDOptions {
  /** Learning rate. Default 0.1. */
  lr: number;
  /** Momentum μ. Default 0.9. */
  momentum: number;
  /** L2 weight decay added to the gradient. Default 5e-4. */
  weightDecay: number;
}

/** SGD defaults (the PGD-AT reference's): lr 0.1, momentum 0.9, weight decay 5e-4. */
export const DEFAULT_SGD: SGDOptions = { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 };

let sgdCounter = 0;

let fusedSgd = true;
/**
 * Whether `SGD.step` uses the backend's one-pass `RiftSgdStep` kernel where it has one (default
 * true). false runs the composed ops, as an A/B reference for tests and benchmarks; the results
 * are the same either way.
 */
export function setFusedSgd(enabled: boolean): void {
  fusedSgd = enabled;
}

/**
 * PyTorch-style SGD (see the file comment) over live tf.Variables; momentum buffers are created at each variable's first step
 * and freed by `dispose()`.
 */
export class SGD {
  readonly options: SGDOptions;
  /** Current learning rate (schedules set it between steps). */
  lr: number;
  private readonly buffers = new Map<string, tf.Variable>();
  private readonly id = ++sgdCounter;

  /** Optimises `vars` (live model variables). Call `dispose()` to free the momentum buffers. */
  constructor(readonly vars: readonly tf.Variable[], options: Partial<SGDOptions> = {}) {
    this.options = { ...DEFAULT_SGD, ...options };
    this.lr = this.options.lr;
  }

  /**
   * Applies one update from gradients keyed by variable name (as `tf.variableGrads` returns).
   * Does not dispose `grads`.
   */
  step(grads: Record<string, tf.Tensor>): void {
    const { momentum, weightDecay } = this.options;
    // One kernel per parameter where the backend has it; otherwise the same arithmetic op by op.
    const fused = tf.getKernel('RiftSgdStep', tf.getBackend()) !== undefined && fusedSgd;
    tf.tidy(() => {
      for (const v of this.vars) {
        const g = grads[v.name];
        if (!g) throw new Error(`SGD.step: no gradient for variable '${v.name}'`);
        const buf = this.buffers.get(v.name);
        if (fused) {
          const [theta, nextBuf] = tf.engine().runKernel('RiftSgdStep', { theta: v, grad: g, ...(buf ? { buf } : {}) },
            { lr: this.lr, momentum, weightDecay }) as tf.Tensor[];
          if (nextBuf) this.setBuffer(v.name, buf, nextBuf);
          v.assign(theta);
          continue;
        }
        const d = weightDecay !== 0 ? tf.add(g, tf.mul(v, weightDecay)) : g;
        let update = d;
        if (momentum !== 0) {
          update = buf ? tf.add(tf.mul(buf, momentum), d) : d;
          this.setBuffer(v.name, buf, update);
        }
        v.assign(tf.sub(v, tf.mul(update, this.lr)));
      }
    });
  }

  /** The first step creates the momentum buffer from the update; later steps assign to it. */
  private setBuffer(name: string, buf: tf.Variable | undefined, value: tf.Tensor): void {
    if (buf) buf.assign(value);
    else this.buffers.set(name, tf.variable(value, false, `sgd${this.id}/${name}`));
  }

  /** Momentum buffers as JS copies keyed by variable name (for checkpoints). */
  stateArrays(): Record<string, Float32Array> {
    return Object.fromEntries([...this.buffers].map(([k, b]) => [k, b.dataSync() as Float32Array]));
  }

  /** Restores momentum buffers saved by `stateArrays` (keys by variable name). */
  loadStateArrays(state: Record<string, Float32Array>): void {
    for (const v of this.vars) {
      const a = state[v.name];
      if (!a) continue;
      if (a.length !== v.size) throw new Error(`SGD state for '${v.name}' has ${a.length} values, expected ${v.size}`);
      const t = tf.tensor(a, v.shape);
      const old = this.buffers.get(v.name);
      if (old) { old.assign(t); t.dispose(); } else { this.buffers.set(v.name, tf.variable(t, false, `sgd${this.id}/${v.name}`)); t.dispose(); }
    }
  }

  dispose(): void {
    this.buffers.forEach((b) => b.dispose());
    this.buffers.clear();
  }
}
