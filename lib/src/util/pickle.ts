/**
 * A safe reader of Python pickles (protocols 0–5) and a minimal writer, for PyTorch checkpoints.
 *
 * Reading never runs code: the pickle machine builds plain values (null, booleans, numbers,
 * bigints, strings, Uint8Array bytes, arrays for lists and tuples, Maps for dicts) and every
 * global the pickle names is looked up in the caller's allowlist (`resolveGlobal`); an unknown
 * global is refused with an error naming it, e.g. "model.pt: the pickle names global
 * 'os.system', which is not allowed". Persistent ids (PyTorch's tensor storages) go to the
 * caller's `persistentLoad`.
 *
 * Writing (`PickleWriter`) emits protocol-2 opcodes for exactly what a state_dict needs; the
 * caller composes globals, tuples, dicts and persistent ids.
 */
import { singleLine } from './format.js';

/** A global the allowlist lets a pickle name: what REDUCE/NEWOBJ call it with, and what BUILD does on its results. */
export interface PickleGlobal {
  /** Dotted name, e.g. 'collections.OrderedDict'. */
  readonly qualifiedName: string;
  /** Builds the value for REDUCE / NEWOBJ with the given arguments (absent: the global cannot be called). */
  call?(args: unknown[]): unknown;
}

/** What `unpickle` needs from its caller. */
export interface UnpickleOptions {
  /** File name used in errors. */
  label: string;
  /** The allowlisted global `module.name`, or undefined to refuse it. */
  resolveGlobal(module: string, name: string): PickleGlobal | undefined;
  /** Value for a persistent id (PyTorch: a storage reference tuple); absent: persistent ids are refused. */
  persistentLoad?(pid: unknown): unknown;
  /** Called when BUILD sets state on a value the allowlist built (e.g. OrderedDict's `_metadata`); default: ignore the state. */
  build?(target: unknown, state: unknown): unknown;
}

/** Marker of a pickled `None` inside containers is plain null; a Python dict becomes a Map (insertion order kept). */
export type PickleDict = Map<unknown, unknown>;

/**
 * Runs the pickle in `data` from `start` to its STOP opcode and returns the value and the offset
 * after STOP (so several pickles in one file, as the legacy torch format has, can be read in turn).
 */
export function unpickle(data: Uint8Array, options: UnpickleOptions, start = 0): { value: unknown; end: number } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const fail = (what: string) => new Error(`${options.label}: ${what}`);
  let p = start;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const need = (n: number) => {
    if (p + n > buf.length) throw fail(`pickle ends early at byte ${p} (needs ${n} more; truncated file?)`);
  };
  const u8 = () => { need(1); return buf[p++]; };
  const u16 = () => { need(2); const v = buf.readUInt16LE(p); p += 2; return v; };
  const i32 = () => { need(4); const v = buf.readInt32LE(p); p += 4; return v; };
  const u32 = () => { need(4); const v = buf.readUInt32LE(p); p += 4; return v; };
  const u64 = () => {
    need(8);
    const v = buf.readBigUInt64LE(p);
    p += 8;
    if (v > BigInt(buf.length)) throw fail(`pickle length ${v} at byte ${p - 8} exceeds the file`);
    return Number(v);
  };
  const bytes = (n: number) => { need(n); const b = buf.subarray(p, p + n); p += n; return b; };
  const line = () => {
    const e = buf.indexOf(0x0a, p);
    if (e < 0) throw fail(`pickle text argument at byte ${p} has no end of line (truncated?)`);
    const s = buf.toString('latin1', p, e);
    p = e + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) throw fail(`pickle stack underflow at byte ${p - 1}`);
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw fail(`pickle stack underflow at byte ${p - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw fail(`pickle has no MARK before byte ${p - 1}`);
    return stack.splice(m);
  };
  const global = (module: string, name: string) => {
    const g = options.resolveGlobal(module, name);
    if (!g) {
      throw fail(`the pickle names global '${singleLine(`${module}.${name}`, 120)}', which is not allowed (a state_dict needs only tensors, ` +
        `OrderedDict and plain values; a whole pickled model or other objects cannot be read safely: save model.state_dict() instead)`);
    }
    return g;
  };
  const call = (f: unknown, args: unknown) => {
    if (!(f instanceof Object) || typeof (f as PickleGlobal).call !== 'function') {
      throw fail(`the pickle calls ${describe(f)}, which is not callable here`);
    }
    if (!Array.isArray(args)) throw fail(`the pickle calls '${(f as PickleGlobal).qualifiedName}' with non-tuple arguments`);
    try {
      return (f as PickleGlobal).call!(args);
    } catch (e) {
      throw fail(`'${(f as PickleGlobal).qualifiedName}': ${(e as Error).message}`);
    }
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) throw fail(`the pickle sets items on ${describe(d)}, not a dict`);
    for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const append = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l)) {
      if (l instanceof Set) { for (const x of items) l.add(x); return; }
      throw fail(`the pickle appends to ${describe(l)}, not a list`);
    }
    for (const x of items) l.push(x);
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) throw fail(`the pickle reads memo slot ${i}, which was never written`);
    return memo.get(i);
  };
  const intText = (s: string): number | bigint | boolean => {
    const t = s.replace(/L$/, '');
    if (t.length > 40) throw fail(`integer literal of ${t.length} digits; at most 40 are accepted`);
    if (t === '00' && s === '00') return false;
    if (t === '01' && s === '01') return true;
    if (!/^[-+]?\d+$/.test(t)) throw fail(`bad integer literal '${s}' in the pickle`);
    const b = BigInt(t);
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  };
  const long = (b: Buffer): number | bigint => {
    if (b.length === 0) return 0;
    // A state_dict's integers fit in 8 bytes; a long one is a crafted file (and slow to decode).
    if (b.length > 64) throw fail(`integer of ${b.length} bytes at byte ${p - b.length}; at most 64 are accepted`);
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME (framing is advisory)
      case 0x2e: // STOP
        if (stack.length !== 1) throw fail(`pickle stops with ${stack.length} values on the stack at byte ${at}`);
        return { value: stack[0], end: p };
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(bytes(u8()))); break; // LONG1
      case 0x8b: { const n = i32(); if (n < 0) throw fail(`negative LONG4 length at byte ${at}`); stack.push(long(bytes(n))); break; }
      case 0x49: case 0x4c: stack.push(intText(line())); break; // INT, LONG
      case 0x47: { need(8); stack.push(buf.readDoubleBE(p)); p += 8; break; } // BINFLOAT
      case 0x46: { // FLOAT
        const s = line().trim();
        const v = /^[-+]?inf$/i.test(s) ? (s.startsWith('-') ? -Infinity : Infinity) : /^nan$/i.test(s) ? NaN : s === '' ? NaN : Number(s);
        if (Number.isNaN(v) && !/^nan$/i.test(s)) throw fail(`bad float literal '${singleLine(s, 40)}'`);
        stack.push(v);
        break;
      }
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x58: stack.push(bytes(u32()).toString('utf8')); break; // BINUNICODE
      case 0x8c: stack.push(bytes(u8()).toString('utf8')); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(bytes(u64()).toString('utf8')); break; // BINUNICODE8
      case 0x54: { const n = i32(); if (n < 0) throw fail(`negative BINSTRING length at byte ${at}`); stack.push(bytes(n).toString('latin1')); break; } // BINSTRING
      case 0x55: stack.push(bytes(u8()).toString('latin1')); break; // SHORT_BINSTRING
      case 0x42: stack.push(Uint8Array.from(bytes(u32()))); break; // BINBYTES
      case 0x43: stack.push(Uint8Array.from(bytes(u8()))); break; // SHORT_BINBYTES
      case 0x8e: case 0x96: stack.push(Uint8Array.from(bytes(u64()))); break; // BINBYTES8, BYTEARRAY8
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const x = pop(); append(top(), [x]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { const items = popMark(); const d = new Map(); setItems(d, items); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { const items = popMark(); append(top(), items); break; } // ADDITEMS
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x63: { const m = line(); const n = line(); stack.push(global(m, n)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const n = pop(), m = pop();
        if (typeof m !== 'string' || typeof n !== 'string') throw fail(`STACK_GLOBAL at byte ${at} without two names`);
        stack.push(global(m, n));
        break;
      }
      case 0x52: { const args = pop(); const f = pop(); stack.push(call(f, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { const kw = pop(); const args = pop(); const cls = pop(); // NEWOBJ_EX
        if (!(kw instanceof Map) || kw.size) throw fail(`NEWOBJ_EX with keyword arguments at byte ${at}`);
        stack.push(call(cls, args));
        break;
      }
      case 0x62: { const state = pop(); const target = top(); // BUILD
        if (options.build) stack[stack.length - 1] = options.build(target, state) ?? target;
        break;
      }
      case 0x70: memo.set(intText(line()) as number, top()); break; // PUT
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x67: stack.push(memoGet(intText(line()) as number)); break; // GET
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x51: case 0x50: { // BINPERSID, PERSID
        const pid = op === 0x51 ? pop() : line();
        if (!options.persistentLoad) throw fail(`the pickle refers to external data (persistent id) at byte ${at}, which this reader does not accept`);
        try {
          stack.push(options.persistentLoad(pid));
        } catch (e) {
          throw fail(`persistent id ${describe(pid)}: ${(e as Error).message}`);
        }
        break;
      }
      default:
        throw fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} ('${String.fromCharCode(op)}') at byte ${at}`);
    }
    if (stack.length > 1e7) throw fail('pickle stack exceeds 10 million values');
  }
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return `a tuple/list of ${v.length}`;
  if (v instanceof Object && 'qualifiedName' in v) return `'${singleLine((v as PickleGlobal).qualifiedName, 120)}'`;
  return typeof v === 'string' ? `'${singleLine(v, 40)}'` : typeof v;
}

/**
 * Protocol-2 pickle writer for state_dicts: call the methods in pickle order (operands before
 * the operation), then `finish()`. Each method appends opcodes; nothing is memoised, so values
 * are written once each (a state_dict has no shared references that matter to torch.load).
 */
export class PickleWriter {
  private readonly chunks: Buffer[] = [Buffer.from([0x80, 0x02])];

  private op(...bytes: number[]): this {
    this.chunks.push(Buffer.from(bytes));
    return this;
  }

  /** A `module.name` global (GLOBAL opcode). */
  global(module: string, name: string): this {
    this.chunks.push(Buffer.from(`c${module}\n${name}\n`, 'latin1'));
    return this;
  }

  /** A str (BINUNICODE). */
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.chunks.push(Buffer.from([0x58]), len, b);
    return this;
  }

  /** An int (BININT for 32-bit values, else LONG1). */
  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new Error(`PickleWriter.int: ${v} is not a safe integer`);
    if (v >= -0x80000000 && v <= 0x7fffffff) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(v, 1);
      this.chunks.push(b);
      return this;
    }
    let x = BigInt(v);
    const out: number[] = [];
    do { out.push(Number(x & 0xffn)); x >>= 8n; } while (x !== 0n && x !== -1n);
    if ((out[out.length - 1] & 0x80) !== (v < 0 ? 0x80 : 0)) out.push(v < 0 ? 0xff : 0);
    return this.op(0x8a, out.length, ...out);
  }

  bool(v: boolean): this { return this.op(v ? 0x88 : 0x89); }
  none(): this { return this.op(0x4e); }
  mark(): this { return this.op(0x28); }
  /** TUPLE: everything since the last mark(). */
  tuple(): this { return this.op(0x74); }
  emptyTuple(): this { return this.op(0x29); }
  emptyDict(): this { return this.op(0x7d); }
  /** SETITEMS: key/value pairs since the last mark() into the dict below the mark. */
  setItems(): this { return this.op(0x75); }
  /** REDUCE: call the callable below the argument tuple on top. */
  reduce(): this { return this.op(0x52); }
  /** BINPERSID: the value on top is a persistent id. */
  persistentId(): this { return this.op(0x51); }

  /** The finished pickle (STOP appended). */
  finish(): Buffer {
    return Buffer.concat([...this.chunks, Buffer.from([0x2e])]);
  }
}
