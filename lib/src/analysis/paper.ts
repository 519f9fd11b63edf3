/**
 * The published numbers our results are shown beside (never used as results). Sources:
 * shared/paper/rift-with-bn.en.md (Table 1, re-assembled so every Δ = value − base) and
 * shared/paper/rift-reference.md (RiFT's Table 1/4, MRC examples).
 */

/** RiFT with BN, Table 1 (CIFAR-10, ResNet-18, PGD-10): clean ("Normal") / robust ("Adv") %. */
export const PAPER_TABLE1 = {
  base: { clean: 81.45, robust: 53.75 },
  rows: [
    { k: 1, method: 'rift', clean: 83.14, robust: 53.91 },
    { k: 1, method: 'rift-bn', clean: 82.64, robust: 53.86 },
    { k: 2, method: 'rift', clean: 81.93, robust: 53.63 },
    { k: 2, method: 'rift-bn', clean: 82.46, robust: 53.95 },
    { k: 3, method: 'rift', clean: 82.0, robust: 53.63 },
    { k: 3, method: 'rift-bn', clean: 82.62, robust: 53.98 },
    { k: 4, method: 'rift', clean: 82.06, robust: 53.63 },
    { k: 4, method: 'rift-bn', clean: 82.48, robust: 53.82 },
    { k: 5, method: 'rift', clean: 82.12, robust: 53.56 },
    { k: 5, method: 'rift-bn', clean: 81.9, robust: 53.89 },
  ] as const,
} as const;

/** RiFT (Zhu et al. 2023) headline numbers, mean of 3 seeds: clean / PGD-10 robust %. */
export const PAPER_RIFT = {
  cifar10: { at: { clean: 81.46, robust: 53.63 }, rift: { clean: 83.44, robust: 53.65 } },
  cifar100: { at: { clean: 57.1, robust: 30.15 }, rift: { clean: 58.74, robust: 30.17 } },
  /** MRC examples for ResNet-18: module, MRC, robust-accuracy drop on the fixed set. */
  mrcExamples: [
    { module: 'layer2.1.conv2', mrc: 0.09, accuracyDrop: -2.86 },
    { module: 'layer4.1.conv1', mrc: 12.94, accuracyDrop: -53.03 },
  ],
} as const;

/**
 * The published PGD-AT ResNet-18 base our base model of `dataset` is shown beside: CIFAR-10,
 * the RiFT-with-BN paper's Table 1 base; CIFAR-100 (which that paper reports only as curves),
 * RiFT's AT base (mean of 3 seeds).
 */
export function paperBase(dataset: 'cifar10' | 'cifar100'): { clean: number; robust: number; source: string } {
  return dataset === 'cifar10'
    ? { ...PAPER_TABLE1.base, source: 'RiFT with BN, Table 1 base' }
    : { ...PAPER_RIFT.cifar100.at, source: 'RiFT, CIFAR-100 AT base (ResNet-18)' };
}
