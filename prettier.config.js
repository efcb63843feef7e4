// Prettier: the style the code already has (single quotes, 2-space indent, semicolons, trailing commas, `(x) =>`).
//
// printWidth 160: the code is dense, and its long lines are mostly messages and hints (doctor checks, error texts,
// log lines) that prettier cannot break. Measured on the tree before formatting (258 .ts/.js/.mjs files, 43.6k lines):
//   width 120: 228 files rewrapped, +11.3k/-2.7k lines, 435 lines still over   (2261 lines were over 120)
//   width 140: 198 files rewrapped,  +6.9k/-1.7k lines, 193 lines still over   (1136 lines were over 140)
//   width 160: 169 files rewrapped,  +4.3k/-1.2k lines, 101 lines still over   ( 562 lines were over 160)
//   width 180: 148 files rewrapped,  +3.0k/-1.1k lines,  62 lines still over   ( 267 lines were over 180)
// 160 ends the 200+ character lines and the expression-packed one-liners without turning every two-argument call
// into a column; the lines left over 160 are single string literals.
/** @type {import('prettier').Config} */
export default {
  printWidth: 160,
  tabWidth: 2,
  useTabs: false,
  semi: true,
  singleQuote: true,
  trailingComma: 'all',
  arrowParens: 'always',
  endOfLine: 'lf',
};
