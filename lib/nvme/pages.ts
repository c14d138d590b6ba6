/**
 * First-fit allocation of page runs with neighbours coalesced on free: the
 * software controller's host memory and a Worker queue's DMA arena both carve
 * buffers out of one region this way.
 * @module
 */

/** Free runs of pages in a region of `pages` pages. */
export class PageRuns {
  /** Free runs as [startPage, pages], sorted by start. */
  #free: [number, number][];

  /** All `pages` free. */
  constructor(pages: number) {
    this.#free = pages > 0 ? [[0, pages]] : [];
  }

  /** Take `pages` contiguous pages; the first page's index, or -1 when no run is long enough. */
  take(pages: number): number {
    const f = this.#free;
    for (let i = 0; i < f.length; i++) {
      const [start, n] = f[i];
      if (n < pages) continue;
      if (n === pages) f.splice(i, 1);
      else f[i] = [start + pages, n - pages];
      return start;
    }
    return -1;
  }

  /** Give back `pages` pages from `start` (ignored if already free). */
  give(start: number, pages: number): void {
    const f = this.#free;
    let i = 0;
    while (i < f.length && f[i][0] < start) i++;
    if (i < f.length && f[i][0] === start) return;
    f.splice(i, 0, [start, pages]);
    if (i + 1 < f.length && f[i][0] + f[i][1] === f[i + 1][0]) {
      f[i][1] += f[i + 1][1];
      f.splice(i + 1, 1);
    }
    if (i > 0 && f[i - 1][0] + f[i - 1][1] === f[i][0]) {
      f[i - 1][1] += f[i][1];
      f.splice(i, 1);
    }
  }
}
