/**
 * Sockets in the IrqHub: readiness wakes a sleeper without the helper reading
 * any data, the oneshot stays silent while the queue polls, re-arming on an
 * already readable socket wakes at once, end of stream wakes, and a Worker
 * sleeps on a socket word posted to it.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { IrqHub } from "../../../lib/irq/hub.ts";
import { socketWaiter } from "../../../lib/irq/socket.ts";
import { AGAIN, Listener, Socket } from "../../../lib/sock/mod.ts";

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup() {
  const hub = await IrqHub.start();
  const l = await Listener.listen({ port: 0 });
  const c = await Socket.connect("127.0.0.1", l.port);
  const s = (await l.acceptAsync(10_000))!;
  assert.ok(s);
  const close = async (word?: Parameters<IrqHub["remove"]>[0]) => {
    if (word) await hub.remove(word);
    c.close();
    s.close();
    l.close();
    await hub.close();
  };
  return { hub, c, s, close };
}

test("irq socket: a sleeper wakes on data, the helper reads none of it; oneshot silent until re-armed", async () => {
  const { hub, c, s, close } = await setup();
  const w = hub.addSocket(s.fd);
  try {
    assert.ok(w.gated);
    w.arm();
    assert.equal(s.recv(new Uint8Array(8)), AGAIN);
    const t = setTimeout(() => c.send(new Uint8Array([1, 2, 3, 4])), 20);
    const woke = await w.sleep(30_000);
    clearTimeout(t);
    assert.equal(woke, true);
    const count = w.count;
    // More data while "polling" (not re-armed): no further wake-ups counted.
    c.send(new Uint8Array([5, 6]));
    await delay(50);
    assert.equal(w.count, count, "oneshot: silent until re-armed");
    const buf = new Uint8Array(16);
    let got = 0;
    while (got < 6) {
      const n = s.recv(buf.subarray(got));
      if (n > 0) got += n;
      else await delay(1);
    }
    assert.deepEqual([...buf.subarray(0, 6)], [1, 2, 3, 4, 5, 6], "the helper consumed nothing");
    // Re-arm with data already queued: fires at once.
    c.send(new Uint8Array([7]));
    await delay(20);
    w.arm();
    assert.equal(await w.sleep(30_000), true, "re-armed on a readable socket wakes");
    assert.equal(s.recv(buf), 1);
    // End of stream wakes too.
    w.arm();
    assert.equal(s.recv(buf), AGAIN);
    c.shutdown();
    assert.equal(await w.sleep(30_000), true);
    assert.equal(s.recv(buf), 0);
    // Timeout with nothing to read.
    w.arm();
    assert.equal(await w.sleep(30), w.fired());
  } finally {
    await close(w.word);
  }
});

test("irq socket: a Worker sleeps on a posted socket word and wakes on data", async () => {
  const { hub, c, s, close } = await setup();
  const waiter = hub.addSocket(s.fd);
  const wk = new Worker(new URL("../workers/sock_worker.js", import.meta.url), { type: "module" });
  try {
    const msgs: { type: string; readable?: boolean }[] = [];
    let notify = () => {};
    wk.onmessage = (e) => (msgs.push(e.data), notify());
    const next = async (type: string) => {
      while (!msgs.length) await new Promise<void>((r) => notify = r);
      const m = msgs.shift()!;
      assert.equal(m.type, type, JSON.stringify(m));
      return m;
    };
    await next("loaded");
    wk.postMessage({ type: "sleep", word: waiter.word, timeoutMs: 60_000 });
    await next("armed");
    await delay(20);
    c.send(new Uint8Array([42]));
    const d = await next("done");
    assert.equal(d.readable, true);
    const buf = new Uint8Array(4);
    s.waitReadable(10_000);
    assert.equal(s.recv(buf), 1);
    assert.equal(buf[0], 42);
    // socketWaiter refuses an eventfd word.
    assert.throws(() => socketWaiter(s.libc, { sab: hub.sab, slot: 1 }), /socket/);
  } finally {
    wk.terminate();
    await close(waiter.word);
  }
});
