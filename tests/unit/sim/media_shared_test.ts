/** SharedMemMedia: byte storage in one SharedArrayBuffer that views in other threads share. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { SharedMemMedia } from "../../../lib/sim/media.ts";

test("shared media: read, write, zero and pattern; a second view over the same buffer sees it all", () => {
  const m = new SharedMemMedia(64 * 1024 + 512);
  const other = new SharedMemMedia(m.sab);
  assert.equal(other.size, m.size);
  const r = new Uint8Array(1024);
  m.read(1000, r);
  assert.ok(r.every((x) => x === 0), "starts zeroed");
  m.write(65_000, new Uint8Array(1000).fill(7));
  other.read(65_000, r.subarray(0, 1000));
  assert.ok(r.subarray(0, 1000).every((x) => x === 7));
  other.zero(65_100, 10);
  m.read(65_095, r.subarray(0, 20));
  assert.deepEqual([...r.subarray(0, 20)], [7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 7, 7, 7]);
  m.fillPattern(0xdeadbeef);
  const tail = new Uint8Array(8);
  other.read(m.size - 8, tail);
  assert.deepEqual([...tail], [0xef, 0xbe, 0xad, 0xde, 0xef, 0xbe, 0xad, 0xde]);
  other.read(3, tail.subarray(0, 2));
  assert.deepEqual([...tail.subarray(0, 2)], [0xde, 0xef]);
});
