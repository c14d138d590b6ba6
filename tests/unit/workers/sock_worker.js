// Test Worker for tests/unit/sock/socket_test.ts. JavaScript, importing through computed
// specifiers, so `deno test` does not type-check it at every spawn.
// "echo": adopt a posted fd, echo bytes until end of stream, close it.
// "block": adopt a posted fd, block in poll until readable (another thread's shutdown), report recv.
// "sleep": rebuild a socket waiter from a posted IrqWord, arm, report, sleep, report (the fd stays the poster's).
const base = new URL("../../../lib/", import.meta.url);
const ffiMod = "ffi/mod" + ".ts", sockMod = "sock/mod" + ".ts", irqMod = "irq/socket" + ".ts";
const scope = globalThis;
scope.onmessage = async (e) => {
  const m = e.data;
  const { loadLibc } = await import(new URL(ffiMod, base).href);
  const { Socket, AGAIN } = await import(new URL(sockMod, base).href);
  const libc = await loadLibc();
  if (m.type === "sleep") {
    const { socketWaiter } = await import(new URL(irqMod, base).href);
    const w = socketWaiter(libc, m.word);
    w.arm();
    scope.postMessage({ type: "armed" });
    const woke = await w.sleep(m.timeoutMs ?? 60_000);
    scope.postMessage({ type: "done", readable: woke, n: w.count });
    return;
  }
  const s = Socket.adopt(libc, m.fd);
  try {
    if (m.type === "echo") {
      const buf = new Uint8Array(4096);
      let echoed = 0;
      for (;;) {
        s.waitReadable(-1);
        const n = s.recv(buf);
        if (n === AGAIN) continue;
        if (n === 0) break;
        let off = 0;
        while (off < n) {
          const k = s.send(buf.subarray(off, n));
          if (k === AGAIN) s.waitWritable(-1);
          else off += k;
        }
        echoed += n;
      }
      scope.postMessage({ type: "done", echoed });
    } else if (m.type === "block") {
      scope.postMessage({ type: "blocking" });
      const readable = s.waitReadable(-1);
      const n = s.recv(new Uint8Array(16));
      scope.postMessage({ type: "done", readable, n });
    }
  } catch (err) {
    scope.postMessage({ type: "done", error: String(err) });
  } finally {
    s.close();
  }
};
scope.postMessage({ type: "loaded" });
