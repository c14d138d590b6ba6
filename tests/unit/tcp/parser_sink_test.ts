import assert from "node:assert/strict";
import { rng, test } from "../../harness.ts";
import { PduParser } from "../../../lib/tcp/parser.ts";
import { buildPdu, encodeIcReq, PduType, writeDataPdu } from "../../../lib/tcp/pdu.ts";

function h2c(data: Uint8Array, dg: boolean): Uint8Array {
  const hdr = new Uint8Array(32);
  const l = writeDataPdu(hdr, PduType.H2C_DATA, { cccid: 7, ttag: 3, datao: 0, datal: data.length, last: true, success: false }, { hdgst: dg, ddgst: dg });
  return buildPdu(hdr, l, data);
}

for (const dg of [false, true]) {
  test(`parser data sink: H2CData lands in the sink however the stream is split (digests ${dg ? "on" : "off"})`, () => {
    const r = rng(dg ? 7 : 3);
    const data = new Uint8Array(20000).map((_, i) => (i * 13 + 5) & 0xff);
    const stream = new Uint8Array([...encodeIcReq({ hdgst: dg, ddgst: dg }), ...h2c(data, dg), ...h2c(data.subarray(0, 100), dg)]);
    for (const mode of ["byte", "random", "whole"] as const) {
      const sinks: Uint8Array[] = [];
      const got: Uint8Array[] = [];
      const p = new PduParser({ role: "target", maxData: 1 << 20 }, (hdr, d) => {
        if (hdr[0] === PduType.IC_REQ) {
          p.digests = { hdgst: dg, ddgst: dg };
          return;
        }
        got.push(d!);
      });
      p.placeData = (hdr, n) => {
        assert.equal(hdr[0], PduType.H2C_DATA);
        const s = new Uint8Array(n + 8).subarray(4, 4 + n); // a view into a larger buffer, as DMA memory is
        sinks.push(s);
        return s;
      };
      let i = 0;
      while (i < stream.length) {
        const n = mode === "byte" ? 1 : mode === "whole" ? stream.length : 1 + Math.floor(r() * 3000);
        p.feed(stream.subarray(i, i + n));
        i += n;
      }
      assert.equal(got.length, 2, mode);
      assert.equal(got[0].buffer, sinks[0].buffer, `${mode}: the delivered data is the sink's memory`);
      assert.equal(got[0].byteOffset, sinks[0].byteOffset);
      assert.deepEqual(got[0], data);
      assert.deepEqual(got[1], data.subarray(0, 100));
    }
  });
}

test("parser data placement: a view shorter than the data is refused (a placer bug, not the peer's)", () => {
  const data = new Uint8Array(512).fill(9);
  const p = new PduParser({ role: "target", maxData: 4096 }, () => {});
  p.placeData = () => new Uint8Array(10);
  p.feed(encodeIcReq({}));
  assert.throws(() => p.feed(h2c(data, false)), RangeError);
});
