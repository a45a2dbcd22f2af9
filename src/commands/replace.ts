// The oclif command; its flags, help texts and body are in src/impl/replace.ts (see src/cli/spec.ts).
import {commandClass} from '../base-command.js'
import * as impl from '../impl/replace.js'

export default commandClass(impl)
