// Entry of the instant-device benchmark Worker under Deno: a JavaScript entry importing
// instant_worker.ts through a computed specifier is not type-checked at each spawn.
const entry = "./instant_worker" + ".ts";
await import(new URL(entry, import.meta.url).href);
