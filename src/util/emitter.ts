/**
 * A minimal typed event emitter with no dependency on node:events, so the
 * sans-IO core runs on any JavaScript runtime.
 * @module
 */

/** Map of event names to listener argument types. */
export type EventMap = Record<string, unknown>;

/** Typed event emitter. */
export class Emitter<E extends EventMap> {
  #listeners = new Map<keyof E, Set<(arg: never) => void>>();

  /** Subscribe; returns a function that unsubscribes. */
  on<K extends keyof E>(event: K, listener: (arg: E[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(listener as (arg: never) => void);
    return () => this.off(event, listener);
  }

  /** Subscribe for one event. */
  once<K extends keyof E>(event: K, listener: (arg: E[K]) => void): () => void {
    const off = this.on(event, (arg) => {
      off();
      listener(arg);
    });
    return off;
  }

  /** Unsubscribe. */
  off<K extends keyof E>(event: K, listener: (arg: E[K]) => void): void {
    this.#listeners.get(event)?.delete(listener as (arg: never) => void);
  }

  /** True if anybody listens to `event` (lets hot paths skip building event objects). */
  has<K extends keyof E>(event: K): boolean {
    const set = this.#listeners.get(event);
    return set !== undefined && set.size > 0;
  }

  /** Call every listener of `event`; a throwing listener does not stop the others or the caller. */
  emit<K extends keyof E>(event: K, arg: E[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const l of [...set]) {
      try {
        (l as (a: E[K]) => void)(arg);
      } catch {
        // Listener errors must never break the protocol engine.
      }
    }
  }
}
