// Python literals, as barman stores them in backup.info (docs/format.md#backup-info-syntax): a writer producing exactly what
// Python's repr() prints, and a tolerant reader accepting what ast.literal_eval accepts.
//
// Value model (kept distinct so that a read-then-write round trip is byte-exact):
//   None → null, True/False → boolean, str → string, bytes → PyBytes,
//   int → number (safe integers) or bigint (beyond 2^53),
//   float → number when its value is not integral; PyFloat when it is (1.0, 1e+16, inf, nan),
//   list → array, tuple → PyTuple, set → PySet, dict → Map (insertion order, like Python).
// A JS number with an integral value is therefore written as a Python int; use pyFloat(x) to make
// sure a value is written as a float whatever it is.

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export class PySet {
  constructor(readonly items: PyValue[]) {}
}

export class PyBytes {
  constructor(readonly bytes: Uint8Array) {}
}

/** A Python float whose value a JS number alone would not mark as a float (integral, inf, nan). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export type PyDict = Map<PyValue, PyValue>;

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | PyFloat
  | string
  | PyBytes
  | PyValue[]
  | PyTuple
  | PySet
  | PyDict;

/** A value that Python will print as a float, whatever its value. */
export function pyFloat(x: number): number | PyFloat {
  return Number.isInteger(x) || !Number.isFinite(x) ? new PyFloat(x) : x;
}

/** The numeric value of an int or float literal, or undefined for anything else. */
export function pyNumber(v: PyValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** Python truthiness. */
export function pyTruthy(v: PyValue | undefined): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (v instanceof PyFloat) return v.value !== 0;
  if (typeof v === 'string') return v.length > 0;
  if (v instanceof PyBytes) return v.bytes.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof PyTuple || v instanceof PySet) return v.items.length > 0;
  return v.size > 0;
}

// ---- writer ---------------------------------------------------------------------------------------

/** Python's float repr: shortest round-trip digits, exponent form when decpt <= -4 or > 16. */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(Math.abs(x).toExponential());
  if (!m) throw new Error(`cannot format ${x}`);
  const digits = m[1]! + (m[2] ?? '');
  const exp = Number(m[3]);
  const decpt = exp + 1;
  if (decpt <= -4 || decpt > 16) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
  if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
  return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
}

function intRepr(x: number): string {
  if (Object.is(x, -0)) return '0';
  return Number.isSafeInteger(x) ? String(x) : BigInt(x).toString();
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** Python's str.isprintable() for one code point: not in Cc Cf Cs Co Cn Zl Zp, nor a Zs other than ' '. */
const NON_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;
function isPrintable(cp: number): boolean {
  if (cp === 0x20) return true;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return !NON_PRINTABLE.test(String.fromCodePoint(cp));
}

/** repr() of a str. */
export function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (cp === 9) out += '\\t';
    else if (cp === 10) out += '\\n';
    else if (cp === 13) out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${hex(cp, 2)}`;
    else if (cp < 0x7f) out += ch;
    else if (isPrintable(cp)) out += ch;
    else if (cp <= 0xff) out += `\\x${hex(cp, 2)}`;
    else if (cp <= 0xffff) out += `\\u${hex(cp, 4)}`;
    else out += `\\U${hex(cp, 8)}`;
  }
  return out + quote;
}

/** repr() of a bytes object. */
function bytesRepr(b: Uint8Array): string {
  const hasSingle = b.includes(0x27);
  const quote = hasSingle && !b.includes(0x22) ? 0x22 : 0x27;
  let out = `b${String.fromCharCode(quote)}`;
  for (const c of b) {
    if (c === quote || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c === 9) out += '\\t';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c < 0x20 || c >= 0x7f) out += `\\x${hex(c, 2)}`;
    else out += String.fromCharCode(c);
  }
  return out + String.fromCharCode(quote);
}

/** Python's repr() of a literal value. */
export function pyRepr(v: PyValue): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) ? intRepr(v) : floatRepr(v);
  if (typeof v === 'string') return strRepr(v);
  if (v instanceof PyFloat) return floatRepr(v.value);
  if (v instanceof PyBytes) return bytesRepr(v.bytes);
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (v instanceof PyTuple) {
    if (v.items.length === 1) return `(${pyRepr(v.items[0]!)},)`;
    return `(${v.items.map(pyRepr).join(', ')})`;
  }
  if (v instanceof PySet) return v.items.length === 0 ? 'set()' : `{${v.items.map(pyRepr).join(', ')}}`;
  return `{${[...v].map(([k, val]) => `${pyRepr(k)}: ${pyRepr(val)}`).join(', ')}}`;
}

/** Python's str(): the text itself for a str, repr() for everything else. */
export function pyStr(v: PyValue): string {
  return typeof v === 'string' ? v : pyRepr(v);
}

// ---- reader ---------------------------------------------------------------------------------------

class PyLiteralError extends Error {
  constructor(message: string, readonly position: number) {
    super(`${message} at position ${position}`);
    this.name = 'PyLiteralError';
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v',
};

class Reader {
  pos = 0;
  constructor(readonly src: string) {}

  fail(message: string, at = this.pos): never {
    throw new PyLiteralError(message, at);
  }

  /** Skip blanks, newlines, line continuations and comments. */
  skip(): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s[this.pos]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') this.pos++;
      else if (c === '\\' && (s[this.pos + 1] === '\n' || s[this.pos + 1] === '\r')) this.pos += 2;
      else if (c === '#') {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      } else break;
    }
  }

  peek(): string | undefined {
    this.skip();
    return this.src[this.pos];
  }

  eat(ch: string): boolean {
    if (this.peek() === ch) {
      this.pos++;
      return true;
    }
    return false;
  }

  expect(ch: string): void {
    if (!this.eat(ch)) this.fail(`expected '${ch}'`);
  }

  /** A whole expression: a bare comma-separated sequence is a tuple, as in eval mode. */
  top(): PyValue {
    const first = this.value();
    if (this.peek() !== ',') return first;
    const items = [first];
    while (this.eat(',')) {
      const c = this.peek();
      if (c === undefined) break;
      items.push(this.value());
    }
    return new PyTuple(items);
  }

  value(): PyValue {
    const c = this.peek();
    if (c === undefined) this.fail('unexpected end of input');
    if (c === '-' || c === '+') {
      const at = this.pos++;
      const operand = this.value();
      if (typeof operand === 'number') return c === '-' ? -operand : operand;
      if (typeof operand === 'bigint') {
        const n = c === '-' ? -operand : operand;
        return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
      }
      if (operand instanceof PyFloat) return new PyFloat(c === '-' ? -operand.value : operand.value);
      this.fail(`unary '${c}' applies to numbers only`, at);
    }
    if (c === '[') {
      this.pos++;
      return this.sequence(']');
    }
    if (c === '(') {
      this.pos++;
      if (this.eat(')')) return new PyTuple([]);
      const first = this.value();
      if (this.eat(')')) return first; // parenthesised expression
      this.expect(',');
      const rest = this.sequence(')');
      return new PyTuple([first, ...rest]);
    }
    if (c === '{') {
      this.pos++;
      return this.braces();
    }
    if (/[0-9.]/.test(c)) return this.number();
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos))!;
      const word = m[0];
      const next = this.src[this.pos + word.length];
      if (/^[rRuUbB]{1,2}$/.test(word) && (next === "'" || next === '"')) return this.strings();
      const at = this.pos;
      this.pos += word.length;
      if (word === 'None') return null;
      if (word === 'True') return true;
      if (word === 'False') return false;
      if (word === 'set' && this.eat('(')) {
        this.expect(')');
        return new PySet([]);
      }
      this.fail(`malformed literal '${word}'`, at);
    }
    if (c === "'" || c === '"') return this.strings();
    this.fail(`unexpected character '${c}'`);
  }

  /** Items up to `close`, a trailing comma allowed; the opening bracket is already consumed. */
  sequence(close: string): PyValue[] {
    const items: PyValue[] = [];
    for (;;) {
      if (this.eat(close)) return items;
      items.push(this.value());
      if (this.eat(close)) return items;
      this.expect(',');
    }
  }

  braces(): PyValue {
    if (this.eat('}')) return new Map();
    const first = this.value();
    if (this.eat(':')) {
      const dict: PyDict = new Map();
      dict.set(first, this.value());
      for (;;) {
        if (this.eat('}')) return dict;
        this.expect(',');
        if (this.eat('}')) return dict;
        const k = this.value();
        this.expect(':');
        dict.set(k, this.value());
      }
    }
    const items = [first];
    for (;;) {
      if (this.eat('}')) return new PySet(items);
      this.expect(',');
      if (this.eat('}')) return new PySet(items);
      items.push(this.value());
    }
  }

  number(): PyValue {
    const rest = this.src.slice(this.pos);
    const at = this.pos;
    const radix = /^0([xX])((?:_?[0-9a-fA-F])+)|^0([oO])((?:_?[0-7])+)|^0([bB])((?:_?[01])+)/.exec(rest);
    let m: RegExpExecArray | null;
    if (radix) {
      this.pos += radix[0].length;
      const digits = (radix[2] ?? radix[4] ?? radix[6])!.replace(/_/g, '');
      const prefix = radix[1] ? '0x' : radix[3] ? '0o' : '0b';
      return this.intValue(BigInt(prefix + digits));
    }
    m = /^(?:\d(?:_?\d)*)?(?:\.(?:\d(?:_?\d)*)?)?(?:[eE][+-]?\d(?:_?\d)*)?/.exec(rest);
    const text = m ? m[0] : '';
    if (text === '' || text === '.' || !/\d/.test(text.replace(/[eE].*$/, ''))) this.fail('malformed number', at);
    this.pos += text.length;
    if (/^[jJ]/.test(this.src.slice(this.pos))) this.fail('complex numbers are not supported', at);
    if (/^[A-Za-z_0-9]/.test(this.src.slice(this.pos))) this.fail('malformed number', at);
    const clean = text.replace(/_/g, '');
    if (/[.eE]/.test(clean)) {
      const x = Number(clean);
      return Number.isInteger(x) || !Number.isFinite(x) ? new PyFloat(x) : x;
    }
    return this.intValue(BigInt(clean));
  }

  intValue(n: bigint): number | bigint {
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }

  /** One or more adjacent string literals, concatenated (all str or all bytes). */
  strings(): PyValue {
    let kind: 'str' | 'bytes' | undefined;
    let text = '';
    const bytes: number[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined) break;
      const m = /^([rRuUbB]{0,2})(['"])/.exec(this.src.slice(this.pos));
      if (!m) break;
      const prefix = m[1]!.toLowerCase();
      if (!/^(|r|u|b|br|rb)$/.test(prefix)) this.fail(`invalid string prefix '${m[1]}'`);
      const isBytes = prefix.includes('b');
      const raw = prefix.includes('r');
      const thisKind = isBytes ? 'bytes' : 'str';
      if (kind !== undefined && kind !== thisKind) this.fail('cannot mix bytes and nonbytes literals');
      kind = thisKind;
      this.pos += prefix.length;
      const body = this.stringBody(raw, isBytes);
      if (isBytes) {
        for (const ch of body) bytes.push(ch.charCodeAt(0));
      } else text += body;
    }
    return kind === 'bytes' ? new PyBytes(Uint8Array.from(bytes)) : text;
  }

  /** The body of one literal, starting at its opening quote. Bytes come back as chars 0–255. */
  stringBody(raw: boolean, isBytes: boolean): string {
    const s = this.src;
    const q = s[this.pos]!;
    const triple = s.startsWith(q.repeat(3), this.pos);
    const start = this.pos;
    this.pos += triple ? 3 : 1;
    let out = '';
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string literal', start);
      const ch = s[this.pos]!;
      if (triple ? s.startsWith(q.repeat(3), this.pos) : ch === q) {
        this.pos += triple ? 3 : 1;
        return out;
      }
      if (!triple && (ch === '\n' || ch === '\r')) this.fail('unterminated string literal', start);
      if (ch === '\\') {
        const next = s[this.pos + 1];
        if (next === undefined) this.fail('unterminated string literal', start);
        if (raw) {
          // A raw literal keeps the backslash; it only stops the next character from closing the string.
          out += ch + next;
          this.pos += 2;
          continue;
        }
        out += this.escape(isBytes);
        continue;
      }
      const cp = s.codePointAt(this.pos)!;
      if (isBytes && cp > 0x7f) this.fail('bytes can only contain ASCII literal characters');
      const len = cp > 0xffff ? 2 : 1;
      out += s.slice(this.pos, this.pos + len);
      this.pos += len;
    }
  }

  /** One escape sequence at this.pos (a backslash). */
  escape(isBytes: boolean): string {
    const s = this.src;
    const at = this.pos;
    const next = s[this.pos + 1]!;
    this.pos += 2;
    if (next === '\n') return '';
    if (next === '\r') {
      if (s[this.pos] === '\n') this.pos++;
      return '';
    }
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) return simple;
    if (/[0-7]/.test(next)) {
      let digits = next;
      while (digits.length < 3 && /[0-7]/.test(s[this.pos] ?? '')) digits += s[this.pos++];
      const n = Number.parseInt(digits, 8);
      return String.fromCodePoint(isBytes ? n & 0xff : n);
    }
    const fixed = (len: number): number => {
      const h = s.slice(this.pos, this.pos + len);
      if (h.length !== len || !/^[0-9a-fA-F]+$/.test(h)) this.fail(`truncated \\${next} escape`, at);
      this.pos += len;
      return Number.parseInt(h, 16);
    };
    if (next === 'x') return String.fromCharCode(fixed(2));
    if (!isBytes && (next === 'u' || next === 'U')) {
      const cp = fixed(next === 'u' ? 4 : 8);
      if (cp > 0x10ffff) this.fail('illegal Unicode character', at);
      return String.fromCodePoint(cp);
    }
    if (!isBytes && next === 'N') this.fail('\\N{...} escapes are not supported', at);
    // Unknown escapes keep their backslash, as Python does.
    const cp = s.codePointAt(this.pos - 1)!;
    if (cp > 0xffff) this.pos++;
    return `\\${String.fromCodePoint(cp)}`;
  }
}

/** Evaluate a Python literal, like ast.literal_eval. Throws PyLiteralError on anything else. */
export function parsePyLiteral(text: string): PyValue {
  const r = new Reader(text);
  const v = r.top();
  if (r.peek() !== undefined) r.fail('unexpected trailing text');
  return v;
}

// ---- JSON as Python's json.dumps prints it -------------------------------------------------------

/** json.dumps string encoding with ensure_ascii: everything outside ' '..'~' as \uXXXX. */
function jsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c <= 0x7e) out += s[i];
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else out += `\\u${hex(c, 4)}`;
  }
  return out + '"';
}

function jsonFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return floatRepr(x);
}

function jsonKey(k: PyValue): string {
  if (typeof k === 'string') return jsonString(k);
  if (k === null) return '"null"';
  if (k === true) return '"true"';
  if (k === false) return '"false"';
  if (typeof k === 'number' || typeof k === 'bigint' || k instanceof PyFloat) return `"${pyJsonDumps(k)}"`;
  throw new TypeError(`keys must be str, int, float, bool or None, not ${typeName(k)}`);
}

function typeName(v: PyValue): string {
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PySet) return 'set';
  if (v instanceof PyBytes) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'dict';
  return typeof v;
}

/** json.dumps(v) with Python's defaults: separators ', ' and ': ', ensure_ascii, floats as repr. */
export function pyJsonDumps(v: PyValue): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) ? intRepr(v) : jsonFloat(v);
  if (v instanceof PyFloat) return jsonFloat(v.value);
  if (typeof v === 'string') return jsonString(v);
  if (Array.isArray(v)) return `[${v.map(pyJsonDumps).join(', ')}]`;
  if (v instanceof PyTuple) return `[${v.items.map(pyJsonDumps).join(', ')}]`;
  if (v instanceof Map) return `{${[...v].map(([k, val]) => `${jsonKey(k)}: ${pyJsonDumps(val)}`).join(', ')}}`;
  throw new TypeError(`Object of type ${typeName(v)} is not JSON serializable`);
}
