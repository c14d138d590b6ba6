/** What the block layer is told about a namespace, and NVMe outcomes as -errno. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { ControllerResetError, DeviceClosedError, InvalidArgumentError, NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { decodeParams, disposition, encodeParams, Errno, MAX_RETRIES, statusErrno, ublkParams } from "../../../lib/ublk/params.ts";
import { ParamAttr, ParamsOff, ParamType } from "../../../lib/ublk/uapi.ts";

const ctrl = { maxTransferBytes: 512 * 1024, oncs: 0x0c, vwc: true };
const ns = { blockSize: 4096, blockCount: 4096n * 1024n };

test("ublk params: capacity, block sizes, max sectors from maxIoBytes capped by MDTS, discard and write zeroes from ONCS", () => {
  const p = ublkParams(ctrl, ns, 128 * 1024);
  assert.equal(p.logicalBsShift, 12);
  assert.equal(p.physicalBsShift, 12);
  assert.equal(p.maxSectors, 256);
  assert.equal(p.devSectors, 4096n * 1024n * 8n);
  assert.equal(p.attrs, ParamAttr.VOLATILE_CACHE | ParamAttr.FUA);
  assert.equal(p.discardGranularity, 4096);
  assert.ok(p.maxDiscardSectors > 0);
  assert.equal(p.maxWriteZeroesSectors, 65536 * 8, "Write Zeroes' NLB is 16 bits");
  assert.equal(ublkParams({ ...ctrl, maxTransferBytes: 64 * 1024 }, ns, 128 * 1024).maxSectors, 128, "MDTS caps it");
  const bare = ublkParams({ maxTransferBytes: 131072, oncs: 0, vwc: false }, { blockSize: 512, blockCount: 1000n }, 65536);
  assert.equal(bare.logicalBsShift, 9);
  assert.equal(bare.attrs, 0);
  assert.equal(bare.discardGranularity, 0);
  assert.equal(bare.maxDiscardSectors, 0);
  assert.equal(bare.maxWriteZeroesSectors, 0);
  assert.equal(bare.devSectors, 1000n);
});

test("ublk params: refused for block sizes ublk cannot take and bad maxIoBytes", () => {
  assert.throws(() => ublkParams(ctrl, { blockSize: 8192, blockCount: 1n }, 131072), InvalidArgumentError);
  assert.throws(() => ublkParams(ctrl, { blockSize: 520, blockCount: 1n }, 131072), InvalidArgumentError);
  assert.throws(() => ublkParams(ctrl, ns, 1000), InvalidArgumentError);
  assert.throws(() => ublkParams(ctrl, ns, 0), InvalidArgumentError);
});

test("ublk params: struct ublk_params round-trips; types say which parts are present; one discard segment", () => {
  const p = ublkParams(ctrl, ns, 131072);
  const b = encodeParams(p);
  const v = new DataView(b.buffer);
  assert.equal(b.length, ParamsOff.SIZE);
  assert.equal(v.getUint32(ParamsOff.LEN, true), 64);
  assert.equal(v.getUint32(ParamsOff.TYPES, true), ParamType.BASIC | ParamType.DISCARD);
  assert.equal(v.getUint16(ParamsOff.MAX_DISCARD_SEGMENTS, true), 1);
  assert.deepEqual(decodeParams(b), p);
  const bare = encodeParams(ublkParams({ maxTransferBytes: 131072, oncs: 0, vwc: false }, ns, 131072));
  assert.equal(new DataView(bare.buffer).getUint32(ParamsOff.TYPES, true), ParamType.BASIC);
});

const cmd = { qid: 1, cid: 3, opcode: 1, nsid: 1 };

test("ublk errors: retried as Linux's nvme does (no DNR, timeout, reset; 5 times), then -errno", () => {
  const retryable = new NvmeStatusError(0x0006, 0, cmd); // Internal Error, no DNR
  assert.equal(disposition(retryable, 0), 0);
  assert.equal(disposition(retryable, MAX_RETRIES - 1), 0);
  assert.equal(disposition(retryable, MAX_RETRIES), -Errno.EIO);
  const dnr = new NvmeStatusError(0x4000 | 0x0081, 0, cmd); // Capacity Exceeded, DNR
  assert.equal(disposition(dnr, 0), -Errno.ENOSPC);
  assert.equal(disposition(new ControllerResetError("reset"), 0), 0);
  assert.equal(disposition(new ControllerResetError("reset"), MAX_RETRIES), -Errno.EIO);
  assert.equal(disposition(new NvmeTimeoutError(cmd, 30000), 2), 0);
  assert.equal(disposition(new DeviceClosedError(), 0), -Errno.EIO, "a closed queue fails at once");
});

test("ublk errors: nvme_error_status's table", () => {
  assert.equal(statusErrno(0x0081), Errno.ENOSPC);
  assert.equal(statusErrno(0x0080), Errno.EREMOTEIO);
  assert.equal(statusErrno(0x0002), Errno.EOPNOTSUPP);
  assert.equal(statusErrno(0x0001), Errno.EOPNOTSUPP);
  assert.equal(statusErrno(0x0281), Errno.ENODATA);
  assert.equal(statusErrno(0x0280), Errno.ENODATA);
  assert.equal(statusErrno(0x0006), Errno.EIO);
});
