/**
 * How numbers, durations and attacks are written, everywhere: tables, readings, logs and the
 * report all call these, so two places never print the same quantity two ways.
 */

/** A number with an explicit sign and `digits` decimals (default 2): "+1.19", "-0.50"; a value that rounds to zero is "+0.00". */
export function signed(x: number, digits = 2): string {
  const s = x.toFixed(digits);
  return s.startsWith('-') ? (Number(s) === 0 ? `+${s.slice(1)}` : s) : `+${s}`;
}

/** Whole seconds split into hours, minutes and seconds (negatives and non-finite values are not handled here). */
function hms(seconds: number): { h: number; m: number; s: number } {
  const t = Math.round(seconds);
  return { h: Math.floor(t / 3600), m: Math.floor((t % 3600) / 60), s: t % 60 };
}

const pad2 = (x: number) => String(x).padStart(2, '0');

/** A duration as a clock, for progress lines and ETAs: 'mm:ss', or 'h:mm:ss' from one hour; '--:--' when not finite; negatives count as 0. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const { h, m, s } = hms(Math.max(0, seconds));
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s)}` : `${pad2(m)}:${pad2(s)}`;
}

/** A duration in words, for reports and summaries: '4.2 s' below a minute, else '2m 03s' or '1h 02m 03s'. */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const { h, m, s } = hms(seconds);
  return h > 0 ? `${h}h ${pad2(m)}m ${pad2(s)}s` : `${m}m ${pad2(s)}s`;
}

/** An attack's short name: 'PGD-10', or 'PGD-10×3' with 3 restarts (the worst case over them). */
export function attackLabel(a: { steps: number; restarts: number }): string {
  return `PGD-${a.steps}${a.restarts > 1 ? `×${a.restarts}` : ''}`;
}

/**
 * Text from an untrusted file (a key, an entry name) made safe for a one-line message: control
 * characters escaped (\n → \x0a), cut to `max` characters with '…'.
 */
export function singleLine(s: string, max = 200): string {
  const t = s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** Per-example 0/1 vector as a compact '0'/'1' string (JSON-friendly). */
export function encodeBits(a: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < a.length; i++) s += a[i] ? '1' : '0';
  return s;
}

/** Inverse of `encodeBits`: a '0'/'1' string back to a per-example 0/1 Uint8Array (any other character reads as 0). */
export function decodeBits(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => (c === '1' ? 1 : 0));
}
