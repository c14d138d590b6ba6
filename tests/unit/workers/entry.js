// Deno type-checks a TypeScript worker's module graph on every spawn under `deno test`; a
// JavaScript entry importing it through a computed specifier is not checked (as lib/sim does).
const entry = "./queue_worker" + ".ts";
await import(new URL(entry, import.meta.url).href);
