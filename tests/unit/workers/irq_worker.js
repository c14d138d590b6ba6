// Test Worker for tests/unit/irq_test.ts. JavaScript, importing through computed
// specifiers, so `deno test` does not type-check it at every spawn.
// "write": write an eventfd `times` times, `gapMs` apart (a fake device raising interrupts).
// "wait": build an IrqWaiter from a posted word, arm, report, sleep, report what it saw.
const base = new URL("../../../lib/", import.meta.url);
const ffiMod = "ffi/mod" + ".ts", waiterMod = "irq/waiter" + ".ts";
const scope = globalThis;
scope.onmessage = async (e) => {
  const m = e.data;
  if (m.type === "write") {
    const { loadLibc } = await import(new URL(ffiMod, base).href);
    const libc = await loadLibc();
    const one = new Uint8Array(8);
    one[0] = 1;
    for (let i = 0; i < m.times; i++) {
      if (m.gapMs > 0) await new Promise((r) => setTimeout(r, m.gapMs));
      for (const fd of m.fds) libc.write(fd, one);
    }
    scope.postMessage({ type: "written" });
  } else if (m.type === "wait") {
    const { IrqWaiter } = await import(new URL(waiterMod, base).href);
    const w = new IrqWaiter(m.word);
    w.arm();
    scope.postMessage({ type: "armed" });
    const woke = await w.sleep(m.timeoutMs ?? Infinity);
    scope.postMessage({ type: "woke", woke, count: w.count });
  }
};
scope.postMessage({ type: "loaded" });
