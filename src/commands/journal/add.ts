// The oclif command; its flags, help texts and body are in src/impl/journal/add.ts (see src/cli/spec.ts).
import {commandClass} from '../../base-command.js'
import * as impl from '../../impl/journal/add.js'

export default commandClass(impl)
