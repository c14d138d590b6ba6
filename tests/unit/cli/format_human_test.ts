/** -H decodings against the real nvme-cli 2.3's output (fixtures: tests/fixtures/features, logs). */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "../../harness.ts";
import { decodeFeature } from "../../../lib/admin/features.ts";
import { parseSmartLog } from "../../../lib/admin/log.ts";
import { formatFeature, formatSmartLog } from "../../../lib/cli/format/mod.ts";

const fx = (p: string) => new URL(`../../fixtures/${p}`, import.meta.url);
interface Case {
  fid: number;
  value: number;
  human: boolean;
  data?: string;
  tz?: string;
  out: string;
}
const cases: Case[] = JSON.parse(readFileSync(fx("features/nvme-cli-get-feature.json"), "utf8"));
const utc = new Date().getTimezoneOffset() === 0 &&
  new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(new Date()).some((p) => p.value === "UTC");

test(`get-feature: ${cases.length} values, normal and -H, are nvme-cli 2.3's text`, () => {
  let n = 0;
  for (const c of cases) {
    if (c.tz === "UTC" && c.human && !utc) continue; // the timestamp prints local time
    const data = c.data ? new Uint8Array(c.data.match(/../g)!.map((h) => parseInt(h, 16))) : undefined;
    const f = { fid: c.fid, sel: 0, value: c.value, data, fields: decodeFeature(c.fid, c.value, data) };
    assert.equal(formatFeature(f, { human: c.human }), c.out, `fid 0x${c.fid.toString(16)} value 0x${c.value.toString(16)} -H ${c.human}`);
    n++;
  }
  assert.ok(n >= cases.length - 1);
});

test("smart-log, normal and -H, is nvme-cli 2.3's text for the same log", () => {
  const s = parseSmartLog(new Uint8Array(readFileSync(fx("logs/smart.bin"))));
  assert.equal(formatSmartLog(s, "null"), readFileSync(fx("logs/smart.txt"), "utf8"));
  assert.equal(formatSmartLog(s, "null", 0xffffffff, { human: true }), readFileSync(fx("logs/smart.H.txt"), "utf8"));
});
