/**
 * A writer that holds devices open for a test, as a child process: `node holder.js DEV...` prints
 * `ready`, waits for a line `go` on stdin, opens every device writable (taking its lock), prints
 * `won` or `refused <exit code> <message>`, and when it won holds the devices until stdin closes.
 * Tests race several of these, or SIGKILL one to leave an abandoned lock behind.
 */
import {FileDevice} from '../../src/engine/device.js'
import {R5Error} from '../../src/engine/errors.js'

const devices = process.argv.slice(2)
process.stdout.write('ready\n')
let input = ''
let held: FileDevice[] | null = null
process.stdin.setEncoding('utf8')
process.stdin.on('data', chunk => {
  input += String(chunk)
  if (held || !input.includes('go\n')) return
  held = []
  try {
    for (const d of devices) held.push(FileDevice.open(d, {writable: true}))
    process.stdout.write('won\n')
  } catch (error) {
    for (const d of held) d.close()
    const e = error as Partial<R5Error>
    process.stdout.write(`refused ${e.exitCode ?? '?'} ${e.message}\n`)
    process.exit(0)
  }
})
process.stdin.on('end', () => {
  for (const d of held ?? []) d.close()
  process.exit(0)
})
