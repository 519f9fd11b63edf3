/** Losses and simple metrics on logits. */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Per-example softmax cross-entropy, PyTorch's `F.cross_entropy(..., reduction='none')`.
 * logits [b, k] float32, labels [b] int32 → [b]. Caller disposes the result.
 */
export function crossEntropyPerExample(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
    return tf.neg(tf.sum(tf.mul(onehot, logp), 1)) as tf.Tensor1D;
  });
}

/** Mean softmax cross-entropy over the batch (PyTorch's default reduction). Caller disposes. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.mean(crossEntropyPerExample(logits, labels)) as tf.Scalar);
}

/**
 * Class indices of row `row` of flat logits z [·,k], by decreasing logit; ties go to the higher
 * index first (an ascending sort read from the end, where torch's unstable sort leaves ties
 * unspecified). The one ranking rule of the attacks' targets and DLR losses.
 */
export function classRanking(z: ArrayLike<number>, row: number, k: number): number[] {
  const idx = Array.from({ length: k }, (_, j) => j);
  return idx.sort((a, c) => z[row * k + c] - z[row * k + a] || c - a);
}

/** 1 where argmax(logits) == label, else 0: [b] uint8 on the JS side (no tensor survives). */
export function correctMask(logits: tf.Tensor2D, labels: tf.Tensor1D): Uint8Array {
  const eq = tf.tidy(() => tf.cast(tf.equal(tf.argMax(logits, 1), tf.cast(labels, 'int32')), 'int32'));
  const v = Uint8Array.from(eq.dataSync());
  eq.dispose();
  return v;
}
