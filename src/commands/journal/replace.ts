// The oclif command; its flags, help texts and body are in src/impl/journal/replace.ts (see src/cli/spec.ts).
import {commandClass} from '../../base-command.js'
import * as impl from '../../impl/journal/replace.js'

export default commandClass(impl)
