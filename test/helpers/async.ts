/** Small waiting aids for unit tests of asynchronous code. */
import { vi } from "vitest";

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise resolved or rejected from outside, to hold an operation at a point of the test's choosing. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending callbacks run. */
export const idle = (ms = 20) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Retries an assertion until it holds (2 s at most). */
export const eventually = <T>(check: () => T) => vi.waitFor(check, { timeout: 2000, interval: 1 });
