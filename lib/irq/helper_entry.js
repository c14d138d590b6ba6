// Entry of the IrqHub helper Worker. A JavaScript entry importing the module
// through a computed specifier is not type-checked at each spawn under
// `deno test` (lib/sim does the same); lib/irq/helper.ts is checked with lib/.
const entry = "./helper" + ".ts";
await import(new URL(entry, import.meta.url).href);
