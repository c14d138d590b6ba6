/** ublk's user API as numbers: the encoded opcodes ublksrv and the kernel headers give. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { ctrlOp, descOffset, encodeOp, ioOp, UblkCmd, UblkIoCmd } from "../../../lib/ublk/uapi.ts";

test("ublk uapi: encoded control and IO opcodes match the kernel's UBLK_U_* values", () => {
  assert.equal(ctrlOp(UblkCmd.ADD_DEV), 0xc0207504);
  assert.equal(ctrlOp(UblkCmd.DEL_DEV), 0xc0207505);
  assert.equal(ctrlOp(UblkCmd.START_DEV), 0xc0207506);
  assert.equal(ctrlOp(UblkCmd.STOP_DEV), 0xc0207507);
  assert.equal(ctrlOp(UblkCmd.SET_PARAMS), 0xc0207508);
  assert.equal(ctrlOp(UblkCmd.GET_PARAMS), 0x80207509, "_IOR");
  assert.equal(ctrlOp(UblkCmd.GET_DEV_INFO), 0x80207502, "_IOR");
  assert.equal(ctrlOp(UblkCmd.GET_QUEUE_AFFINITY), 0x80207501, "_IOR");
  assert.equal(ctrlOp(UblkCmd.START_USER_RECOVERY), 0xc0207510);
  assert.equal(ctrlOp(UblkCmd.END_USER_RECOVERY), 0xc0207511);
  assert.equal(ioOp(UblkIoCmd.FETCH_REQ), 0xc0107520);
  assert.equal(ioOp(UblkIoCmd.COMMIT_AND_FETCH_REQ), 0xc0107521);
  assert.equal(encodeOp(0x20, 16) & 0xff, 0x20, "the plain number is the low byte (the legacy fallback)");
});

test("ublk uapi: each queue's descriptors lie UBLK_MAX_QUEUE_DEPTH * 24 bytes apart", () => {
  assert.equal(descOffset(0), 0n);
  assert.equal(descOffset(1), 98304n);
  assert.equal(descOffset(3), 3n * 4096n * 24n);
});
