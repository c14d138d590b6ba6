import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { AGAIN, Listener, Socket } from "../../../lib/sock/mod.ts";
import { PollGroup, SockWire } from "../../../lib/target/poll.ts";
import type { TargetConn } from "../../../lib/target/conn.ts";

/** A connection stand-in: records what the wire feeds it and whether it was told of the close. */
function fakeConn() {
  const got: number[] = [];
  const c = {
    got,
    closed: false,
    flushes: 0,
    feed(b: Uint8Array) {
      for (const x of b) got.push(x);
    },
    wireClosed() {
      c.closed = true;
    },
    flush() {
      c.flushes++;
    },
    destroy() {},
  };
  return c;
}

async function pair(): Promise<{ l: Listener; client: Socket; server: Socket }> {
  const l = await Listener.listen({ port: 0 });
  const client = await Socket.connect("127.0.0.1", l.port);
  let server = l.accept();
  for (let i = 0; server === null && i < 500; i++) {
    await new Promise((r) => setTimeout(r, 2));
    server = l.accept();
  }
  assert.ok(server, "accepted");
  return { l, client, server };
}

test("target poll: a pass reads what arrived and feeds it in order; end of stream closes the wire and tells the connection", async () => {
  const { l, client, server } = await pair();
  const g = new PollGroup(server.libc);
  const w = new SockWire(server), c = fakeConn();
  try {
    g.add(w, c as unknown as TargetConn);
    const msg = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    let off = 0;
    while (off < msg.length || c.got.length < msg.length) {
      if (off < msg.length) {
        const k = client.send(msg.subarray(off));
        if (k !== AGAIN) off += k;
      }
      g.pass(10);
    }
    assert.deepEqual(new Uint8Array(c.got), msg);
    assert.ok(c.flushes > 0); // every pass ends with the connections' batches
    client.shutdown();
    for (let i = 0; i < 100 && !c.closed; i++) g.pass(10);
    assert.ok(c.closed);
    assert.equal(w.closed, true);
    assert.equal(g.size, 0);
  } finally {
    client.close();
    if (!w.closed) server.close();
    l.close();
  }
});

test("target poll: a send the kernel cannot take whole is kept and finished by later passes (POLLOUT), bytes in order", async () => {
  const { l, client, server } = await pair();
  server.setBufferSizes({ send: 4096 });
  const g = new PollGroup(server.libc);
  const w = new SockWire(server), c = fakeConn();
  try {
    g.add(w, c as unknown as TargetConn);
    const a = new Uint8Array(2 << 20).map((_, i) => (i * 13) & 0xff);
    const b = new Uint8Array(1000).fill(0xee);
    assert.equal(w.send(a, a.length), false); // never keeps the caller's buffer
    assert.ok(w.blocked, "the peer is not reading: some bytes wait");
    w.send(b, b.length); // queued behind
    const got = new Uint8Array(a.length + b.length), buf = new Uint8Array(65536);
    let n = 0;
    while (n < got.length) {
      const k = client.recv(buf);
      if (k > 0) got.set(buf.subarray(0, k), n), n += k;
      else if (k === AGAIN) g.pass(1);
      else assert.fail(`recv ${k}`);
    }
    assert.deepEqual(got.subarray(0, a.length), a);
    assert.deepEqual(got.subarray(a.length), b);
    assert.equal(w.blocked, false);
  } finally {
    w.destroy();
    client.close();
    l.close();
  }
});
