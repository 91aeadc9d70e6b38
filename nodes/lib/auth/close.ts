/**
 * Closing a client that holds an ERP session, within a deadline (Node-RED waits 15 s for a close handler, then
 * moves on with the old instance still running): wait for a sign-in in progress, sign out, forget the session, and
 * release the connection pool, never longer than `timeoutMs` in all. At the deadline the sign-out is aborted and
 * whatever the server still holds is left to expire.
 */

export interface CloseSteps {
  /** A sign-in in progress, if any: waited for (within the deadline) so its session can be signed out too. */
  pending?: Promise<unknown>;
  /** Sign out; aborted through `signal` at the deadline. Best effort: a rejection is ignored. */
  signOut(signal: AbortSignal): Promise<unknown>;
  /** Drop the session from memory (always runs). */
  forget(): void;
  /** Release the connection pool (always runs, bounded by the same deadline). */
  release(): Promise<unknown>;
}

/**
 * Run `steps` within `timeoutMs` (ms). Never rejects.
 */
export async function closeWithin(timeoutMs: number, steps: CloseSteps): Promise<void> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      abort.abort();
      resolve();
    }, timeoutMs);
  });
  try {
    const work = (async () => {
      if (steps.pending) await Promise.race([steps.pending.catch(() => undefined), expired]);
      if (!abort.signal.aborted) await steps.signOut(abort.signal);
    })().catch(() => undefined); // sign-out is best effort; the pool is released regardless
    await Promise.race([work, expired]);
  } finally {
    steps.forget();
    // the pool waits for busy sockets; never longer than the deadline
    await Promise.race([steps.release().catch(() => undefined), expired]);
    clearTimeout(timer);
  }
}
