import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  Ch,
  decodeCapsuleResp,
  decodeDataPdu,
  decodeIcReq,
  decodeIcResp,
  decodeR2t,
  decodeSgl,
  decodeTermReq,
  encodeIcReq,
  encodeIcResp,
  encodeTermReq,
  Fes,
  Hlen,
  layout,
  PduFlag,
  PduType,
  readCh,
  setSglInCapsule,
  setSglTransport,
  Sgl,
  writeCapsuleCmd,
  writeCapsuleResp,
  writeDataPdu,
  writeR2t,
} from "../../../lib/tcp/pdu.ts";
import { connectCmd, connectData, decodeConnectData, hostIdentity, propertyGetCmd, propertySetCmd } from "../../../lib/tcp/fabrics.ts";

/** "01 02 ab" → bytes. */
function hex(s: string): Uint8Array {
  const h = s.replace(/\s+/g, "");
  return Uint8Array.from({ length: h.length / 2 }, (_, i) => parseInt(h.slice(i * 2, i * 2 + 2), 16));
}
function pad(b: Uint8Array, n: number): Uint8Array {
  const o = new Uint8Array(n);
  o.set(b);
  return o;
}

const NONE = { hdgst: false, ddgst: false };
const BOTH = { hdgst: true, ddgst: true };

test("tcp pdu: ICReq equals the kernel's and ours as captured (no digests, and HDGST+DDGST)", () => {
  assert.deepEqual(encodeIcReq(), pad(hex("00 00 80 00 80 00 00 00 00 00 00 00 00 00 00 00"), 128));
  assert.deepEqual(encodeIcReq({ hdgst: true, ddgst: true }), pad(hex("00 00 80 00 80 00 00 00 00 00 00 03 00 00 00 00"), 128));
  assert.deepEqual(decodeIcReq(encodeIcReq({ hdgst: true, maxr2t: 3, hpda: 2 })), { pfv: 0, hpda: 2, hdgst: true, ddgst: false, maxr2t: 3 });
});

test("tcp pdu: ICResp captured from nvmet decodes (MAXH2CDATA 4 MiB, digests granted)", () => {
  const r = pad(hex("01 00 80 00 80 00 00 00 00 00 00 00 00 00 40 00"), 128);
  assert.deepEqual(readCh(r), { type: PduType.IC_RESP, flags: 0, hlen: 128, pdo: 0, plen: 128 });
  assert.deepEqual(decodeIcResp(r), { pfv: 0, cpda: 0, hdgst: false, ddgst: false, maxh2cdata: 0x400000 });
  const d = pad(hex("01 00 80 00 80 00 00 00 00 00 00 03 00 00 40 00"), 128);
  assert.equal(decodeIcResp(d).hdgst && decodeIcResp(d).ddgst, true);
  assert.deepEqual(encodeIcResp({ maxh2cdata: 0x400000, hdgst: true, ddgst: true }), d);
});

test("tcp pdu: the kernel's admin Connect capsule, byte for byte (plain and with digests)", () => {
  const sqe = connectCmd({ qid: 0, entries: 32, katoMs: 5000 });
  sqe[0] |= 0x4000; // PSDT (the queue sets it)
  setSglInCapsule(sqe, 1024);
  const b = new Uint8Array(80);
  const l = writeCapsuleCmd(b, sqe, 1024, NONE);
  assert.deepEqual(l, { hlen: 72, pdo: 72, plen: 1096, flags: 0 });
  assert.deepEqual(b.subarray(0, 8), hex("04 00 48 48 48 04 00 00"));
  const want = new Uint8Array(64);
  want.set(hex("7f 40 00 00 01"), 0);
  want.set(hex("00000000 00000000 00040000 00000001"), 24);
  want.set(hex("0000 0000 1f00 00 00 88130000"), 40);
  assert.deepEqual(b.subarray(8, 72), want);
  const l2 = writeCapsuleCmd(b, sqe, 1024, BOTH);
  assert.deepEqual(b.subarray(0, 8), hex("04 03 48 4c 50 04 00 00"));
  assert.deepEqual(l2, { hlen: 72, pdo: 76, plen: 1104, flags: 3 });
  // A PropGet with header digest only carries no data: PDO 0, no DDGSTF.
  const pg = propertyGetCmd(0, true);
  writeCapsuleCmd(b, pg, 0, BOTH);
  assert.deepEqual(b.subarray(0, 8), hex("04 01 48 00 4c 00 00 00"));
});

test("tcp pdu: Connect data and property commands place their fields", () => {
  const id = hostIdentity("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
  assert.equal(id.hostnqn, "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
  const d = connectData({ hostid: id.hostid, cntlid: 0xffff, subnqn: "nqn.2024-01.io.tsnvme:tcp-test", hostnqn: id.hostnqn });
  assert.equal(d.length, 1024);
  assert.deepEqual(d.subarray(0, 4), hex("0f1e2d3c"));
  assert.deepEqual(d.subarray(16, 18), hex("ffff"));
  assert.equal(new TextDecoder().decode(d.subarray(256, 256 + 30)), "nqn.2024-01.io.tsnvme:tcp-test");
  assert.equal(d[256 + 30], 0);
  assert.deepEqual(decodeConnectData(d), { hostid: id.hostid, cntlid: 0xffff, subnqn: "nqn.2024-01.io.tsnvme:tcp-test", hostnqn: id.hostnqn });
  const io = connectCmd({ qid: 2, entries: 128, cattr: 4 });
  assert.equal(io[10], 2 << 16);
  assert.equal(io[11], 127 | (4 << 16));
  const ps = propertySetCmd(0x14, 0x460001n, false);
  assert.deepEqual([ps[0] & 0xff, ps[1] & 0xff, ps[10], ps[11], ps[12], ps[13]], [0x7f, 0, 0, 0x14, 0x460001, 0]);
  const pg = propertyGetCmd(0, true);
  assert.deepEqual([pg[1] & 0xff, pg[10], pg[11]], [4, 1, 0]);
});

test("tcp pdu: CapsuleResp round trip, status shifted past the phase bit", () => {
  const b = new Uint8Array(28);
  const c = { dw0: 0x1234, dw1: 7, sqhd: 5, sqid: 1, cid: 0x4001, sf: 0x4002 };
  assert.deepEqual(writeCapsuleResp(b, c, NONE), { hlen: 24, pdo: 0, plen: 24, flags: 0 });
  assert.deepEqual(b.subarray(0, 8), hex("05 00 18 00 18 00 00 00"));
  assert.deepEqual(b.subarray(22, 24), hex("04 80"));
  assert.deepEqual(decodeCapsuleResp(b), c);
  assert.equal(writeCapsuleResp(b, c, BOTH).plen, 28);
  assert.equal(b[Ch.FLAGS], PduFlag.HDGST);
});

test("tcp pdu: H2CData with LAST (0x04, 0x07 with digests), C2HData with SUCCESS, R2T", () => {
  const b = new Uint8Array(32);
  const h = { cccid: 3, ttag: 9, datao: 0, datal: 0x20000, last: true, success: false };
  assert.deepEqual(writeDataPdu(b, PduType.H2C_DATA, h, NONE), { hlen: 24, pdo: 24, plen: 24 + 0x20000, flags: 0x04 });
  assert.deepEqual(b.subarray(0, 8), hex("06 04 18 18 18 00 02 00"));
  assert.deepEqual(decodeDataPdu(b), h);
  assert.equal(writeDataPdu(b, PduType.H2C_DATA, h, BOTH).flags, 0x07);
  assert.deepEqual(b.subarray(0, 8), hex("06 07 18 1c 20 00 02 00"));
  const c = { cccid: 1, ttag: 0, datao: 4096, datal: 4096, last: true, success: true };
  writeDataPdu(b, PduType.C2H_DATA, c, NONE);
  assert.equal(b[Ch.FLAGS], PduFlag.LAST_PDU | PduFlag.SUCCESS);
  assert.deepEqual(decodeDataPdu(b), c);
  // A host that asked HPDA 7 (32-byte alignment) gets its C2H data at PDO 32.
  assert.equal(writeDataPdu(b, PduType.C2H_DATA, c, NONE, 32).pdo, 32);
  const r = { cccid: 0x1005, ttag: 5, r2to: 0, r2tl: 131072 };
  assert.deepEqual(writeR2t(b, r, NONE), { hlen: 24, pdo: 0, plen: 24, flags: 0 });
  assert.deepEqual(b.subarray(0, 24), hex("09 00 18 00 18 00 00 00 05 10 05 00 00 00 00 00 00 00 02 00 00 00 00 00"));
  assert.deepEqual(decodeR2t(b), r);
});

test("tcp pdu: TermReq carries FES, FEI at offset 10 and at most 128 header bytes", () => {
  const t = encodeTermReq(PduType.C2H_TERM_REQ, { fes: Fes.INVALID_HEADER_FIELD, fei: 2, header: new Uint8Array(200).fill(7) });
  assert.equal(t.length, 152);
  assert.deepEqual(readCh(t), { type: 3, flags: 0, hlen: 24, pdo: 24, plen: 152 });
  assert.deepEqual(t.subarray(8, 14), hex("0100 02000000"));
  const d = decodeTermReq(t);
  assert.equal(d.fes, 1);
  assert.equal(d.fei, 2);
  assert.equal(d.header.length, 128);
  assert.equal(encodeTermReq(PduType.H2C_TERM_REQ, { fes: 2, fei: 0, header: new Uint8Array(0) }).length, Hlen.SHORT);
});

test("tcp pdu: SGL forms: in-capsule 0x01 at ICDOFF 0, transport data block 0x5a, null 0x5a length 0", () => {
  const s = new Uint32Array(16).fill(0xffffffff);
  setSglInCapsule(s, 4096);
  assert.deepEqual(decodeSgl(s), { addr: 0, len: 4096, type: 0, subtype: 1 });
  const b = new Uint8Array(s.buffer);
  assert.deepEqual(b.subarray(Sgl.ADDR, Sgl.ID + 1), hex("00000000 00000000 00100000 00000001"));
  setSglTransport(s, 0x1000);
  assert.deepEqual(b.subarray(Sgl.ADDR, Sgl.ID + 1), hex("00000000 00000000 00100000 0000005a"));
  assert.deepEqual(decodeSgl(s), { addr: 0, len: 4096, type: 5, subtype: 0xa });
  setSglTransport(s, 0);
  assert.equal(decodeSgl(s).len, 0);
});

test("tcp pdu: layout rules: digests only where allowed, PDO after header digest and pad", () => {
  assert.deepEqual(layout(PduType.IC_REQ, 0, BOTH), { hlen: 128, pdo: 0, plen: 128, flags: 0 });
  assert.deepEqual(layout(PduType.CAPSULE_CMD, 0, BOTH), { hlen: 72, pdo: 0, plen: 76, flags: 1 });
  assert.deepEqual(layout(PduType.CAPSULE_CMD, 8, { hdgst: false, ddgst: true }), { hlen: 72, pdo: 72, plen: 84, flags: 2 });
  assert.deepEqual(layout(PduType.C2H_DATA, 512, BOTH, 64), { hlen: 24, pdo: 64, plen: 64 + 512 + 4, flags: 3 });
  assert.deepEqual(layout(PduType.H2C_TERM_REQ, 0, BOTH), { hlen: 24, pdo: 0, plen: 24, flags: 0 });
});
