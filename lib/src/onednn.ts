/**
 * The native CPU backend on oneDNN (issue: speed). Placeholder until the addon exists:
 * reports why it is unavailable so that the engine falls through to wasm.
 */
export interface OnednnStatus {
  ok: boolean;
  reason?: string;
}

export function tryRegisterOnednn(_threads: number): OnednnStatus {
  return { ok: false, reason: 'native oneDNN addon not built yet' };
}
