// The controller model over a namespace of an open NVMeDev (lib/sim/nsmedia.ts): a second model
// exporting the software controller's namespace, as an NVMe/TCP target exports a real one.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { BufferPort, ControllerModel, PENDING } from "../../../lib/sim/engine.ts";
import { identityOf, modelOptionsOf, NamespaceMedia } from "../../../lib/sim/nsmedia.ts";
import { AdminOpc, CC, Cns, IoOpc } from "../../../lib/nvme/spec.ts";
import { decodeIdentifyController, decodeIdentifyNamespace } from "../../../lib/nvme/identify.ts";

interface Done {
  cid: number;
  sf: number;
}

function sqe(opc: number, cid: number, nsid: number, cdw: Record<number, number> = {}): Uint32Array {
  const c = new Uint32Array(16);
  c[0] = (opc | (cid << 16)) >>> 0;
  c[1] = nsid;
  for (const [k, v] of Object.entries(cdw)) c[Number(k)] = v >>> 0;
  return c;
}

/** Execute and wait for the front end's completion when the model defers it. */
function run(m: ControllerModel, done: Map<number, (sf: number) => void>, qid: number, cmd: Uint32Array, port: BufferPort): Promise<number> {
  const st = m.execute(qid, cmd, port);
  if (st !== PENDING) return Promise.resolve(st);
  return new Promise((r) => done.set(cmd[0] >>> 16, r));
}

test("engine: a model over an NVMeDev namespace passes identity through and moves data to the backing device", async () => {
  const t = await SimTransport.create({ serial: "BACKING9", model: "backing model", mdts: 4, namespaces: [{ size: 8 << 20, blockSize: 4096 }] });
  const dev = await NVMeDev.open("sim", { transport: t, ioQueues: 1 });
  try {
    const id = identityOf(dev);
    assert.equal(id.serial, "BACKING9");
    assert.equal(id.model, "backing model");
    const waiters = new Map<number, (sf: number) => void>();
    const seen: Done[] = [];
    const opts = modelOptionsOf(dev);
    const m = new ControllerModel({ ...opts, cntlid: 3 }, {
      complete(_qid, cid, sf) {
        seen.push({ cid, sf });
        waiters.get(cid)?.(sf);
      },
    });
    m.setCc(CC.EN | (6 << 16) | (4 << 20));
    const idp = new BufferPort(new Uint8Array(4096));
    assert.equal(await run(m, waiters, 0, sqe(AdminOpc.IDENTIFY, 1, 0, { 10: Cns.CONTROLLER }), idp), 0);
    const ic = decodeIdentifyController(idp.buf);
    assert.deepEqual([ic.serial, ic.model, ic.vid, ic.cntlid, ic.mdts], ["BACKING9", "backing model", 0x1d1d, 3, 4]);
    assert.equal(ic.sanicap & 7, 0, "no sanitize through the model");
    assert.equal(await run(m, waiters, 0, sqe(AdminOpc.IDENTIFY, 2, 1, { 10: Cns.NAMESPACE }), idp), 0);
    const ins = decodeIdentifyNamespace(idp.buf);
    assert.equal(ins.blockSize, 4096);
    assert.equal(ins.nsze, BigInt((8 << 20) / 4096));
    // Write 3 blocks through the model from DMA memory of the backing device; read them back on the device.
    const media = (opts.namespaces![0] as { media: NamespaceMedia }).media;
    const src = media.alloc(3 * 4096);
    for (let i = 0; i < src.length; i++) src[i] = (i * 13 + 5) & 0xff;
    assert.equal(await run(m, waiters, 1, sqe(IoOpc.WRITE, 3, 1, { 10: 20, 12: 2 }), new BufferPort(src)), 0);
    const check = dev.allocBuffer(3 * 4096);
    await dev.ns(1).read(20, check);
    assert.deepEqual(check, src);
    // And the other way: data the device wrote reads through the model.
    check.fill(0xa5);
    await dev.ns(1).write(40, check);
    const dst = new BufferPort(new Uint8Array(3 * 4096));
    assert.equal(await run(m, waiters, 1, sqe(IoOpc.READ, 4, 1, { 10: 40, 12: 2 }), dst), 0);
    assert.ok(dst.buf.every((b) => b === 0xa5));
    // Write Zeroes and Flush map onto the backing namespace.
    assert.equal(await run(m, waiters, 1, sqe(IoOpc.WRITE_ZEROES, 5, 1, { 10: 41, 12: 0 }), new BufferPort()), 0);
    assert.equal(await run(m, waiters, 1, sqe(IoOpc.FLUSH, 6, 1), new BufferPort()), 0);
    await dev.ns(1).read(40, check);
    assert.ok(check.subarray(0, 4096).every((b) => b === 0xa5));
    assert.ok(check.subarray(4096, 8192).every((b) => b === 0));
    // A media error on the backing controller comes back through the model as that status.
    await t.faults.add({ action: "status", queue: "io", opcode: IoOpc.READ, status: 0x281, count: 1 });
    const st = await run(m, waiters, 1, sqe(IoOpc.READ, 7, 1, { 10: 0, 12: 0 }), new BufferPort(new Uint8Array(4096)));
    assert.equal(st & 0x7ff, 0x281);
    assert.deepEqual(seen.map((s) => s.cid), [3, 4, 5, 6, 7]);
    media.free(src);
    dev.freeBuffer(check);
  } finally {
    await dev.close();
  }
});

test("engine: more IO on NamespaceMedia than the backing queue holds waits in its backlog and all completes", async () => {
  const t = await SimTransport.create({ namespaces: [{ size: 4 << 20, blockSize: 512 }] });
  const dev = await NVMeDev.open("sim", { transport: t, ioQueues: 1, ioQueueDepth: 4 });
  try {
    const media = new NamespaceMedia(dev, 1);
    const n = 64;
    const bufs = Array.from({ length: n }, (_, i) => media.alloc(4096).fill(i + 1));
    const statuses: number[] = [];
    await new Promise<void>((resolve) => {
      for (let i = 0; i < n; i++) {
        media.write(i * 4096, bufs[i], (sf) => {
          statuses.push(sf);
          if (statuses.length === n) resolve();
        });
      }
    });
    assert.deepEqual(statuses, new Array(n).fill(0));
    const back = dev.allocBuffer(4096);
    for (const i of [0, 17, 63]) {
      await dev.ns(1).read(i * 8, back);
      assert.ok(back.every((b) => b === i + 1), `block group ${i}`);
    }
    // A misaligned offset fails through the callback, not by throwing.
    let sf = -1;
    media.read(100, back, (s) => (sf = s));
    assert.notEqual(sf, 0);
    assert.notEqual(sf, -1);
    for (const b of bufs) media.free(b);
    dev.freeBuffer(back);
  } finally {
    await dev.close();
  }
});
