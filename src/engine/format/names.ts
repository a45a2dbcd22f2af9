/**
 * The names mdadm gives what a superblock holds: UUIDs in mdadm's form (and the other forms operators
 * paste) and layout names per level, both ways.
 */
// ---------------------------------------------------------------------------------------------
// UUIDs

/** mdadm's form: 'xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx' (bytes in on-disk order). */
export function formatUuid(u: Uint8Array): string {
  if (u.length !== 16) throw new RangeError(`uuid must be 16 bytes, got ${u.length}`)
  const h = Buffer.from(u).toString('hex')
  return `${h.slice(0, 8)}:${h.slice(8, 16)}:${h.slice(16, 24)}:${h.slice(24, 32)}`
}

const UUID_FORMS = [
  /^[0-9a-f]{8}:[0-9a-f]{8}:[0-9a-f]{8}:[0-9a-f]{8}$/i, // mdadm
  /^[0-9a-f]{32}$/i, // plain hex
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, // RFC 4122 text
]

/** Parse mdadm form, 32 plain hex digits, or RFC 8-4-4-4-12; bytes are taken in written order. */
export function parseUuid(s: string): Uint8Array {
  const t = s.trim()
  if (!UUID_FORMS.some(re => re.test(t)))
    throw new Error(`invalid UUID '${s}' (expected xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx, 32 hex digits, or 8-4-4-4-12)`)
  return Uint8Array.from(Buffer.from(t.replace(/[:-]/g, ''), 'hex'))
}

// ---------------------------------------------------------------------------------------------
// Layout names (mdadm maps.c r5layout / r6layout)

// In mdadm's tables the first entry with a given number is the name it prints; the later ones
// are aliases accepted on input. For RAID5 the ddf-* names are aliases of 1, 0 and 2 (the kernel
// lays RAID5 DDF arrays out like those); only RAID6 has the rotating DDF layouts 8, 9, 10.
/** the names RAID5 and RAID6 share, in mdadm's order (the first of a number is the one it prints) */
const R56_COMMON: ReadonlyArray<readonly [string, number]> = [
  ['left-asymmetric', 0],
  ['right-asymmetric', 1],
  ['left-symmetric', 2],
  ['right-symmetric', 3],
  ['default', 2],
  ['la', 0],
  ['ra', 1],
  ['ls', 2],
  ['rs', 3],
  ['parity-first', 4],
  ['parity-last', 5],
]

const R5_LAYOUTS: ReadonlyArray<readonly [string, number]> = [...R56_COMMON, ['ddf-zero-restart', 1], ['ddf-N-restart', 0], ['ddf-N-continue', 2]]

const R6_LAYOUTS: ReadonlyArray<readonly [string, number]> = [
  ...R56_COMMON,
  ['ddf-zero-restart', 8],
  ['ddf-N-restart', 9],
  ['ddf-N-continue', 10],
  ['left-asymmetric-6', 16],
  ['right-asymmetric-6', 17],
  ['left-symmetric-6', 18],
  ['right-symmetric-6', 19],
  ['parity-first-6', 20],
]

// RAID4 has no layout in mdadm ("layout not meaningful"); mdadm creates it with layout 0 and the
// kernel always puts parity on the last device. 5 (ALGORITHM_PARITY_N) is what a raid5->raid4
// takeover leaves. Both read as parity-last.
const R4_LAYOUTS: ReadonlyArray<readonly [string, number]> = [
  ['parity-last', 5],
  ['default', 0],
]

function tableFor(level: number): ReadonlyArray<readonly [string, number]> | null {
  if (level === 5) return R5_LAYOUTS
  if (level === 6) return R6_LAYOUTS
  if (level === 4) return R4_LAYOUTS
  return null
}

/** The name mdadm prints for a layout ('-unknown-' like mdadm when there is none). */
export function layoutName(level: number, layout: number): string {
  if (level === 4 && (layout === 0 || layout === 5)) return 'parity-last'
  const t = tableFor(level)
  const hit = t?.find(([, n]) => n === layout)
  return hit ? hit[0] : '-unknown-'
}

/** Inverse of layoutName; accepts every name and alias mdadm accepts for the level (case-sensitive, as mdadm). */
export function parseLayout(level: number, name: string): number {
  const t = tableFor(level)
  if (!t) throw new Error(`layout not meaningful for level ${level}`)
  const hit = t.find(([n]) => n === name)
  if (!hit) throw new Error(`layout '${name}' not understood for raid${level} (known: ${[...new Set(t.map(([n]) => n))].join(', ')})`)
  return hit[1]
}
