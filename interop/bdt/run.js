#!/usr/bin/env node
// Runs the SMART Bulk Data server test kit (bdt, vendored under ./bdt) with
// the configuration file given as the only argument, and prints one JSON
// object a line per test: {"path","name","status","messages"}, where
// messages are the test's error, not-supported and warning entries
// (truncated). The kit's own JSON reporter leaves those out, and a test
// failure without its reason cannot be acted on. Requests, responses and
// tokens the kit logs are never printed.
"use strict";

const BDT = require("./bdt/build/lib/bdt").default;

const MAX = 600;

function text(x) {
    let s;
    if (x instanceof Error) {
        s = x.message || String(x);
    } else if (typeof x === "string") {
        s = x;
    } else {
        try { s = JSON.stringify(x); } catch { s = String(x); }
    }
    return s.length > MAX ? s.slice(0, MAX) + "..." : s;
}

async function main() {
    const file = process.argv[2];
    if (!file) {
        console.error("usage: node run.js CONFIG.json");
        process.exit(2);
    }
    const config = await BDT.loadConfigFile(file);
    const bdt = new BDT({ ...config, apiVersion: process.env.BDT_API_VERSION || "2.0", bail: false, match: "" });
    bdt.load("**/*.test.js");
    const runner = bdt.createRunner();
    runner.on("testEnd", test => {
        const messages = [];
        for (const type of ["error", "info", "warn"]) {
            for (const e of test.console.entries.filter(e => e.type === type && e.label === type)) {
                messages.push(type + ": " + e.data.map(text).join(" "));
            }
        }
        process.stdout.write(JSON.stringify({ path: test.path, name: test.name, status: test.status, messages }) + "\n");
    });
    await runner.run(bdt.getPath(""));
}

main().catch(err => {
    console.error(err && err.message ? err.message : String(err));
    process.exit(1);
});
