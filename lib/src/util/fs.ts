/** File helpers shared by every layer that writes (checkpoints, records, the report). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Writes `data` to `file` atomically: a temp file in the same folder, fsync, then rename (a kill leaves the old file or the new one, never half of one). */
export function writeFileAtomic(file: string, data: Buffer | string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  // Host and pid: workers on several hosts may write into one shared folder.
  const tmp = `${file}.tmp-${os.hostname()}-${process.pid}-${Date.now()}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
