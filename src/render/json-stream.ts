/**
 * One JSON object written out as its parts become known (fields, then one array item by item,
 * then more fields), byte for byte what JSON.stringify(object, null, 2) prints for the whole: a
 * report of any length leaves the process as it is made instead of being held whole.
 */
const nested = (value: unknown, depth: number) => JSON.stringify(value, null, 2).replace(/\n/g, '\n' + '  '.repeat(depth))

export class JsonObjectStream {
  private fields = 0
  private items = -1

  constructor(private readonly write: (text: string) => void) {
    write('{')
  }

  field(key: string, value: unknown): void {
    if (value === undefined) return
    this.write(`${this.fields++ ? ',' : ''}\n  ${JSON.stringify(key)}: ${nested(value, 1)}`)
  }

  /** `key`: an array whose items follow (item) until closeArray */
  openArray(key: string): void {
    this.write(`${this.fields++ ? ',' : ''}\n  ${JSON.stringify(key)}: [`)
    this.items = 0
  }

  item(value: unknown): void {
    this.write(`${this.items++ ? ',' : ''}\n    ${nested(value, 2)}`)
  }

  closeArray(): void {
    this.write(this.items > 0 ? '\n  ]' : ']')
    this.items = -1
  }

  end(): void {
    this.write(this.fields ? '\n}\n' : '}\n')
  }
}
