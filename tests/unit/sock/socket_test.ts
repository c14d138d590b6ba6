/**
 * The socket layer on loopback, no device: connect/accept (IPv4, IPv6, port 0
 * read back), send/recv/peek, EAGAIN, partial scatter-gather sends resumed
 * across segments, peer reset, refused connect, shutdown from another thread
 * waking a blocked reader, an fd handed to a Worker.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { loadLibc } from "../../../lib/ffi/mod.ts";
import {
  AGAIN,
  decodeSockAddr,
  encodeSockAddr,
  IoVec,
  Listener,
  shutdownFd,
  Socket,
  SocketError,
} from "../../../lib/sock/mod.ts";

const tick = () => new Promise((r) => setTimeout(r, 1));

async function pair(host = "127.0.0.1"): Promise<{ l: Listener; c: Socket; s: Socket; close: () => void }> {
  const l = await Listener.listen({ host, port: 0 });
  const c = await Socket.connect(host, l.port);
  const s = await l.acceptAsync(10_000);
  assert.ok(s, "accepted");
  return { l, c, s, close: () => (c.close(), s.close(), l.close()) };
}

/** Read exactly `n` bytes (blocking in poll between reads). */
function readN(s: Socket, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    assert.ok(s.waitReadable(10_000), "readable in time");
    const k = s.recv(out.subarray(off));
    if (k === AGAIN) continue;
    assert.ok(k > 0, "no early end of stream");
    off += k;
  }
  return out;
}

test("sock: sockaddr encode/decode, IPv4 and IPv6", () => {
  assert.deepEqual(decodeSockAddr(encodeSockAddr("10.1.2.3", 4420)), { family: 4, host: "10.1.2.3", port: 4420 });
  assert.deepEqual(decodeSockAddr(encodeSockAddr("localhost", 1)), { family: 4, host: "127.0.0.1", port: 1 });
  assert.deepEqual(decodeSockAddr(encodeSockAddr("[::1]", 8009)), { family: 6, host: "::1", port: 8009 });
  assert.deepEqual(decodeSockAddr(encodeSockAddr("fe80::1:0:0:2", 2)).host, "fe80::1:0:0:2");
  assert.deepEqual(decodeSockAddr(encodeSockAddr("1:2:3:4:5:6:7:8", 2)).host, "1:2:3:4:5:6:7:8");
  assert.deepEqual(decodeSockAddr(encodeSockAddr("::ffff:1.2.3.4", 2)).host, "::ffff:102:304");
  const b = encodeSockAddr("127.0.0.1", 0x1144);
  assert.deepEqual([...b.subarray(0, 8)], [2, 0, 0x11, 0x44, 127, 0, 0, 1]);
  for (const bad of ["1.2.3", "256.0.0.1", "1::2::3", "example.com", "1:2:3:4:5:6:7:8:9"]) {
    assert.throws(() => encodeSockAddr(bad, 1), /address|literal/, bad);
  }
  assert.throws(() => encodeSockAddr("::1", 70000), /port/);
});

test("sock: listen on port 0, connect, accept, send/recv/peek, EAGAIN, addresses", async () => {
  const { l, c, s, close } = await pair();
  try {
    assert.ok(l.port > 0);
    assert.equal(c.remoteAddress().port, l.port);
    assert.deepEqual(s.remoteAddress(), c.localAddress());
    const buf = new Uint8Array(64);
    assert.equal(s.recv(buf), AGAIN, "nothing sent yet");
    assert.equal(c.send(new TextEncoder().encode("hello")), 5);
    s.waitReadable(10_000);
    assert.equal(s.peek(buf), 5);
    assert.equal(new TextDecoder().decode(buf.subarray(0, 5)), "hello");
    assert.equal(s.recv(buf.subarray(0, 2)), 2, "peek left the bytes queued");
    assert.equal(s.recv(buf), 3);
    assert.equal(new TextDecoder().decode(buf.subarray(0, 3)), "llo");
    assert.equal(s.recv(buf), AGAIN);
    c.shutdown();
    s.waitReadable(10_000);
    assert.equal(s.recv(buf), 0, "end of stream after the peer's shutdown");
    assert.equal(l.accept(), null, "no second connection");
  } finally {
    close();
  }
});

test("sock: IPv6 loopback listener (skipped where the host has no ::1)", async () => {
  let l: Listener;
  try {
    l = await Listener.listen({ host: "::1", port: 0 });
  } catch (e) {
    if (e instanceof SocketError && (e.errnoName === "EADDRNOTAVAIL" || e.errnoName === "EAFNOSUPPORT")) return;
    throw e;
  }
  try {
    assert.equal(l.address.family, 6);
    const c = await Socket.connect("::1", l.port);
    const s = await l.acceptAsync(10_000);
    assert.ok(s);
    assert.equal(s.remoteAddress().host, "::1");
    c.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual([...readN(s, 3)], [1, 2, 3]);
    c.close();
    s.close();
  } finally {
    l.close();
  }
});

test("sock: sendmsg scatter-gather, partial sends resumed mid-segment, bytes intact", async () => {
  const libc = await loadLibc();
  const { c, s, close } = await pair();
  const iov = new IoVec(libc, 8);
  try {
    c.setBufferSizes({ send: 16384 });
    s.setBufferSizes({ recv: 16384 });
    const sizes = [24, 4096 * 16 + 3, 7, 4096 * 64, 1, 4096 * 8 + 1000];
    const segs = sizes.map((n, k) => {
      const a = new Uint8Array(Math.max(n, 128)).subarray(0, n);
      for (let i = 0; i < n; i++) a[i] = (i * 31 + k * 7) & 0xff;
      return a;
    });
    for (const g of segs) iov.push(g);
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.equal(iov.pending, total);
    assert.equal(iov.length, sizes.length);
    const got = new Uint8Array(total);
    let off = 0, sends = 0, again = 0;
    while (off < total) {
      if (iov.pending > 0) {
        const n = c.sendmsg(iov);
        if (n === AGAIN) again++;
        else sends++;
      }
      const k = s.recv(got.subarray(off));
      if (k > 0) off += k;
      else if (k === AGAIN && iov.pending === 0) s.waitReadable(10_000);
      else if (k === 0) assert.fail("early end of stream");
    }
    assert.equal(iov.pending, 0);
    assert.equal(iov.length, 0);
    assert.ok(sends > 1, `a small send buffer forces partial sends (${sends} sends, ${again} EAGAIN)`);
    let p = 0;
    for (const g of segs) {
      assert.deepEqual(got.subarray(p, p + g.length), g);
      p += g.length;
    }
    assert.throws(() => {
      for (let i = 0; i < 9; i++) iov.push(segs[0]);
    }, /full/);
    iov.clear();
    assert.equal(iov.pending, 0);
  } finally {
    iov.close();
    close();
  }
});

test("sock: pushRange sends ranges of one buffer from its address taken once", async () => {
  const libc = await loadLibc();
  const { c, s, close } = await pair();
  const iov = new IoVec(libc, 4);
  try {
    const buf = new Uint8Array(4096);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 13 + 5) & 0xff;
    const addr = Number(libc.addressOf(buf));
    iov.pushRange(buf, addr, 100, 300);
    iov.pushRange(buf, addr, 300, 300); // empty: skipped
    iov.pushRange(buf, addr, 1000, 1003);
    assert.equal(iov.length, 2);
    assert.equal(iov.pending, 203);
    while (iov.pending > 0) if (c.sendmsg(iov) === AGAIN) c.waitWritable(1000);
    const got = readN(s, 203);
    assert.deepEqual(got.subarray(0, 200), buf.subarray(100, 300));
    assert.deepEqual(got.subarray(200), buf.subarray(1000, 1003));
  } finally {
    iov.close();
    close();
  }
});

test("sock: peer reset surfaces as ECONNRESET, refused connect as ECONNREFUSED", async () => {
  const libc = await loadLibc();
  const { c, s, close } = await pair();
  try {
    // SO_LINGER {on, 0}: close sends RST.
    const linger = new Uint8Array(8);
    linger[0] = 1;
    assert.equal(libc.setsockopt(s.fd, 1, 13, linger), 0);
    s.close();
    c.waitReadable(10_000);
    let err: unknown;
    try {
      c.recv(new Uint8Array(8));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof SocketError, String(err));
    assert.equal(err.errnoName, "ECONNRESET");
    assert.ok(err.peerGone);
    assert.throws(() => {
      for (let i = 0; i < 4; i++) c.send(new Uint8Array(128));
    }, (e: unknown) => e instanceof SocketError && e.errnoName === "EPIPE");
  } finally {
    close();
  }
  const l = await Listener.listen({ port: 0 });
  const port = l.port;
  l.close();
  await assert.rejects(Socket.connect("127.0.0.1", port), (e: unknown) => e instanceof SocketError && e.errnoName === "ECONNREFUSED" && e.peerGone);
});

interface Done {
  type: string;
  echoed?: number;
  readable?: boolean;
  n?: number;
  error?: string;
}

function worker(): { w: Worker; next: (type: string) => Promise<Done> } {
  const w = new Worker(new URL("../workers/sock_worker.js", import.meta.url), { type: "module" });
  const queue: Done[] = [];
  const waiting: ((d: Done) => void)[] = [];
  w.onmessage = (e: MessageEvent) => {
    const d = e.data as Done;
    const r = waiting.shift();
    if (r) r(d);
    else queue.push(d);
  };
  const next = async (type: string): Promise<Done> => {
    const d = queue.shift() ?? await new Promise<Done>((r) => waiting.push(r));
    assert.equal(d.type, type, JSON.stringify(d));
    return d;
  };
  return { w, next };
}

test("sock: an accepted fd handed to a Worker, served there", async () => {
  const { w, next } = worker();
  const { l, c, s } = await pair();
  try {
    await next("loaded");
    w.postMessage({ type: "echo", fd: s.release() });
    assert.equal(s.fd, -1);
    const msg = new Uint8Array(10_000).map((_, i) => i & 0xff);
    let off = 0;
    while (off < msg.length) {
      const k = c.send(msg.subarray(off));
      if (k === AGAIN) await tick();
      else off += k;
    }
    const back = new Uint8Array(msg.length);
    let got = 0;
    while (got < back.length) {
      const k = c.recv(back.subarray(got));
      if (k === AGAIN) await tick();
      else got += k;
    }
    assert.deepEqual(back, msg);
    c.shutdown();
    const d = await next("done");
    assert.equal(d.error, undefined);
    assert.equal(d.echoed, msg.length);
  } finally {
    c.close();
    l.close();
    w.terminate();
  }
});

test("sock: shutdown from another thread wakes a Worker blocked reading", async () => {
  const libc = await loadLibc();
  const { w, next } = worker();
  const { l, c, s } = await pair();
  try {
    await next("loaded");
    const fd = s.release();
    w.postMessage({ type: "block", fd });
    await next("blocking");
    await new Promise((r) => setTimeout(r, 50)); // let it reach poll; a shutdown before that wakes it too
    shutdownFd(libc, fd);
    const d = await next("done");
    assert.equal(d.error, undefined);
    assert.equal(d.readable, true);
    assert.equal(d.n, 0, "the reader sees end of stream");
  } finally {
    c.close();
    l.close();
    w.terminate();
  }
});
