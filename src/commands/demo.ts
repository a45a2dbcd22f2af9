// The oclif command; its flags, help texts and body are in src/impl/demo.ts (see src/cli/spec.ts).
import {commandClass} from '../base-command.js'
import * as impl from '../impl/demo.js'

export default commandClass(impl)
