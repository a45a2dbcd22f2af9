#!/usr/bin/env node
// `npm install` hook: builds the optional CRC32C addon (native/crc32c_pages.c) with node-gyp into
// build/Release/crc32c_pages.node. It must NEVER fail the install: without the addon r5ctl falls
// back to @node-rs/crc32, then to pure-JS crc-32 (src/engine/checksum.ts). Silent on success; on
// failure one warning line, the full log in build/native-build.log.
//   R5CTL_SKIP_NATIVE=1     do not build
//   R5CTL_NATIVE_VERBOSE=1  show node-gyp's output
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const verbose = process.env.R5CTL_NATIVE_VERBOSE === '1';
const warn = (why) => {
  console.warn(`r5ctl: native CRC32C addon not built (${why}); using @node-rs/crc32 or pure JS instead`);
  process.exit(0);
};

try {
  if (process.env.R5CTL_SKIP_NATIVE === '1') process.exit(0);

  // node-gyp: npm's lifecycle sets npm_config_node_gyp to its bundled copy; otherwise look for npm's
  // copy next to this node, then a `node-gyp` on PATH.
  const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  let cmd;
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) cmd = [process.execPath, process.env.npm_config_node_gyp];
  else if (fs.existsSync(bundled)) cmd = [process.execPath, bundled];
  else cmd = ['node-gyp'];

  // Headers: use the ones installed beside this node (<prefix>/include/node) so node-gyp never goes
  // to the network (offline installs; npm 11 no longer passes an unknown `nodedir` setting along).
  const args = ['rebuild'];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

  const res = spawnSync(cmd[0], [...cmd.slice(1), ...args], {
    cwd: root,
    encoding: 'utf8',
    stdio: verbose ? 'inherit' : 'pipe',
    timeout: 180_000,
  });
  const log = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  const saveLog = () => {
    try {
      fs.mkdirSync(path.join(root, 'build'), { recursive: true });
      fs.writeFileSync(path.join(root, 'build', 'native-build.log'), `${cmd.join(' ')} ${args.join(' ')}\n${log}`);
      return '; log in build/native-build.log';
    } catch {
      return '';
    }
  };
  if (res.error) warn(`${cmd.at(-1)}: ${res.error.code ?? res.error.message}${saveLog()}`);
  if (res.status !== 0) warn(`node-gyp exited ${res.status ?? res.signal}${saveLog()}`);

  // Built: make sure it loads and computes the standard check value; checksum.ts checks again at run time.
  const addon = createRequire(import.meta.url)(path.join(root, 'build', 'Release', 'crc32c_pages.node'));
  if (!addon.sse42) warn('built, but this CPU has no SSE4.2');
  if ((~addon.raw(0xffffffff, Buffer.from('123456789')) >>> 0) !== 0xe3069283) warn('built, but it computes wrong values');
} catch (e) {
  warn(String(e?.message ?? e).split('\n')[0]);
}
