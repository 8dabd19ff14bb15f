/**
 * @module Who reads a blob download, and so what it must keep: attached clients, each with the
 * lowest offset it may still read, and newcomers holding it while they wait for the size. A
 * pass-through download waits here for its slowest client before it reads on from the upstream.
 */
import { createSignal, type Signal } from './signal.js';

/** A client attached to a download: the lowest offset it may still read. */
export interface DownloadReader {
  needsFrom: number;
}

export class DownloadClients {
  private readonly readers = new Set<DownloadReader>();
  private holds = 0;
  private nextMove: Signal | null = null;

  /** `onMove` runs whenever a client moves on, detaches or lets go of a hold. */
  constructor(private readonly onMove: () => void) {}

  /** No client attached and none about to be. */
  get none(): boolean {
    return this.readers.size === 0 && this.holds === 0;
  }

  hold(): () => void {
    this.holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.holds--;
      this.moved();
    };
  }

  attach(start: number): DownloadReader {
    const reader = { needsFrom: start };
    this.readers.add(reader);
    return reader;
  }

  detach(reader: DownloadReader): void {
    if (this.readers.delete(reader)) this.moved();
  }

  /** A client moved on (its `needsFrom` grew) or went away. */
  moved(): void {
    const waiting = this.nextMove;
    this.nextMove = null;
    waiting?.resolve();
    this.onMove();
  }

  /** The lowest offset any attached client may still read (infinity when none is attached). */
  lowest(): number {
    let lowest = Number.POSITIVE_INFINITY;
    for (const reader of this.readers) lowest = Math.min(lowest, reader.needsFrom);
    return lowest;
  }

  /** Waits while some client is `distance` or more behind `offset`, unless `stop()` says to stop. */
  async whileBehind(offset: () => number, distance: number, stop: () => boolean): Promise<void> {
    while (!stop() && offset() - this.lowest() >= distance) {
      this.nextMove ??= createSignal();
      await this.nextMove.promise;
    }
  }
}
