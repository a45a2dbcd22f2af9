/**
 * `npm run bench`: the read/write bench (bench.ts), then the recover bench (recover.ts), one after the
 * other (never at once: they would measure each other). --quick, --keep and --json go to both;
 * --profile, --runs N and --rss-large MiB only to the recover bench. Exit status: the worse of the two.
 */
import {spawnSync} from 'node:child_process'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const common = args.filter(a => ['--quick', '--keep', '--json'].includes(a))
let status = 0
for (const [script, argv] of [
  ['bench.js', common],
  ['recover.js', args],
] as const) {
  const r = spawnSync(process.execPath, [path.join(here, script), ...argv], {stdio: 'inherit'})
  if (r.error) throw r.error
  status = Math.max(status, r.status ?? 1)
  process.stdout.write('\n')
}
process.exitCode = status
