/**
 * Arrays on image files for the end-to-end tests, built with the CLI itself, and the readers of
 * what the reference tools (mdadm --examine, grub-fstest) print about them.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, run, ok, jsonOf, describeRun} from './cli.js'

export interface ArraySpec {
  level: 4 | 5 | 6
  raidDevices: number
  chunk?: string
  /** member image size (default 16M) */
  size?: string
  journalSize?: string
  layout?: string
  /** array name; grub shows the part after the colon as (md/NAME) */
  name?: string
}

export interface ImageArray {
  dir: string
  members: string[]
  journal: string
  /** journal first, then the members: what most commands get */
  all: string[]
  uuid: string
  level: number
  layout: string
  chunkBytes: number
  dataDisks: number
  /** bytes of one stripe row: chunk × data disks */
  rowBytes: number
  sizeBytes: number
  name: string
}

/** `r5ctl create` on fresh files m0.img.. and j.img in `dir` (created if needed). */
export function createImageArray(dir: string, spec: ArraySpec): ImageArray {
  fs.mkdirSync(dir, {recursive: true})
  const members = Array.from({length: spec.raidDevices}, (_, i) => path.join(dir, `m${i}.img`))
  const journal = path.join(dir, 'j.img')
  const name = spec.name ?? `r5ctl:${path.basename(dir)}`
  const args = [
    'create',
    '--json',
    '--level',
    String(spec.level),
    '--raid-devices',
    String(spec.raidDevices),
    '--chunk',
    spec.chunk ?? '64K',
    '--size',
    spec.size ?? '16M',
    '--journal-size',
    spec.journalSize ?? '8M',
    '--name',
    name,
    '--write-journal',
    journal,
    ...(spec.layout ? ['--layout', spec.layout] : []),
    ...members,
  ]
  const res = jsonOf(ok(r5ctl(args)))
  const dataDisks = spec.level === 6 ? spec.raidDevices - 2 : spec.raidDevices - 1
  assert.equal(res.raidDevices, spec.raidDevices)
  return {
    dir,
    members,
    journal,
    all: [journal, ...members],
    uuid: res.arrayUuid,
    level: res.level,
    layout: res.layout,
    chunkBytes: res.chunkBytes,
    dataDisks,
    rowBytes: res.chunkBytes * dataDisks,
    sizeBytes: res.arraySizeBytes,
    name,
  }
}

// ---------------------------------------------------------------------------------------------
// mdadm --examine style text

export interface ExamineBlock {
  device: string
  fields: Record<string, string>
}

/**
 * Parse `mdadm --examine` (or `r5ctl examine`) output: a `DEVICE:` line, then `Key : value` lines
 * until the next device. Blank lines are ignored.
 */
export function parseExamine(text: string): ExamineBlock[] {
  const blocks: ExamineBlock[] = []
  for (const line of text.split('\n')) {
    if (/^\S.*:$/.test(line)) {
      blocks.push({device: line.slice(0, -1), fields: {}})
      continue
    }
    const m = /^\s*([A-Za-z][A-Za-z ]*?)\s+:\s(.*)$/.exec(line)
    if (m && blocks.length) blocks[blocks.length - 1].fields[m[1]] = m[2].trim()
  }
  return blocks
}

/** `mdadm --examine DEV` parsed; asserts mdadm succeeded. */
export function mdadmExamine(mdadm: string, device: string): Record<string, string> {
  const r = run(mdadm, ['--examine', device])
  assert.equal(r.status, 0, `mdadm --examine failed: ${describeRun(r)}`)
  const blocks = parseExamine(r.stdout.toString('utf8'))
  assert.equal(blocks.length, 1, `mdadm --examine ${device} printed ${blocks.length} blocks:\n${r.stdout.toString()}`)
  return blocks[0].fields
}

// ---------------------------------------------------------------------------------------------
// grub-fstest

/**
 * The grub disk names (e.g. `md/NAME`) that grub-fstest assembles from these image files, from
 * its `ls` command.
 */
export function grubDisks(grub: string, images: string[]): string[] {
  const r = run(grub, ['-c', String(images.length), ...images, 'ls'])
  assert.equal(r.status, 0, `grub-fstest ls failed: ${describeRun(r)}`)
  return [...r.stdout.toString('utf8').matchAll(/\((md[^)]*)\)/g)].map(m => m[1])
}

/**
 * Read `bytes` from the start of grub disk `disk` assembled from `images`, with grub's block-list
 * syntax `(DISK)0+SECTORS` and the `cp` command, into `outFile`; returns the bytes.
 */
export function grubRead(grub: string, images: string[], disk: string, bytes: number, outFile: string): Buffer {
  assert.equal(bytes % 512, 0)
  fs.rmSync(outFile, {force: true})
  const r = run(grub, ['-c', String(images.length), ...images, 'cp', `(${disk})0+${bytes / 512}`, outFile])
  assert.equal(r.status, 0, `grub-fstest cp failed: ${describeRun(r)}`)
  return fs.readFileSync(outFile)
}

/** Every way of choosing k of the items. */
export function combinations<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]]
  if (items.length < k) return []
  const [first, ...rest] = items
  return [...combinations(rest, k - 1).map(c => [first, ...c]), ...combinations(rest, k)]
}
