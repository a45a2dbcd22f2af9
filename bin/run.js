#!/usr/bin/env node
// Plain command lines (`r5ctl examine a.img`, `r5ctl --version`) run without loading oclif's Config, parsed
// by oclif's parser alone: see dist/src/cli/fast.js. Everything else (help, plugins, unknown commands, parse
// errors, …) goes to oclif.
let fast
try {
  fast = await import('../dist/src/cli/fast.js')
} catch {}

if (!(await fast?.fastRun(process.argv.slice(2)))) {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
}
