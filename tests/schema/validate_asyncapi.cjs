// Validate AsyncAPI documents with the official parser: node validate_asyncapi.cjs FILE...
// Prints one JSON line per file: {"file", "valid", "diagnostics": [{severity, code, message, path}]}.
// Severity: 0 error, 1 warning, 2 information, 3 hint. Exits 1 when any file has an error.
const fs = require("fs");
const { Parser } = require("@asyncapi/parser");

async function main() {
  const parser = new Parser();
  let failed = false;
  for (const file of process.argv.slice(2)) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"));
    const errors = diagnostics.filter((d) => d.severity === 0);
    if (errors.length > 0 || !document) failed = true;
    console.log(JSON.stringify({
      file,
      valid: errors.length === 0 && !!document,
      channels: document ? document.channels().length : 0,
      operations: document ? document.operations().length : 0,
      messages: document ? document.allMessages().length : 0,
      diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
    }));
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err) => { console.error(err); process.exit(2); });
