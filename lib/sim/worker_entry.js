// Entry of the simulated controller's Worker. Deno type-checks a TypeScript
// worker's whole module graph on every spawn (0.6-0.9 s each in this project);
// a JavaScript entry that imports the device through a computed specifier is
// not checked at spawn. lib/sim/worker.ts is still checked with the rest of lib/.
const entry = "./worker" + ".ts";
await import(new URL(entry, import.meta.url).href);
