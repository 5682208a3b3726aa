// One signed S3 PUT of a file over plain HTTP, every header chosen on the command line, written to
// the socket in pieces of a chosen size: a client whose requests differ from each other by exactly
// one thing, for put-server-cost.mjs (curl signs an `Expect:` it then does not send).
//
//   node test/bench/raw-put.mjs URL FILE [--payload unsigned|sha256] [--md5] [--type] [--inm]
//        [--expect] [--meta] [--write KiB] [--flip OFFSET]
//
// Exit 0 on a 2xx answer; otherwise the status line and body on stderr, exit 1.
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY sign it (region us-east-1).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

const aws4 = createRequire(import.meta.url)('aws4');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    payload: { type: 'string', default: 'unsigned' },
    md5: { type: 'boolean', default: false },
    type: { type: 'boolean', default: false },
    inm: { type: 'boolean', default: false },
    expect: { type: 'boolean', default: false },
    meta: { type: 'boolean', default: false },
    write: { type: 'string', default: '64' },
    // Flip one byte of what is sent AFTER the hashes were taken (a change on the way).
    flip: { type: 'string' },
  },
});
const [url, file] = positionals;
const body = readFileSync(file);
const target = new URL(url);
const headers = { 'Content-Length': String(body.length) };
headers['X-Amz-Content-Sha256'] = values.payload === 'sha256' ? createHash('sha256').update(body).digest('hex') : 'UNSIGNED-PAYLOAD';
if (values.md5) headers['Content-MD5'] = createHash('md5').update(body).digest('base64');
if (values.type) headers['Content-Type'] = 'application/octet-stream';
if (values.inm) headers['If-None-Match'] = '*';
if (values.meta) headers['x-amz-meta-a'] = 'b';
if (values.expect) headers.Expect = '100-continue';
const signed = aws4.sign({ host: target.host, path: target.pathname + target.search, method: 'PUT', headers, service: 's3', region: 'us-east-1' },
  { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY });
if (values.flip !== undefined) body[Number(values.flip)] ^= 0xff;
let head = `PUT ${signed.path} HTTP/1.1\r\nHost: ${target.host}\r\n`;
for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') head += `${k}: ${v}\r\n`;
head += '\r\n';

const piece = Number(values.write) * 1024;
const socket = connect(Number(target.port || 80), target.hostname);
socket.setNoDelay(true);
let answer = Buffer.alloc(0);
let bodySent = false;
async function sendBody() {
  bodySent = true;
  for (let at = 0; at < body.length; at += piece) {
    if (!socket.write(body.subarray(at, at + piece))) await new Promise((r) => socket.once('drain', r));
  }
}
socket.on('connect', () => {
  socket.write(head, 'latin1');
  if (!values.expect) void sendBody();
});
socket.on('data', (d) => {
  answer = Buffer.concat([answer, d]);
  for (;;) {
    const text = answer.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return;
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1]);
    if (status >= 100 && status < 200) {
      // Interim answers (werkzeug sends 100 Continue twice): the body goes after the first.
      answer = answer.subarray(end + 4);
      if (!bodySent) void sendBody();
      continue;
    }
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
    if (answer.length < end + 4 + length) return;
    socket.destroy();
    if (status >= 200 && status < 300) process.exit(0);
    process.stderr.write(`${text.slice(0, end + 4 + length)}\n`);
    process.exit(1);
  }
});
socket.on('error', (e) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
