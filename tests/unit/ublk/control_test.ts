/** The control device without ublk: a clear setup error where /dev/ublk-control is missing. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "../../harness.ts";
import { SetupError } from "../../../lib/nvme/errors.ts";
import { UblkControl } from "../../../lib/ublk/control.ts";

const present = existsSync("/dev/ublk-control");

test("ublk control: without ublk_drv, open says to load it", async () => {
  await assert.rejects(UblkControl.open(), (e: unknown) => {
    assert.ok(e instanceof SetupError);
    assert.equal(e.reason, "no-device");
    assert.match(e.message, /modprobe ublk_drv/);
    return true;
  });
}, { ignore: present });
