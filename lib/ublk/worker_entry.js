// Entry of the ublk queue Worker. A JavaScript entry importing the module through a computed
// specifier is not type-checked at each spawn under `deno test` (as lib/irq and lib/sim do);
// lib/ublk/worker.ts is checked with lib/.
const entry = "./worker" + ".ts";
await import(new URL(entry, import.meta.url).href);
