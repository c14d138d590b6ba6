import assert from "node:assert/strict";
import { rng, test } from "../../harness.ts";
import { PduParser, type PduRole } from "../../../lib/tcp/parser.ts";
import { ProtocolError } from "../../../lib/nvme/errors.ts";
import {
  buildPdu,
  type Digests,
  encodeIcReq,
  encodeIcResp,
  encodeTermReq,
  Fes,
  PduType,
  put32,
  writeCapsuleCmd,
  writeCapsuleResp,
  writeDataPdu,
  writeR2t,
} from "../../../lib/tcp/pdu.ts";


function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);
}

/** A host's receive stream: ICResp, then CapsuleResp, R2T, C2HData (split), TermReq. */
function hostStream(dg: Digests): { stream: Uint8Array; count: number; data: Uint8Array } {
  const parts: Uint8Array[] = [encodeIcResp({ maxh2cdata: 0x20000, ...dg })];
  const h = new Uint8Array(128);
  for (let i = 0; i < 3; i++) {
    parts.push(buildPdu(h, writeCapsuleResp(h, { dw0: i, dw1: 0, sqhd: i, sqid: 1, cid: 0x100 + i, sf: 0 }, dg), null));
  }
  parts.push(buildPdu(h, writeR2t(h, { cccid: 5, ttag: 1, r2to: 0, r2tl: 8192 }, dg), null));
  const data = bytes(6000, 3);
  parts.push(buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 7, ttag: 0, datao: 0, datal: 4000, last: false, success: false }, dg), data.subarray(0, 4000)));
  parts.push(buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 7, ttag: 0, datao: 4000, datal: 2000, last: true, success: true }, dg), data.subarray(4000)));
  parts.push(encodeTermReq(PduType.C2H_TERM_REQ, { fes: Fes.PDU_SEQUENCE_ERROR, fei: 0, header: bytes(30, 1) }));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const stream = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    stream.set(p, o);
    o += p.length;
  }
  return { stream, count: parts.length, data };
}

interface Seen {
  type: number;
  hdr: number[];
  data: number[] | null;
}

function collect(role: PduRole, dg: Digests, chunks: Uint8Array[]): Seen[] {
  const seen: Seen[] = [];
  const p = new PduParser({ role, maxData: 0x20000 }, (hdr, data) => {
    seen.push({ type: hdr[0], hdr: Array.from(hdr.subarray(0, hdr[2])), data: data ? Array.from(data) : null });
    if (hdr[0] === PduType.IC_RESP || hdr[0] === PduType.IC_REQ) p.digests = dg; // negotiated from here on
  });
  for (const c of chunks) p.feed(c);
  assert.equal(p.idle, true);
  return seen;
}

function splits(b: Uint8Array, seed: number): Uint8Array[] {
  const r = rng(seed), out: Uint8Array[] = [];
  for (let o = 0; o < b.length;) {
    const n = Math.min(b.length - o, 1 + Math.floor(r() * (r() < 0.2 ? 9000 : 40)));
    // Fresh copies, as sockets deliver new buffers.
    out.push(b.slice(o, o + n));
    o += n;
  }
  return out;
}

const DGS: Digests[] = [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: false }, { hdgst: false, ddgst: true }, { hdgst: true, ddgst: true }];

test("tcp parser: whole stream, byte by byte and random splits give the same PDUs (all digest modes)", () => {
  const seed0 = (Date.now() % 1_000_000) | 0;
  console.log(`tcp parser split seed ${seed0}`);
  for (const dg of DGS) {
    const { stream, count, data } = hostStream(dg);
    const whole = collect("host", dg, [stream]);
    assert.equal(whole.length, count);
    assert.deepEqual(whole.map((s) => s.type), [1, 5, 5, 5, 9, 7, 7, 3]);
    assert.deepEqual(whole[5].data!.concat(whole[6].data!), Array.from(data));
    assert.equal(whole[7].data!.length, 30);
    const oneByOne = collect("host", dg, Array.from(stream, (_, i) => stream.subarray(i, i + 1)));
    assert.deepEqual(oneByOne, whole);
    for (let k = 0; k < 20; k++) {
      const seed = seed0 + k;
      assert.deepEqual(collect("host", dg, splits(stream, seed)), whole, `seed ${seed}`);
    }
  }
});

test("tcp parser: a target parses ICReq, CapsuleCmd with in-capsule data, H2CData", () => {
  const dg = { hdgst: true, ddgst: true };
  const h = new Uint8Array(128), sqe = new Uint32Array(16);
  sqe[0] = 0x01 | 0x4000;
  const d = bytes(512, 9);
  const s = [encodeIcReq(dg), buildPdu(h, writeCapsuleCmd(h, sqe, 512, dg), d), buildPdu(h, writeCapsuleCmd(h, sqe, 0, dg), null)];
  s.push(buildPdu(h, writeDataPdu(h, PduType.H2C_DATA, { cccid: 1, ttag: 2, datao: 0, datal: 512, last: true, success: false }, dg), d));
  const all = Uint8Array.from(s.flatMap((x) => Array.from(x)));
  const seen = collect("target", dg, splits(all, 42));
  assert.deepEqual(seen.map((x) => [x.type, x.data?.length ?? 0]), [[0, 0], [4, 512], [4, 0], [6, 512]]);
  assert.deepEqual(seen[1].data, Array.from(d));
});

function expectError(role: PduRole, chunks: Uint8Array[], reason: string, dg?: Digests, fes?: number): void {
  const p = new PduParser({ role, maxData: 8192 }, (hdr) => {
    if (hdr[0] <= 1 && dg) p.digests = dg;
  });
  let err: unknown = null;
  try {
    for (const c of chunks) p.feed(c);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ProtocolError, `expected ProtocolError ${reason}, got ${err}`);
  assert.equal(err.code, "EPROTO");
  assert.equal(err.reason, reason);
  if (fes !== undefined) assert.equal(err.fes, fes);
  assert.equal(p.error, err);
  assert.throws(() => p.feed(new Uint8Array(1)), ProtocolError); // dead for good
}

test("tcp parser: typed errors for bad type, sequence, HLEN, PLEN, PDO, flags, digests, DATAL, size", () => {
  const ic = encodeIcResp({ maxh2cdata: 8192 });
  const h = new Uint8Array(128);
  const resp = () => buildPdu(h, writeCapsuleResp(h, { dw0: 0, dw1: 0, sqhd: 0, sqid: 0, cid: 1, sf: 0 }, { hdgst: false, ddgst: false }), null);
  // A CapsuleCmd is a host's PDU: a host never accepts one.
  expectError("host", [ic, encodeIcReq()], "type", undefined, Fes.INVALID_HEADER_FIELD);
  expectError("target", [ic], "type");
  expectError("host", [resp()], "sequence", undefined, Fes.PDU_SEQUENCE_ERROR);
  expectError("host", [ic, ic], "sequence");
  const badHlen = resp();
  badHlen[2] = 28;
  expectError("host", [ic, badHlen], "hlen");
  const badPlen = resp();
  put32(badPlen, 4, 30);
  expectError("host", [ic, badPlen], "plen");
  const hugePlen = resp();
  put32(hugePlen, 4, 0x7fffffff);
  expectError("host", [ic, hugePlen], "plen");
  // Header digest negotiated but the PDU has no HDGSTF.
  expectError("host", [ic, resp()], "flags", { hdgst: true, ddgst: false });
  // Header digest corrupted.
  const hd = { hdgst: true, ddgst: false };
  const r = buildPdu(h, writeCapsuleResp(h, { dw0: 0, dw1: 0, sqhd: 0, sqid: 0, cid: 1, sf: 0 }, hd), null);
  r[25] ^= 1;
  expectError("host", [ic, r], "hdgst", hd, Fes.HEADER_DIGEST_ERROR);
  // Data digest corrupted, data split over chunks.
  const dd = { hdgst: false, ddgst: true };
  const c = buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 1, ttag: 0, datao: 0, datal: 100, last: true, success: false }, dd), bytes(100, 1));
  c[30] ^= 0x80;
  expectError("host", [ic, c.subarray(0, 50), c.subarray(50)], "ddgst", dd);
  // DATAL disagreeing with PLEN; zero data; more data than allowed; SUCCESS without LAST; bad PDO.
  const nd = { hdgst: false, ddgst: false };
  const mk = (datal: number, n: number, last = true, success = false) =>
    buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 1, ttag: 0, datao: 0, datal, last, success }, nd), bytes(n, 2));
  const wrongLen = mk(10, 10);
  put32(wrongLen, 16, 11);
  expectError("host", [ic, wrongLen], "plen");
  expectError("host", [ic, mk(9000, 9000)], "range", undefined, Fes.DATA_LIMIT_EXCEEDED);
  expectError("host", [ic, mk(8, 8, false, true)], "flags");
  const badPdo = mk(8, 8);
  badPdo[3] = 20;
  expectError("host", [ic, badPdo], "pdo");
  // A TermReq may not carry digest flags.
  const t = encodeTermReq(PduType.C2H_TERM_REQ, { fes: 1, fei: 0, header: new Uint8Array(0) });
  t[1] = 1;
  expectError("host", [ic, t], "flags");
});

test("tcp parser: random garbage after ICResp only ever ends in a ProtocolError (seeded)", () => {
  const seed0 = (Date.now() % 1_000_000) | 0;
  console.log(`tcp parser garbage seed ${seed0}`);
  let errors = 0;
  for (let k = 0; k < 300; k++) {
    const r = rng(seed0 + k);
    const junk = Uint8Array.from({ length: 1 + Math.floor(r() * 600) }, () => Math.floor(r() * 256));
    // Make a plausible header now and then so deeper states get exercised.
    if (r() < 0.5) {
      junk[0] = [5, 7, 9, 3][Math.floor(r() * 4)];
      junk[2] = 24;
      junk[4] = Math.floor(r() * 80);
      junk[5] = junk[6] = junk[7] = 0;
    }
    const p = new PduParser({ role: "host", maxData: 4096 }, () => {});
    try {
      p.feed(encodeIcResp({ maxh2cdata: 4096 }));
      for (const c of splits(junk, seed0 + k)) p.feed(c);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `seed ${seed0 + k}: ${e}`);
      errors++;
    }
  }
  assert.ok(errors > 0);
});

test("tcp parser: header exposes the offending PDU's header for a TermReq copy", () => {
  const p = new PduParser({ role: "host", maxData: 4096 }, () => {});
  p.feed(encodeIcResp({ maxh2cdata: 4096 }));
  const bad = new Uint8Array(24);
  bad[0] = PduType.CAPSULE_RESP;
  bad[2] = 28;
  assert.throws(() => p.feed(bad), ProtocolError);
  assert.equal(p.header.length, 28);
  assert.deepEqual(p.header.subarray(0, 3), Uint8Array.from([5, 0, 28]));
});

test("tcp parser: softDataDigest delivers a bad data digest flagged instead of failing", () => {
  const dd = { hdgst: false, ddgst: true };
  const h = new Uint8Array(128);
  const c = buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 1, ttag: 0, datao: 0, datal: 64, last: true, success: false }, dd), bytes(64, 5));
  const good = c.slice();
  c[30] ^= 1;
  const seen: boolean[] = [];
  const p = new PduParser({ role: "host", maxData: 4096, softDataDigest: true }, (hdr, _d, ok) => {
    if (hdr[0] === PduType.IC_RESP) p.digests = dd;
    else seen.push(ok);
  });
  p.feed(encodeIcResp({ maxh2cdata: 4096, ddgst: true }));
  p.feed(c);
  p.feed(good);
  assert.deepEqual(seen, [false, true]);
});

test("tcp parser: placeData puts C2HData straight into the given memory, any split, digests checked over the pieces", () => {
  for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
    const { stream, data } = hostStream(dg);
    const r = rng(9);
    for (let round = 0; round < 20; round++) {
      const dest = new Uint8Array(8000);
      const asked: [number, number][] = [];
      const got: { buf: ArrayBufferLike; off: number; bytes: Uint8Array }[] = [];
      const p = new PduParser({ role: "host", maxData: 0x20000 }, (hdr, d) => {
        if (hdr[0] === PduType.IC_RESP) p.digests = dg;
        if (hdr[0] === PduType.C2H_DATA) got.push({ buf: d!.buffer, off: d!.byteOffset, bytes: d!.slice() }); // views live for the call only
      });
      p.placeData = (hdr, n) => {
        const datao = hdr[12] | (hdr[13] << 8);
        asked.push([datao, n]);
        return datao === 0 ? dest.subarray(100, 100 + n) : null; // the second PDU goes to the parser's buffer
      };
      for (let o = 0; o < stream.length;) {
        const n = round === 0 ? 1 : 1 + Math.floor(r() * 5000);
        p.feed(stream.subarray(o, o + n));
        o += n;
      }
      assert.deepEqual(asked, [[0, 4000], [4000, 2000]]);
      assert.deepEqual(dest.subarray(100, 4100), data.subarray(0, 4000));
      assert.ok(dest.subarray(0, 100).every((v) => v === 0) && dest.subarray(4100).every((v) => v === 0));
      assert.equal(got[0].buf, dest.buffer, "the handler gets the placed view");
      assert.equal(got[0].off, 100);
      assert.deepEqual(got[0].bytes, data.subarray(0, 4000));
      assert.deepEqual(got[1].bytes, data.subarray(4000));
      assert.notEqual(got[1].buf, dest.buffer);
    }
  }
  // A wrong data digest is still caught when the data was placed.
  const dg = { hdgst: false, ddgst: true };
  const h = new Uint8Array(128);
  const pdu = buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 1, ttag: 0, datao: 0, datal: 64, last: true, success: true }, dg), bytes(64, 1));
  pdu[pdu.length - 1] ^= 1;
  const p = new PduParser({ role: "host", maxData: 4096, softDataDigest: true }, (hdr, _d, ok) => {
    if (hdr[0] === PduType.IC_RESP) p.digests = dg;
    else seen.push(ok);
  });
  const seen: boolean[] = [];
  const dest = new Uint8Array(64);
  p.placeData = () => dest;
  p.feed(encodeIcResp({ maxh2cdata: 4096, ddgst: true }));
  p.feed(pdu.subarray(0, 50));
  p.feed(pdu.subarray(50));
  assert.deepEqual(seen, [false]);
});

test("tcp parser: a placer may return its memory whole with placeAt: data lands at that offset, the handler gets that memory and dataLength", () => {
  for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
    const { stream, data } = hostStream(dg);
    const r = rng(11);
    for (let round = 0; round < 20; round++) {
      const dest = new Uint8Array(8000);
      const got: { same: boolean; len: number; at: number }[] = [];
      const p = new PduParser({ role: "host", maxData: 0x20000 }, (hdr, d) => {
        if (hdr[0] === PduType.IC_RESP) p.digests = dg;
        if (hdr[0] === PduType.C2H_DATA) got.push({ same: d === dest, len: d === dest ? p.dataLength : d!.length, at: p.placeAt });
      });
      p.placeData = (hdr, n) => {
        if ((hdr[12] | (hdr[13] << 8)) !== 0) return null; // the second PDU goes to the parser's buffer
        p.placeAt = 100;
        assert.equal(n, 4000);
        return dest;
      };
      for (let o = 0; o < stream.length;) {
        const n = round === 0 ? 1 : 1 + Math.floor(r() * 5000);
        p.feed(stream.subarray(o, o + n));
        o += n;
      }
      assert.deepEqual(dest.subarray(100, 4100), data.subarray(0, 4000));
      assert.ok(dest.subarray(0, 100).every((v) => v === 0) && dest.subarray(4100).every((v) => v === 0));
      assert.deepEqual(got, [{ same: true, len: 4000, at: 100 }, { same: false, len: 2000, at: -1 }]);
      assert.equal(p.placeAt, -1, "reset once delivered");
    }
  }
  // placeAt past the memory's end is refused before any byte lands.
  const h = new Uint8Array(128), dg = { hdgst: false, ddgst: false };
  const pdu = buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 1, ttag: 0, datao: 0, datal: 64, last: true, success: true }, dg), bytes(64, 1));
  const p = new PduParser({ role: "host", maxData: 4096 }, () => {});
  p.placeData = () => {
    p.placeAt = 8;
    return new Uint8Array(64);
  };
  p.feed(encodeIcResp({ maxh2cdata: 4096 }));
  assert.throws(() => p.feed(pdu), RangeError);
});

test("tcp parser: a chunk laid out as the last one reuses its view only for the same chunk object", () => {
  const h = new Uint8Array(128), dg = { hdgst: false, ddgst: false };
  const pdu = (seed: number) => buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: 1, ttag: 0, datao: 0, datal: 64, last: true, success: true }, dg), bytes(64, seed));
  const got: number[][] = [];
  const p = new PduParser({ role: "host", maxData: 4096 }, (hdr, d) => {
    if (hdr[0] === PduType.C2H_DATA) got.push(Array.from(d!));
  });
  p.feed(encodeIcResp({ maxh2cdata: 4096 }));
  // The PDU plus 8 trailing bytes of the next one's header: the data is a middle range of the chunk.
  const reused = new Uint8Array(pdu(0).length + 8);
  const other = new Uint8Array(reused.length);
  const feedInto = (buf: Uint8Array, seed: number) => {
    buf.set(pdu(seed));
    p.feed(buf, pdu(seed).length); // only the PDU: the trailing bytes are not part of this read
  };
  feedInto(reused, 1);
  feedInto(reused, 2); // same chunk, same layout: the cached view sees the new bytes
  feedInto(other, 3); // another chunk at the same offsets: never the first chunk's view
  feedInto(reused, 4);
  assert.deepEqual(got, [1, 2, 3, 4].map((s) => Array.from(bytes(64, s))));
});

test("tcp parser: keeps nothing of a chunk past feed(): chunks read into one reused buffer parse the same (all digest modes, every cut)", () => {
  for (const dg of DGS) {
    const { stream } = hostStream(dg);
    const whole = collect("host", dg, [stream]);
    // A socket with onread hands every read in the same memory and overwrites it with the next one.
    const reused = new Uint8Array(stream.length);
    for (let cut = 1; cut < stream.length; cut += 3) {
      const seen: Seen[] = [];
      const p = new PduParser({ role: "host", maxData: 0x20000 }, (hdr, data) => {
        seen.push({ type: hdr[0], hdr: Array.from(hdr.subarray(0, hdr[2])), data: data ? Array.from(data) : null });
        if (hdr[0] === PduType.IC_RESP) p.digests = dg;
      });
      for (const part of [stream.subarray(0, cut), stream.subarray(cut)]) {
        const v = reused.subarray(0, part.length);
        v.set(part);
        p.feed(v);
        reused.fill(0xa5); // the next read lands here
      }
      assert.deepEqual(seen, whole, `cut at ${cut}`);
    }
  }
});
