#!/usr/bin/env node
// Interop driver: sends COUNT HL7 v2 ADT messages to HOST:PORT over MLLP
// with the third-party node-hl7-client (npm), over CONNS connections, and
// waits until every message has been acknowledged. A message whose ACK does
// not arrive (for example because the connection was dropped) is resent
// after RESEND_MS, as an interface engine would; the receiver must detect
// the duplicate and still answer AA. Prints one JSON summary line and exits
// 0 only if every message got AA.
//
// usage: node send.js HOST PORT COUNT [CONNS]
'use strict';
const { Client, Message } = require('node-hl7-client');

const [host, portStr, countStr, connsStr] = process.argv.slice(2);
const port = Number(portStr);
const count = Number(countStr || 10000);
const conns = Number(connsStr || 8);
// One message in flight per connection: node-hl7-client's MLLP codec joins
// ACKs that arrive in one read into one message, so pipelining would lose
// ACKs; its own waitAck mode never recovers after a dropped connection with
// a message outstanding. We pace each connection ourselves instead.
const WINDOW = 1;
const RESEND_MS = 2000;
const DEADLINE_MS = Number(process.env.INTEROP_DEADLINE_MS || 240000);

function pad(n, w) { return String(n).padStart(w, '0'); }
function ts() { return new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14); }

function buildMessage(i) {
  const id = 'N' + pad(i, 7);
  const mrn = 'M' + pad(i % 1000, 6);
  const text = [
    `MSH|^~\\&|NODEHL7|INTEROP|EHRGATE|EHRGATE|${ts()}||ADT^A04^ADT_A01|${id}|P|2.5.1`,
    `EVN|A04|${ts()}`,
    `PID|1||${mrn}^^^INTEROP&2.16.840.1.113883.3.9999.7&ISO^MR||Tester^Node^${pad(i, 5)}||19700101|U`,
    `PV1|1|O|CLINIC^^^INTEROP||||||||||||||||V${pad(i, 7)}^^^INTEROP^VN`,
  ].join('\r');
  return { id, text };
}

const state = new Map(); // id -> {text, lane, sentAt, code}
const stats = { count, sent: 0, resent: 0, acked: 0, aa: 0, nonAA: 0, errors: 0, lateAcks: 0, connections: conns };
const lanes = [];
let finished = false;

function finish(code) {
  if (finished) return;
  finished = true;
  stats.missing = count - stats.aa - stats.nonAA;
  process.stdout.write(JSON.stringify(stats) + '\n');
  Promise.all(lanes.map((l) => l.conn.close().catch(() => {}))).finally(() => process.exit(code));
}

function pump(lane) {
  while (lane.inflight.size < WINDOW && lane.queue.length > 0) {
    const id = lane.queue.shift();
    const st = state.get(id);
    st.sentAt = Date.now();
    lane.inflight.add(id);
    stats.sent++;
    lane.conn.sendMessage(new Message({ text: st.text })).catch(() => { stats.errors++; });
  }
}

// connectionTimeout > 0 is what makes the library reconnect after the
// server side drops the connection (it also recycles the socket after that
// long; unacknowledged messages are then resent below).
const client = new Client({ host, connectionTimeout: 60000, maxTimeout: 50 });
for (let l = 0; l < conns; l++) {
  const lane = { queue: [], inflight: new Set() };
  lane.conn = client.createConnection({
    port, waitAck: false, maxConnections: 50, maxAttempts: 50, maxConnectionAttempts: 50,
    retryLow: 100, retryHigh: 1000, maxLimit: 100000,
  }, async (res) => {
    const ack = res.getMessage();
    const code = ack.get('MSA.1').toString();
    const id = ack.get('MSA.2').toString();
    const st = state.get(id);
    if (!st || st.code) { stats.lateAcks++; return; }
    st.code = code;
    lane.inflight.delete(id);
    stats.acked++;
    if (code === 'AA' || code === 'CA') stats.aa++; else stats.nonAA++;
    if (stats.aa + stats.nonAA === count) finish(stats.nonAA === 0 ? 0 : 1);
    pump(lane);
  });
  lane.conn.on('client.error', (err) => { stats.errors++; if (process.env.INTEROP_DEBUG) console.error('lane', l, 'error', String(err)); });
  if (process.env.INTEROP_DEBUG) {
    for (const ev of ['connect', 'connection', 'close', 'open', 'client.timeout']) lane.conn.on(ev, () => console.error('lane', l, ev));
  }
  lanes.push(lane);
}
for (let i = 1; i <= count; i++) {
  const m = buildMessage(i);
  const lane = lanes[i % conns];
  state.set(m.id, { text: m.text, lane, sentAt: 0, code: '' });
  lane.queue.push(m.id);
}
for (const lane of lanes) {
  lane.conn.on('connect', () => pump(lane));
}
// Resend what has waited too long for its ACK (lost with a dropped connection).
setInterval(() => {
  const now = Date.now();
  for (const lane of lanes) {
    for (const id of lane.inflight) {
      const st = state.get(id);
      if (!st.code && now - st.sentAt > RESEND_MS) {
        stats.resent++;
        st.sentAt = now;
        lane.conn.sendMessage(new Message({ text: st.text })).catch(() => { stats.errors++; });
      }
    }
    pump(lane);
  }
}, 500).unref();
setTimeout(() => finish(2), DEADLINE_MS).unref();
setInterval(() => {}, 1 << 30); // keep the process alive until finish()
