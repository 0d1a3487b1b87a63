/**
 * A fix for kafkajs 2.2.4's read_committed filtering, loaded before kafkajs itself (import it first).
 *
 * A fetch response lists the partition's aborted transactions in no particular order. kafkajs's
 * filterAbortedMessages walks that list as if it were sorted by first offset, so when transactions of
 * several producers interleave on one partition (the results and dead-letter topics: one transactional
 * producer per input partition), it can miss an aborted transaction and hand out its records. The Java
 * client orders the list by first offset (a priority queue); so does this wrapper, before kafkajs's own code.
 * It must run before kafkajs's consumer modules load (they keep a reference to the function).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modulePath = require.resolve("kafkajs/src/consumer/filterAbortedMessages.js");
const batchPath = require.resolve("kafkajs/src/consumer/batch.js");

interface AbortedTransaction {
  readonly firstOffset: string;
  readonly producerId: string;
}
type Filter = (input: { messages: unknown[]; abortedTransactions?: AbortedTransaction[] }) => unknown[];

const cached = require.cache[modulePath];
if (!(cached?.exports as { ordered?: boolean } | undefined)?.ordered) {
  // Loaded too late (kafkajs's consumer already holds the original): abortedTransactionsOrdered() says so.
  if (!require.cache[batchPath]) installOrdered();
}

function installOrdered(): void {
  const original = require(modulePath) as Filter;
  const ordered: Filter & { ordered?: boolean } = ({ messages, abortedTransactions }) =>
    original({
      messages,
      ...(abortedTransactions
        ? {
            abortedTransactions: [...abortedTransactions].sort((a, b) => {
              const x = BigInt(a.firstOffset);
              const y = BigInt(b.firstOffset);
              return x < y ? -1 : x > y ? 1 : 0;
            }),
          }
        : {}),
    });
  ordered.ordered = true;
  const entry = require.cache[modulePath];
  if (entry) entry.exports = ordered;
}

/** Whether the fix is in place: kafkajs's consumer uses the ordering filter. */
export function abortedTransactionsOrdered(): boolean {
  return (require.cache[modulePath]?.exports as { ordered?: boolean } | undefined)?.ordered === true;
}
