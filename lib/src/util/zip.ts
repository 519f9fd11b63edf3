/**
 * The small part of the ZIP format that PyTorch checkpoints use, read and written here rather
 * than through a dependency: a checkpoint is untrusted input, so every offset and size is
 * checked against the file before it is used, and the reader never writes anything to disk.
 *
 * Reads: stored (method 0) and deflated (method 8) entries, ZIP64 sizes/offsets (as torch.save
 * writes them for large archives; the caller's buffer limits files to 2 GiB), CRC-32 checked on
 * every entry read (zlib.crc32: Node ≥ 20.15).
 * Writes: stored entries whose data start at 64-byte-aligned offsets (as torch.save aligns them,
 * so readers can map tensors in place), no ZIP64 (entries and archive below 4 GiB).
 */
import * as zlib from 'node:zlib';
import { singleLine } from './format.js';

/** One entry of a ZIP archive's central directory. */
export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Offset of the entry's local header in the file. */
  localOffset: number;
}

/** A parsed archive: its entries by name and a reader of their bytes. */
export interface ZipArchive {
  entries: Map<string, ZipEntry>;
  /** The uncompressed bytes of entry `name` (CRC-checked); throws naming the entry when it is missing or damaged. */
  read(name: string): Buffer;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const U32 = 0xffffffff;

/** True when `buf` starts like a ZIP archive (a local file header or an empty archive's end record). */
export function looksLikeZip(buf: Buffer): boolean {
  return buf.length >= 4 && (buf.readUInt32LE(0) === LFH_SIG || buf.readUInt32LE(0) === EOCD_SIG);
}

/**
 * Parses the central directory of the ZIP archive in `buf`. `label` (the file name) prefixes
 * every error, e.g. "model.pt: not a complete ZIP archive (no end-of-central-directory record; truncated?)".
 */
export function readZip(buf: Buffer, label: string): ZipArchive {
  const fail = (what: string) => new Error(`${label}: ${what}`);
  const need = (off: number, n: number, what: string) => {
    if (!(off >= 0 && off + n <= buf.length)) throw fail(`${what} at byte ${off} runs past the end of the file (${buf.length} bytes; truncated?)`);
  };
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) { eocd = i; break; }
  }
  if (eocd < 0) throw fail('not a complete ZIP archive (no end-of-central-directory record; truncated?)');
  let count = buf.readUInt16LE(eocd + 10);
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (eocd >= 20 && buf.readUInt32LE(eocd - 20) === EOCD64_LOCATOR_SIG) {
    const at = Number(buf.readBigUInt64LE(eocd - 12));
    need(at, 56, 'ZIP64 end record');
    if (buf.readUInt32LE(at) !== EOCD64_SIG) throw fail(`bad ZIP64 end record signature at byte ${at}`);
    count = Number(buf.readBigUInt64LE(at + 32));
    cdSize = Number(buf.readBigUInt64LE(at + 40));
    cdOffset = Number(buf.readBigUInt64LE(at + 48));
  }
  need(cdOffset, cdSize, 'central directory');
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    need(p, 46, `central directory entry ${i}`);
    if (buf.readUInt32LE(p) !== CDH_SIG) throw fail(`bad central directory entry ${i} signature at byte ${p}`);
    const method = buf.readUInt16LE(p + 10);
    const crc32 = buf.readUInt32LE(p + 16);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    need(p + 46, nameLen + extraLen + commentLen, `central directory entry ${i} name`);
    const name = singleLine(buf.toString('utf8', p + 46, p + 46 + nameLen), 1000);
    // ZIP64 extended information: the 0xFFFFFFFF fields, in this order, as 8-byte values.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = buf.readUInt16LE(e), len = buf.readUInt16LE(e + 2);
      if (e + 4 + len > extraEnd) throw fail(`central directory entry ${i} has an extra field running past its end`);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => { if (q + 8 > e + 4 + len) throw fail(`ZIP64 field of '${name}' is too short`); const v = Number(buf.readBigUInt64LE(q)); q += 8; return v; };
        if (size === U32) size = next();
        if (compressedSize === U32) compressedSize = next();
        if (localOffset === U32) localOffset = next();
      }
      e += 4 + len;
    }
    if (entries.has(name)) throw fail(`entry '${name}' appears twice`);
    entries.set(name, { name, method, compressedSize, size, crc32, localOffset });
    p = extraEnd + commentLen;
  }
  const read = (name: string): Buffer => {
    const en = entries.get(name);
    if (!en) throw fail(`entry '${name}' is missing`);
    need(en.localOffset, 30, `local header of '${name}'`);
    if (buf.readUInt32LE(en.localOffset) !== LFH_SIG) throw fail(`bad local header signature of '${name}'`);
    const start = en.localOffset + 30 + buf.readUInt16LE(en.localOffset + 26) + buf.readUInt16LE(en.localOffset + 28);
    need(start, en.compressedSize, `data of '${name}'`);
    const raw = buf.subarray(start, start + en.compressedSize);
    let data: Buffer;
    if (en.method === 0) data = raw;
    else if (en.method === 8) {
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, en.size) });
      } catch (err) {
        throw fail(`entry '${name}' does not inflate (${(err as Error).message})`);
      }
    } else throw fail(`entry '${name}' uses compression method ${en.method}; only stored (0) and deflate (8) are supported`);
    if (data.length !== en.size) throw fail(`entry '${name}' has ${data.length} bytes, its header says ${en.size}`);
    const crc = zlib.crc32(data) >>> 0;
    if (crc !== en.crc32) throw fail(`entry '${name}' fails its CRC-32 check (file is corrupt)`);
    return data;
  };
  return { entries, read };
}

/**
 * A ZIP archive of stored (uncompressed) entries, in the given order, each entry's data starting
 * at a multiple of 64 bytes (padding goes into the local header's extra field, as torch.save
 * does). Throws if the archive would need ZIP64 (≥ 4 GiB).
 */
export function writeZip(files: ReadonlyArray<{ name: string; data: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const crc = zlib.crc32(f.data) >>> 0;
    const headerEnd = offset + 30 + name.length;
    // Extra field: id 'FB' (0x4246, torch's), length, zero padding up to the next 64-byte boundary.
    const pad = (64 - ((headerEnd + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const lfh = Buffer.alloc(30);
    lfh.writeUInt32LE(LFH_SIG, 0);
    lfh.writeUInt16LE(20, 4);
    lfh.writeUInt16LE(0x0800, 6); // UTF-8 names
    lfh.writeUInt16LE(0, 8);
    lfh.writeUInt32LE(crc, 14);
    lfh.writeUInt32LE(f.data.length, 18);
    lfh.writeUInt32LE(f.data.length, 22);
    lfh.writeUInt16LE(name.length, 26);
    lfh.writeUInt16LE(extra.length, 28);
    const cdh = Buffer.alloc(46);
    cdh.writeUInt32LE(CDH_SIG, 0);
    cdh.writeUInt16LE(20, 4);
    cdh.writeUInt16LE(20, 6);
    cdh.writeUInt16LE(0x0800, 8);
    cdh.writeUInt32LE(crc, 16);
    cdh.writeUInt32LE(f.data.length, 20);
    cdh.writeUInt32LE(f.data.length, 24);
    cdh.writeUInt16LE(name.length, 28);
    cdh.writeUInt32LE(offset, 42);
    central.push(cdh, name);
    parts.push(lfh, name, extra, f.data);
    offset += 30 + name.length + extra.length + f.data.length;
    if (offset >= U32) throw new Error(`writeZip: archive exceeds 4 GiB at '${f.name}' (ZIP64 writing is not supported)`);
  }
  if (files.length > 0xffff) throw new Error(`writeZip: ${files.length} entries exceed 65,535 (ZIP64 writing is not supported)`);
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(EOCD_SIG, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, eocd]);
}
