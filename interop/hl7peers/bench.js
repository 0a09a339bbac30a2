#!/usr/bin/env node
// Peer benchmark for scripts/hl7-peer-bench.sh: parses every .hl7 file of a
// directory with one npm HL7 v2 parser and reads every component (or every
// sub-component) of every repetition of every field of every segment, the
// same walk as ehrgate's BenchmarkCorpusReadAll (hl7/corpus_bench_test.go).
// An empty field, repetition or component is read once, as "" (as the Go
// walk does). Prints one JSON line: parser, mode, messages, values per
// message, messages/s (wall) and messages per CPU-second.
//
// usage: node bench.js medplum|node-hl7-client components|subcomponents DIR [SECONDS]
'use strict';
const fs = require('fs');
const path = require('path');

const [peer, mode, dir, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 3);
const sub = mode === 'subcomponents';
if (!['medplum', 'node-hl7-client'].includes(peer) || !['components', 'subcomponents'].includes(mode) || !dir) {
  console.error('usage: node bench.js medplum|node-hl7-client components|subcomponents DIR [SECONDS]');
  process.exit(2);
}

// The peers split segments on CR (node-hl7-client) or CR/LF runs (medplum)
// and need the text to start with MSH; the Go parser takes the files as
// they are. Normalising terminators happens once, outside the timed loop.
const names = fs.readdirSync(dir).filter((f) => f.endsWith('.hl7')).sort();
let texts = names.map((f) => fs.readFileSync(path.join(dir, f), 'utf8').replace(/^\uFEFF/, '').replace(/\r\n|\n/g, '\r').replace(/\r+$/, ''));

let walk;
if (peer === 'medplum') {
  // @medplum/core 5 touches WebSocket at load time (Node 22 has it); the
  // parser does not use it.
  if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = class {};
  const { Hl7Message } = require('@medplum/core');
  walk = (text) => {
    const msg = Hl7Message.parse(text);
    let n = 0, size = 0;
    for (const seg of msg.segments) {
      const nf = seg.fields.length;
      for (let fi = 1; fi < nf; fi++) {
        const field = seg.getField(fi);
        const reps = field.components;
        for (let r = 0; r < reps.length; r++) {
          const nc = reps[r].length;
          for (let c = 1; c <= nc; c++) {
            if (!sub) {
              size += field.getComponent(c, undefined, r).length; n++;
              continue;
            }
            const ns = field.getComponent(c, undefined, r).split(msg.context.subcomponentSeparator).length;
            for (let s = 0; s < ns; s++) { size += field.getComponent(c, s, r).length; n++; }
          }
        }
      }
    }
    return [n, size];
  };
} else {
  const { Message } = require('node-hl7-client');
  walk = (text) => {
    const msg = new Message({ text });
    let n = 0, size = 0;
    for (const seg of msg.toArray()) {
      const nf = seg.length;
      for (let fi = 1; fi < nf; fi++) {
        const field = seg.get(fi);
        const nr = Math.max(1, field.length);
        for (let r = 0; r < nr; r++) {
          const rep = field.get(r);
          const nc = Math.max(1, rep.length);
          for (let c = 0; c < nc; c++) {
            const comp = rep.get(c);
            if (!sub) { size += comp.toString().length; n++; continue; }
            const ns = Math.max(1, comp.length);
            for (let s = 0; s < ns; s++) { size += comp.get(s).toString().length; n++; }
          }
        }
      }
    }
    return [n, size];
  };
}

// A message the peer refuses (node-hl7-client: "Multiple MSH segments
// found" for one fixture) is left out of its run and listed.
const skipped = [];
texts = texts.filter((t, i) => {
  try { walk(t); return true; } catch (e) { skipped.push(names[i]); return false; }
});

// Warm up (JIT), then run whole passes over the corpus for SECONDS.
let values = 0;
for (let i = 0; i < 20; i++) for (const t of texts) walk(t);
for (const t of texts) values += walk(t)[0];
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
let msgs = 0, sink = 0;
const deadline = t0 + BigInt(Math.round(seconds * 1e9));
do {
  for (const t of texts) { sink += walk(t)[1]; msgs++; }
} while (process.hrtime.bigint() < deadline);
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const cpuSec = (cpu.user + cpu.system) / 1e6;
console.log(JSON.stringify({
  parser: peer === 'medplum' ? '@medplum/core' : 'node-hl7-client',
  version: JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', peer === 'medplum' ? '@medplum/core' : 'node-hl7-client', 'package.json'), 'utf8')).version,
  mode, messages: texts.length, skipped, valuesPerMsg: +(values / texts.length).toFixed(1),
  msgsPerSec: Math.round(msgs / wall), msgsPerCpuSec: Math.round(msgs / cpuSec), sink: sink > 0,
}));
