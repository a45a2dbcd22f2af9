/**
 * The one translation of a command spec (src/cli/spec.ts) into oclif's flag and arg definitions. The oclif
 * command classes (commandClass in src/base-command.ts) get their `flags`, `baseFlags` and `args` from here,
 * and the start-up fast path (src/cli/fast.ts) hands the same definitions to oclif's own parser. Only
 * oclif's `flags` and `args` subpath modules are loaded, not @oclif/core's index (Config, plugins, help).
 */
import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type {ArgInput, FlagInput} from '@oclif/core/interfaces'
import {BASE_FLAGS, type ArgSpec, type CommandSpec, type FlagSpec} from './spec.js'

/** oclif flag definitions from our flag specs (only the keys that are set, so the manifest stays minimal). */
export function oclifFlags(specs: Record<string, FlagSpec>): FlagInput {
  const out: FlagInput = {}
  for (const [name, s] of Object.entries(specs)) {
    const {type, ...opts} = s
    // the spec's keys are a subset of oclif's flag options; oclif's generic option types cannot see which
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- optional keys may be present as undefined
    const o = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Record<string, never>
    out[name] = type === 'boolean' ? Flags.boolean(o) : type === 'integer' ? Flags.integer(o) : Flags.string(o)
  }
  return out
}

/** oclif arg definitions from our arg specs (all strings). */
export function oclifArgs(specs: Record<string, ArgSpec> | undefined): ArgInput {
  const out: ArgInput = {}
  for (const [name, s] of Object.entries(specs ?? {})) out[name] = Args.string({...s})
  return out
}

/** What an oclif command class declares for parsing (besides `enableJsonFlag`, which R5Command sets). */
export interface ParserDefinitions {
  flags: FlagInput
  baseFlags: FlagInput
  args: ArgInput
  strict: boolean
}

/** The parsing statics of the command class of `spec`; every call builds fresh objects (oclif's parser names them in place). */
export function parserDefinitions(spec: CommandSpec): ParserDefinitions {
  return {flags: oclifFlags(spec.flags), baseFlags: oclifFlags(BASE_FLAGS), args: oclifArgs(spec.args), strict: spec.strict}
}
