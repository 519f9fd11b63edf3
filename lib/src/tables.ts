/**
 * Tables as plain rows built from experiment records (display lives in notebooks/charts).
 */
import { decodeBits, type BaseRecord, type RiftRecord, type Method } from './experiments.js';
import { summarizeSeeds, multiSeedDelta } from './stats.js';
import { PAPER_TABLE1 } from './paper.js';

export interface Table1Row {
  k: number;
  method: Method;
  /** Number of seeds aggregated. */
  seeds: number;
  clean: number;
  cleanStd: number | null;
  robust: number;
  robustStd: number | null;
  /** Δ vs base in points, 95% interval (paired bootstrap over examples; averaged over seeds when > 1). */
  deltaClean: number;
  deltaCleanCI: [number, number];
  deltaRobust: number;
  deltaRobustCI: [number, number];
  /** Exact McNemar p (single seed only; null when several seeds are averaged). */
  mcnemarPClean: number | null;
  mcnemarPRobust: number | null;
  modules: string;
  /** α chosen by interpolation (null when interpolation was off); per seed. */
  alphas: Array<number | null>;
  paperClean: number | null;
  paperRobust: number | null;
}

/** Table 1 rows (k ascending, RiFT before RiFT with BN) from top-k records, with the paper's values beside. */
export function table1Rows(records: readonly RiftRecord[], base: BaseRecord): Table1Row[] {
  const groups = new Map<string, RiftRecord[]>();
  for (const r of records) {
    const key = `${r.k}|${r.method}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const rows: Table1Row[] = [];
  for (const [key, rs] of groups) {
    const [k, method] = [Number(key.split('|')[0]), key.split('|')[1] as Method];
    const fin = rs.map((r) => r.interpolated ?? r.raw);
    const c = summarizeSeeds(fin.map((f) => f.clean)), rb = summarizeSeeds(fin.map((f) => f.robust));
    const one = fin.length === 1 ? fin[0] : null;
    const dc = one ? one.vsBase.clean : multiSeedDelta(decodeBits(base.cleanBits), fin.map((f) => decodeBits(f.cleanBits)));
    const dr = one ? one.vsBase.robust : multiSeedDelta(decodeBits(base.robustBits), fin.map((f) => decodeBits(f.robustBits)));
    const paper = PAPER_TABLE1.rows.find((p) => p.k === k && p.method === method);
    rows.push({
      k, method, seeds: rs.length,
      clean: c.mean, cleanStd: rs.length > 1 ? c.std : null, robust: rb.mean, robustStd: rs.length > 1 ? rb.std : null,
      deltaClean: dc.delta, deltaCleanCI: dc.ci, deltaRobust: dr.delta, deltaRobustCI: dr.ci,
      mcnemarPClean: one ? one.vsBase.clean.mcnemarP : null, mcnemarPRobust: one ? one.vsBase.robust.mcnemarP : null,
      modules: [...new Set(rs.map((r) => r.modules.join(' + ')))].join(' | '),
      alphas: rs.map((r) => r.interpolated?.alpha ?? null),
      paperClean: paper?.clean ?? null, paperRobust: paper?.robust ?? null,
    });
  }
  return rows.sort((a, b) => a.k - b.k || (a.method === 'rift' ? -1 : 1));
}
