/**
 * SocketWaiter (lib/tcp/ring.ts): a sleep first spins on the ring's probe and
 * returns without the epoll helper when data is there (the socket's oneshot is
 * not even re-armed); with nothing to read it spins its polls, then re-arms
 * and sleeps, and data arriving later wakes it through the helper.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { IrqHub } from "../../../lib/irq/hub.ts";
import { AGAIN, Listener, Socket } from "../../../lib/sock/mod.ts";
import { SocketWaiter } from "../../../lib/tcp/ring.ts";

test("tcp SocketWaiter: the spin takes data already there with no helper wake; otherwise it sleeps on readiness", async () => {
  const hub = await IrqHub.start();
  const l = await Listener.listen({ port: 0 });
  const c = await Socket.connect("127.0.0.1", l.port);
  const s = (await l.acceptAsync(10_000))!;
  const irq = hub.addSocket(s.fd);
  const buf = new Uint8Array(64);
  let got = 0, probes = 0;
  // The ring's probe: a nonblocking read; true once something arrived.
  const probe = () => {
    probes++;
    const n = s.recv(buf.subarray(got));
    if (n !== AGAIN && n > 0) got += n;
    return got > 0;
  };
  const w = new SocketWaiter();
  try {
    w.bind(s, irq, probe);
    w.spinPolls = 8;
    // Data already there: the first probe takes it, no sleep, nothing armed for the helper.
    c.send(new Uint8Array([1, 2, 3]));
    for (let i = 0; i < 1000 && !s.waitReadable(10); i++);
    // Registration armed the oneshot once: let the helper's wake for that arrival land first, or it
    // races the count read below (seen once in a loaded run).
    await new Promise((r) => setTimeout(r, 50));
    w.arm();
    const before = w.count;
    assert.equal(await w.sleep(30_000), true);
    assert.equal(w.spun, 1);
    assert.equal(got, 3);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(w.count, before, "no helper wake: the oneshot was never re-armed");
    // Nothing there: spinPolls probes, then a sleep the helper ends when data comes.
    got = 0;
    probes = 0;
    w.arm();
    const t = setTimeout(() => c.send(new Uint8Array([4])), 30);
    const woke = await w.sleep(30_000);
    clearTimeout(t);
    assert.equal(woke, true);
    assert.ok(probes >= 8, `${probes} probes before sleeping`);
    assert.equal(w.spun, 1, "woken by the helper, not the spin");
    assert.equal(w.count, before + 1);
    assert.equal(s.recv(buf), 1);
    // wake() ends a sleep at once (queue closing).
    w.arm();
    const p = w.sleep(30_000);
    w.wake();
    assert.equal(await p, false);
  } finally {
    hub.removeSocket(irq.word);
    c.close();
    s.close();
    l.close();
    await hub.close();
  }
});
