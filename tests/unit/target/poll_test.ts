import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { AGAIN, Listener, Socket } from "../../../lib/sock/mod.ts";
import { PollGroup, SockWire } from "../../../lib/target/poll.ts";
import type { TargetConn } from "../../../lib/target/conn.ts";
import { loadLibc } from "../../../lib/ffi/mod.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK } from "../../../lib/ffi/types.ts";

/** A connection stand-in: records what the wire feeds it and whether it was told of the close. */
function fakeConn() {
  const got: number[] = [];
  const c = {
    got,
    closed: false,
    flushes: 0,
    feed(b: Uint8Array, n = b.length) {
      for (let i = 0; i < n; i++) got.push(b[i]);
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

for (const epoll of [false, true]) {
const kind = epoll ? "epoll" : "poll";

test(`target ${kind}: a pass reads what arrived and feeds it in order; end of stream closes the wire and tells the connection`, async () => {
  const { l, client, server } = await pair();
  const g = new PollGroup(server.libc, { epoll });
  assert.equal(g.epoll, epoll);
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

test(`target ${kind}: a send the kernel cannot take whole is kept and finished by later passes (POLLOUT), bytes in order`, async () => {
  const { l, client, server } = await pair();
  server.setBufferSizes({ send: 4096 });
  const g = new PollGroup(server.libc, { epoll });
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

}

test("target epoll: an edge-triggered eventfd ends one wait per write and needs no read; a level one ends waits until read", async () => {
  const libc = await loadLibc();
  const g = new PollGroup(libc, { epoll: true });
  const edge = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), level = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const one = new Uint8Array(8);
  new DataView(one.buffer).setBigUint64(0, 1n, true);
  let edges = 0, levels = 0;
  try {
    g.addExtra({ fd: edge, onReadable: () => assert.fail("an edge extra is not read"), onEdge: () => edges++ });
    g.addExtra({ fd: level, onReadable: () => levels++ });
    assert.equal(g.pass(0), 0);
    libc.write(edge, one);
    assert.equal(g.pass(1000), 1);
    assert.equal(edges, 1);
    assert.equal(g.pass(0), 0, "the count is still 1, yet the edge was reported once");
    libc.write(edge, one);
    assert.equal(g.pass(1000), 1);
    assert.equal(edges, 2);
    libc.write(level, one);
    assert.equal(g.pass(0), 1);
    assert.equal(g.pass(0), 1, "unread, a level-triggered fd ends every wait");
    assert.equal(levels, 2);
    g.removeExtra(edge);
    libc.write(edge, one);
    const b = new Uint8Array(8);
    libc.read(level, b);
    assert.equal(g.pass(0), 0, "removed, and the level one read");
  } finally {
    g.close();
    libc.close(edge);
    libc.close(level);
  }
});

test("target poll: a Worker's wire closes its fd only if it wins the close word; else the listener's close is the only one", async () => {
  // Won by the wire: it closes the fd (the peer sees end of stream) and marks the word 1.
  {
    const { l, client, server } = await pair();
    const own = new Int32Array(new SharedArrayBuffer(4));
    const w = new SockWire(server, own);
    try {
      w.destroy();
      assert.equal(own[0], 1);
      const b = new Uint8Array(8);
      let n: number | typeof AGAIN = AGAIN;
      for (let i = 0; i < 500 && n === AGAIN; i++) {
        n = client.recv(b);
        if (n === AGAIN) await new Promise((r) => setTimeout(r, 2));
      }
      assert.equal(n, 0, "end of stream at the peer");
    } finally {
      client.close();
      l.close();
    }
  }
  // Taken by the listener first (its Worker was declared dead): the wire must not close that number,
  // which may already be a new connection's; the socket stays open until the listener closes it.
  {
    const { l, client, server } = await pair();
    const fd = server.fd;
    const own = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(own, 0, 2);
    const w = new SockWire(server, own);
    try {
      w.destroy();
      assert.equal(w.closed, true);
      assert.equal(own[0], 2);
      // Still open: data sent through the fd by its new owner reaches the peer.
      const other = Socket.adopt(client.libc, fd);
      assert.equal(other.send(new Uint8Array([7, 8, 9])), 3);
      const b = new Uint8Array(8);
      let n: number | typeof AGAIN = AGAIN;
      for (let i = 0; i < 500 && n === AGAIN; i++) {
        n = client.recv(b);
        if (n === AGAIN) await new Promise((r) => setTimeout(r, 2));
      }
      assert.equal(n, 3);
      assert.deepEqual(b.subarray(0, 3), new Uint8Array([7, 8, 9]));
      other.close();
    } finally {
      client.close();
      l.close();
    }
  }
});
