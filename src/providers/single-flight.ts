// What the process-backed providers share: which names are safe as a path segment or an
// engine name, and one launch in flight per instance id.

/** An instance id or volume name usable as one path segment / container name. */
export const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * One launch in flight per instance id: a second launch of the same id joins the first
 * (Provider.launch is idempotent per id), and a terminate first waits for a launch in
 * flight to settle, so it never races the start it is meant to undo.
 *
 *   const launches = new LaunchFlights();
 *   launch(req)    { return launches.run(req.instanceId, () => this.launchOnce(req)); }
 *   terminate(id)  { await launches.settled(id); … }
 */
export class LaunchFlights<T> {
  private readonly pending = new Map<string, Promise<T>>();

  run(id: string, start: () => Promise<T>): Promise<T> {
    const inFlight = this.pending.get(id);
    if (inFlight) return inFlight;
    const p = start().finally(() => this.pending.delete(id));
    this.pending.set(id, p);
    return p;
  }

  /** Whether a launch of `id` is in flight. */
  has(id: string): boolean {
    return this.pending.has(id);
  }

  /** Resolves once no launch of `id` is in flight (whatever its outcome). */
  async settled(id: string): Promise<void> {
    await this.pending.get(id)?.catch(() => undefined);
  }
}
