import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { type IoDone, MediaBackend, NvmfTarget } from "../../../lib/target/mod.ts";
import { MemMedia } from "../../../lib/sim/media.ts";
import { TcpController } from "../../../lib/tcp/host.ts";
import { hostIdentity } from "../../../lib/tcp/fabrics.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";

const NQN = "nqn.2024-01.io.tsnvme:conn";
const ID = hostIdentity("11111111-2222-4333-8444-555555555555");

/** A memory backend that counts buffers taken and the distinct completion callbacks it is handed. */
class CountingBackend extends MediaBackend {
  allocs = 0;
  readonly dones = new Set<IoDone>();
  override alloc(bytes: number): Uint8Array {
    this.allocs++;
    return super.alloc(bytes);
  }
  override read(lba: number, buf: Uint8Array, done: IoDone): void {
    this.dones.add(done);
    super.read(lba, buf, done);
  }
  override write(lba: number, buf: Uint8Array, fua: boolean, done: IoDone): void {
    this.dones.add(done);
    super.write(lba, buf, fua, done);
  }
}

for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
  test(`target conn: Read/Write reuse per-command contexts: no buffer or callback per IO, data intact (digests ${dg.hdgst})`, async () => {
    const be = new CountingBackend(new MemMedia(4 << 20), 512);
    const t = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: [be] }], inCapsule: 4096, maxIoQueues: 1 });
    const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, ioQueues: 1, katoMs: 0, digests: dg });
    try {
      const qp = c.io[0].qp;
      const w = c.memory.allocDma(16384), r = c.memory.allocDma(16384);
      const QD = 4, ROUNDS = 50;
      // Writes both in-capsule (4 KiB) and through R2T (16 KiB), then reads, QD 4, many rounds.
      for (let round = 0; round < ROUNDS; round++) {
        const big = round % 2 === 1, len = big ? 16384 : 4096;
        for (let i = 0; i < len; i++) w.bytes[i] = (i * 7 + round) & 0xff;
        const ps: Promise<unknown>[] = [];
        for (let q = 0; q < QD; q++) ps.push(qp.rw(IoOpc.WRITE, 1, (round * QD + q) * 32, len / 512 - 1, w.iova, len));
        await Promise.all(ps);
        for (let q = 0; q < QD; q++) {
          r.bytes.fill(0);
          await qp.rw(IoOpc.READ, 1, (round * QD + q) * 32, len / 512 - 1, r.iova, len);
          assert.deepEqual(r.bytes.subarray(0, len), w.bytes.subarray(0, len));
        }
      }
      const ios = ROUNDS * QD * 2;
      // One context per command in flight (each with its read and write callback) and a buffer per context and size class.
      assert.ok(be.dones.size <= 2 * QD, `${be.dones.size} distinct callbacks for ${ios} IOs`);
      assert.ok(be.allocs <= 2 * QD, `${be.allocs} buffers taken for ${ios} IOs`);
    } finally {
      c.close();
      await t.close();
    }
  });
}
