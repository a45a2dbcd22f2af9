/**
 * render/json-stream.ts: an object written in parts prints exactly what JSON.stringify(object,
 * null, 2) prints for the whole, so a streamed --json report parses like any other command's.
 */
import assert from 'node:assert/strict'
import {JsonObjectStream} from '../../src/render/json-stream.js'

function streamed(head: Record<string, unknown>, key: string, items: unknown[], tail: Record<string, unknown>): string {
  let text = ''
  const s = new JsonObjectStream(t => (text += t))
  for (const [k, v] of Object.entries(head)) s.field(k, v)
  s.openArray(key)
  for (const it of items) s.item(it)
  s.closeArray()
  for (const [k, v] of Object.entries(tail)) s.field(k, v)
  s.end()
  return text
}

describe('render/json-stream: an object written in parts', () => {
  const cases: [string, Record<string, unknown>, unknown[], Record<string, unknown>][] = [
    ['no items', {journal: 'j.img', n: 3}, [], {ok: true}],
    [
      'nested items, strings that need escaping',
      {name: 'a "b"\n%s'},
      [{a: [1, {b: []}], c: {}}, 'x', 7, null],
      {stop: {reason: 'bad-magic', at: [1, 2]}},
    ],
    ['fields undefined are left out, as JSON.stringify leaves them', {a: undefined, b: 1}, [{stale: undefined, p: 2}], {c: undefined}],
    ['the array first', {}, [[1, 2], []], {}],
  ]
  for (const [name, head, items, tail] of cases)
    it(`${name}: the bytes JSON.stringify(whole, null, 2) prints`, () => {
      const whole = {...head, blocks: items, ...tail}
      assert.equal(streamed(head, 'blocks', items, tail), JSON.stringify(whole, null, 2) + '\n')
    })
})
