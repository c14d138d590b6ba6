/**
 * Callback-path submissions (Namespace.submitRead/submitWrite) that found no
 * free queue slot, retried in order as completions free slots. The submit
 * calls return false, sending nothing, when every slot is taken; a caller
 * that must not drop such IO (a target, media over a namespace) queues it
 * here and drains after each completion.
 * @module
 */

/** Submissions waiting for a queue slot, oldest first. */
export class SubmitBacklog {
  readonly #go: (() => boolean)[] = [];
  readonly #fail: ((e: unknown) => void)[] = [];

  /** Submissions waiting. */
  get length(): number {
    return this.#go.length;
  }

  /**
   * Run `go` now unless earlier submissions wait (order is kept); if it
   * finds no slot (returns false) keep it for {@link drain}. A throw from
   * `go`, now or later, goes to `fail`.
   */
  submit(go: () => boolean, fail: (e: unknown) => void): void {
    if (this.#go.length === 0) {
      try {
        if (go()) return;
      } catch (e) {
        fail(e);
        return;
      }
    }
    this.#go.push(go);
    this.#fail.push(fail);
  }

  /** A completion freed a slot: retry waiting submissions in order until one finds none. */
  drain(): void {
    const go = this.#go, fail = this.#fail;
    while (go.length > 0) {
      let ok: boolean;
      try {
        ok = go[0]();
      } catch (e) {
        // Off the queue first: `fail` may complete the IO, and the completion drains again.
        go.shift();
        fail.shift()!(e);
        continue;
      }
      if (!ok) return;
      go.shift();
      fail.shift();
    }
  }
}
