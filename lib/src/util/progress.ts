/**
 * Progress lines for long loops: done/total, rate, ETA, plus any extra fields.
 * On a TTY one line is rewritten in place; otherwise a line is printed at most every
 * `intervalMs` (and at the end), so logs and notebooks stay readable.
 */
import { inNotebook } from './runtime.js';
import { formatDuration } from './format.js';

/** Options of `Progress` (all optional there). */
export interface ProgressOptions {
  /** Unit of the rate, e.g. 'img'. Default 'it'. */
  unit: string;
  /** Minimum time between printed lines when not a TTY. Default 10,000 ms. */
  intervalMs: number;
  /** Where lines go. Default process.stderr, but process.stdout inside a notebook (the notebook runner fails a cell that writes to stderr). Set `silent` to print nothing. */
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  silent: boolean;
}


/**
 * Matches one line written by `Progress.update` ("<label> done/total (p%) … elapsed mm:ss ETA
 * mm:ss …", terminal control codes allowed before it): readers that drop progress lines (the
 * report) use this rather than a copy of the format.
 */
export const PROGRESS_LINE = /^.*\d+\/\d+ \(\d+(\.\d+)?%\).* elapsed [\d:]+ ETA [\d:]+.*$/;

/** A progress reporter for a loop of `total` units, labelled `label`; call `update` with the cumulative count done. */
export class Progress {
  private readonly o: ProgressOptions;
  private readonly start = Date.now();
  private lastPrint = 0;
  private done = 0;

  constructor(readonly label: string, readonly total: number, options: Partial<ProgressOptions> = {}) {
    this.o = { unit: 'it', intervalMs: 10_000, stream: inNotebook() ? process.stdout : process.stderr, silent: false, ...options };
  }

  /** Elapsed seconds since construction. */
  get elapsed(): number {
    return (Date.now() - this.start) / 1000;
  }

  /** Rate in units per second so far. */
  get rate(): number {
    return this.done / Math.max(this.elapsed, 1e-9);
  }

  /** Records that `done` units (cumulative) are finished; `extra` is appended (e.g. loss=0.53). */
  update(done: number, extra = ''): void {
    this.done = done;
    if (this.o.silent) return;
    const now = Date.now();
    const finished = done >= this.total;
    const tty = this.o.stream.isTTY === true;
    if (!finished && now - this.lastPrint < (tty ? 200 : this.o.intervalMs)) return;
    this.lastPrint = now;
    const eta = (this.total - done) / Math.max(this.rate, 1e-9);
    const pct = ((100 * done) / Math.max(this.total, 1)).toFixed(1);
    const line = `${this.label} ${done}/${this.total} (${pct}%) ${this.rate.toFixed(1)} ${this.o.unit}/s ` +
      `elapsed ${formatDuration(this.elapsed)} ETA ${formatDuration(finished ? 0 : eta)}${extra ? ' ' + extra : ''}`;
    this.o.stream.write(tty ? `\r\x1b[K${line}${finished ? '\n' : ''}` : `${line}\n`);
  }
}
