import assert from "node:assert/strict";
import { runtime, test } from "../harness.ts";
test("harness runs", () => { assert.ok(runtime === "deno" || runtime === "bun"); });
