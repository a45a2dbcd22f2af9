// ESLint (flat config): typescript-eslint's strict, type-aware rules over src, test and bench;
// formatting is Prettier's (eslint-config-prettier turns off the rules it owns).
import tseslint from 'typescript-eslint'
import prettier from 'eslint-config-prettier'

export default tseslint.config(
  {ignores: ['dist/**', 'build/**', 'node_modules/**', 'eslint.config.js', 'bin/**', 'scripts/**']},
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {parserOptions: {projectService: true, tsconfigRootDir: import.meta.dirname}},
    rules: {
      // numbers, bigints and booleans in messages are what an operator reads; only objects are suspect
      '@typescript-eslint/restrict-template-expressions': ['error', {allowNumber: true, allowBoolean: true}],
      // slots and devices looked up after a check the type system cannot follow (members[slot]!)
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `() => void f()` shorthand in callbacks reads better than a block
      '@typescript-eslint/no-confusing-void-expression': ['error', {ignoreArrowShorthand: true}],
    },
  },
  {
    // a function a reader takes in at once, a file that owns one job (blank lines and comments not counted)
    files: ['src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', {max: 80, skipBlankLines: true, skipComments: true}],
      'max-lines': ['error', {max: 400, skipBlankLines: true, skipComments: true}],
    },
  },
  {
    // run() implements the async CommandImpl interface; a sync body must still reject rather than throw
    files: ['src/impl/**/*.ts'],
    rules: {'@typescript-eslint/require-await': 'off'},
  },
  {
    // tests and benches read the CLI's JSON output, whose shape is what they check
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // assertion messages print arrays and buffers of numbers as they are
      '@typescript-eslint/restrict-template-expressions': ['error', {allowNumber: true, allowBoolean: true, allowArray: true}],
      // JSON numbers from the CLI are `any` here too
      '@typescript-eslint/restrict-plus-operands': ['error', {allowAny: true}],
      // jsonOf<T>() / r5ctlJson<T>(): the caller names the JSON shape it expects
      '@typescript-eslint/no-unnecessary-type-parameters': 'off',
    },
  },
  prettier,
)
