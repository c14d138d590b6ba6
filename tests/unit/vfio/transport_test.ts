/** The IOVA allocator: page-aligned ranges, exact-size reuse, and the per-open skew. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { IovaAllocator } from "../../../lib/vfio/transport.ts";

const MiB = 0x10_0000;

test("IovaAllocator starts past the first MiB, then skewed when the first range has room", () => {
  const r = [{ start: 0, end: 0xfedf_ffff }];
  assert.equal(new IovaAllocator(r).alloc(4096), MiB);
  const a = new IovaAllocator(r, 16 * MiB);
  assert.equal(a.alloc(4096), 17 * MiB);
  assert.equal(a.alloc(8192), 17 * MiB + 4096);
});

test("IovaAllocator ignores a skew the first range cannot hold four times over", () => {
  const small = [{ start: 0, end: 40 * MiB - 1 }];
  assert.equal(new IovaAllocator(small, 16 * MiB).alloc(4096), MiB);
  assert.equal(new IovaAllocator(small, 8 * MiB).alloc(4096), 9 * MiB);
});

test("IovaAllocator reuses a freed range of the same size before bumping", () => {
  const a = new IovaAllocator([{ start: 0, end: 0xffff_ffff }], 16 * MiB);
  const x = a.alloc(4096), y = a.alloc(4096);
  a.free(x, 4096);
  assert.equal(a.alloc(4096), x);
  assert.equal(a.alloc(4096), y + 4096);
});
