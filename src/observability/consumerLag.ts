import type { Admin } from "kafkajs";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";

export interface LagReporterOptions {
  readonly admin: Admin;
  readonly groupId: string;
  readonly topic: string;
  /** The partitions this member owns now: lag is reported for those only. */
  readonly assignedPartitions: () => readonly number[];
  /** How often consumer_lag_messages is refreshed. Default 15 s. */
  readonly intervalMs?: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Refreshes consumer_lag_messages on a timer: log end offset minus committed offset, per owned partition.
 * Returns the function that stops it.
 */
export function startLagReporter(options: LagReporterOptions): () => void {
  const { admin, metrics } = options;
  const refresh = async () => {
    try {
      const [ends, committed] = await Promise.all([
        admin.fetchTopicOffsets(options.topic),
        admin.fetchOffsets({ groupId: options.groupId, topics: [options.topic] }),
      ]);
      const assigned = options.assignedPartitions();
      const committedBy = new Map(committed[0]?.partitions.map((p) => [p.partition, BigInt(p.offset)]) ?? []);
      metrics.consumerLag.reset();
      for (const end of ends) {
        if (!assigned.includes(end.partition)) continue;
        const position = committedBy.get(end.partition) ?? -1n;
        const start = position < 0n ? BigInt(end.low) : position;
        metrics.consumerLag.set({ partition: String(end.partition) }, Number(BigInt(end.high) - start));
      }
    } catch (error) {
      // Lag is best effort: a failed read leaves the last values.
      options.logger.debug({ err: error }, "consumer lag not refreshed");
    }
  };
  const timer = setInterval(() => void refresh(), options.intervalMs ?? 15_000);
  timer.unref();
  return () => clearInterval(timer);
}
