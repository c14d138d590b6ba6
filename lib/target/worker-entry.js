// The module a target Worker starts with: it loads worker.ts through a
// computed specifier, so Deno does not type-check the Worker's graph at every
// spawn (the main thread's check covers it).
const spec = "./worker" + ".ts";
await import(new URL(spec, import.meta.url).href);
