import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { prpListPages, writePrps } from "../../../lib/nvme/prp.ts";

const PS = 4096;
const LIST = 0x9000_0000;

function prps(iova: number, len: number, pages = 4): { p1: number; p2: number; list: number[]; raw: Uint32Array } {
  const sqe = new Uint32Array(16);
  const raw = new Uint32Array((pages * PS) / 4);
  writePrps(sqe, iova, len, PS, raw, LIST);
  const list: number[] = [];
  for (let i = 0; i < raw.length; i += 2) list.push(raw[i] + raw[i + 1] * 2 ** 32);
  return { p1: sqe[6] + sqe[7] * 2 ** 32, p2: sqe[8] + sqe[9] * 2 ** 32, list, raw };
}

/** Walk PRP1/PRP2/list the way a controller does and return the data pages touched. */
function walk(iova: number, len: number, pages = 4): number[] {
  const { p1, p2, list } = prps(iova, len, pages);
  const out = [p1];
  let rem = len - (PS - (p1 % PS));
  if (rem <= 0) return out;
  if (rem <= PS) return [...out, p2];
  let idx = (p2 - LIST) / 8;
  while (rem > 0) {
    const e = list[idx];
    if (idx % (PS / 8) === PS / 8 - 1 && rem > PS) {
      idx = (e - LIST) / 8; // chained list page
      continue;
    }
    out.push(e);
    rem -= PS;
    idx++;
  }
  return out;
}

test("one page or less: PRP2 zero", () => {
  assert.deepEqual([prps(0x10000, 4096).p1, prps(0x10000, 4096).p2], [0x10000, 0]);
  assert.equal(prps(0x10200, 512).p2, 0);
  assert.equal(prps(0x10e00, 512).p2, 0); // ends exactly at the page end
});

test("crossing one page boundary: PRP2 is the next page", () => {
  const r = prps(0x10e00, 1024);
  assert.equal(r.p1, 0x10e00);
  assert.equal(r.p2, 0x11000);
  const aligned = prps(0x10000, 8192);
  assert.equal(aligned.p2, 0x11000);
});

test("three pages and more use a PRP list", () => {
  const r = prps(0x10000, 3 * PS);
  assert.equal(r.p2, LIST);
  assert.deepEqual(r.list.slice(0, 2), [0x11000, 0x12000]);
  const off = prps(0x10800, 2 * PS); // 2 KiB + 4 KiB + 2 KiB -> 3 pages
  assert.equal(off.p2, LIST);
  assert.deepEqual(off.list.slice(0, 2), [0x11000, 0x12000]);
  assert.equal(off.list[2], 0);
});

test("a list that crosses a list page chains through its last entry", () => {
  // 512 entries per list page; 1 MiB + 3 pages from an aligned start needs 258+... entries: use 600 pages.
  const len = 601 * PS;
  assert.equal(prpListPages(0x100000, len, PS), 2);
  const r = prps(0x100000, len, 2);
  assert.equal(r.list[511], LIST + PS, "last slot of page 0 points at page 1");
  assert.equal(r.list[510], 0x100000 + 511 * PS);
  assert.equal(r.list[512], 0x100000 + 512 * PS);
  const pages = walk(0x100000, len, 2);
  assert.equal(pages.length, 601);
  pages.forEach((p, i) => assert.equal(p, 0x100000 + i * PS));
});

test("exactly 512 list entries fit one list page (no chain)", () => {
  const len = 513 * PS; // PRP1 + 512 entries
  assert.equal(prpListPages(0, len, PS), 1);
  const pages = walk(0x200000, len, 1);
  assert.equal(pages.length, 513);
  assert.equal(pages[512], 0x200000 + 512 * PS);
  assert.equal(prpListPages(0, 514 * PS, PS), 2);
});

test("high IOVAs above 4 GiB are split into lo/hi dwords", () => {
  const base = 0x12_3456_7000;
  const pages = walk(base + 4, 5 * PS);
  assert.equal(pages[0], base + 4);
  assert.equal(pages[1], base + PS);
  assert.equal(pages.length, 6);
});

test("page count helper agrees with the walker for many shapes", () => {
  for (const off of [0, 4, 512, 4092]) {
    for (const n of [1, 2, 3, 100, 511, 512, 513, 1023, 1024, 1500]) {
      const len = n * PS - (off ? 4 : 0);
      const lp = prpListPages(off, len, PS);
      const pages = walk(0x400000 + off, len, Math.max(lp, 1));
      const expect = Math.ceil((off + len) / PS);
      assert.equal(pages.length, expect, `off ${off} n ${n}`);
    }
  }
});
