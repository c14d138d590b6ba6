// Deno entry of nvmet_worker.ts (a JavaScript entry is not type-checked at each spawn).
const entry = "./nvmet_worker" + ".ts";
await import(new URL(entry, import.meta.url).href);
