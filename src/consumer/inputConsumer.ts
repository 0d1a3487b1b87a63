import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer, IHeaders, Kafka } from "kafkajs";
import type { SourceRef, TopicPartitionOffset } from "../types.ts";
import type { ConsumerSettings } from "./settings.ts";

export interface InputMessage {
  readonly source: SourceRef;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: IHeaders | undefined;
}

export interface InputConsumerOptions extends ConsumerSettings {
  readonly kafka: Kafka;
  /** Wait before fetching again messages that were not taken. Default 1 s. */
  readonly untakenRetryDelayMs?: number;
}

/** What the consumer calls, given at start (as kafkajs's consumer.run takes its handler). */
export interface InputHandlers {
  /**
   * Called with each fetched batch of one partition, in offset order. Must return quickly (no job is awaited
   * here), with how many messages, from the first, it took: the others are fetched again after a pause.
   */
  readonly onMessages: (messages: readonly InputMessage[]) => Promise<number>;
  /**
   * The partitions assigned after a (re)join, those new since the previous assignment, and those lost. After
   * a crash, or a rejoin under a new member id (this member was thrown out of the group, e.g. paused past its
   * session), every partition counts as lost and then as new: another member may have owned it meanwhile.
   */
  readonly onAssignment: (
    assigned: readonly number[],
    added: readonly number[],
    lost: readonly number[],
  ) => void;
  readonly onCrash?: (error: Error, willRestart: boolean) => void;
}

export interface InputConsumer {
  start(handlers: InputHandlers): Promise<void>;
  /** Flow control: stops fetching from every partition of the input topic; heartbeats go on. */
  pause(): void;
  resume(): void;
  isPaused(): boolean;
  /** Stops fetching from these partitions alone (while their ledger is read), whatever flow control wants. */
  pausePartitions(partitions: readonly number[]): void;
  resumePartitions(partitions: readonly number[]): void;
  /** Moves the next fetch of a partition to this offset. */
  seek(partition: number, offset: string): void;
  commit(entries: readonly TopicPartitionOffset[]): Promise<void>;
  /** True between a successful group join and stop or a crash. */
  isJoined(): boolean;
  assignedPartitions(): readonly number[];
  stop(): Promise<void>;
}

/**
 * The kafkajs consumer-group member on the input topic. Offsets are never committed here on its own
 * (autoCommit off): the coordinator commits when outcomes are acknowledged.
 */
export function createInputConsumer(options: InputConsumerOptions): InputConsumer {
  const consumer: Consumer = options.kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: options.sessionTimeoutMs,
    heartbeatInterval: Math.max(1000, Math.floor(options.sessionTimeoutMs / 10)),
    // Bounded fetches keep the gap between one pause check and the next small.
    maxBytesPerPartition: 1024 * 1024,
    // A fetch waits at most this long for data: it also bounds how long stopping waits for the fetch loop.
    maxWaitTimeInMs: 1000,
  });
  let assigned: number[] = [];
  let joined = false;
  let handlers: InputHandlers | undefined;
  // The state flow control wants. kafkajs forgets pauses when it restarts its consumer after a crash, and
  // refuses pause()/resume() while it is between groups: the wish is kept here and applied when it can be.
  let paused = false;
  const pausedPartitions = new Set<number>();
  const applyPause = () => {
    try {
      consumer.resume([{ topic: options.topic }]);
      if (paused) consumer.pause([{ topic: options.topic }]);
      else if (pausedPartitions.size > 0)
        consumer.pause([{ topic: options.topic, partitions: [...pausedPartitions] }]);
    } catch {
      // Between a crash and the restart: GROUP_JOIN applies it again.
    }
  };
  let memberId: string | undefined;
  /** Group joins so far: a commit that saw a join happen may not have been applied. */
  let joins = 0;

  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const now = [...(event.payload.memberAssignment[options.topic] ?? [])].sort((a, b) => a - b);
    // A new member id: this member was out of the group, and its partitions may have had another owner.
    const rejoined = memberId !== undefined && memberId !== event.payload.memberId;
    memberId = event.payload.memberId;
    joins++;
    const kept = rejoined ? [] : assigned.filter((p) => now.includes(p));
    const lost = assigned.filter((p) => !kept.includes(p));
    const added = now.filter((p) => !kept.includes(p));
    assigned = now;
    joined = true;
    applyPause();
    handlers?.onAssignment(assigned, added, lost);
  });
  consumer.on(consumer.events.CRASH, (event) => {
    joined = false;
    // kafkajs leaves the group on a crash: whatever it had may be someone else's by the time it is back.
    const lost = assigned;
    assigned = [];
    if (lost.length > 0) handlers?.onAssignment([], [], lost);
    handlers?.onCrash?.(event.payload.error, event.payload.restart);
  });
  consumer.on(consumer.events.STOP, () => {
    joined = false;
  });

  /**
   * Commits asked for while one is in flight wait for it and then go together, in one commitOffsets: the
   * writes of several partitions finishing at once share a request instead of queueing one each. Each
   * caller is answered for its own entries: rejected if the group rebalanced during the shared commit.
   */
  interface PendingCommit {
    readonly entries: readonly TopicPartitionOffset[];
    /** The group generation the caller asked in: a commit that waited past a rebalance is not sent. */
    readonly generation: number;
    readonly resolve: () => void;
    readonly reject: (error: unknown) => void;
  }
  let pendingCommits: PendingCommit[] = [];
  let committing = false;
  const drainCommits = async () => {
    committing = true;
    try {
      while (pendingCommits.length > 0) {
        // The broker does not check who owns a partition: an offset asked for before a rebalance and sent
        // after it could move the new owner's commit point back. Such a caller is refused; it commits again.
        const generation = joins;
        const stale = pendingCommits.filter((p) => p.generation !== generation);
        const group = pendingCommits.filter((p) => p.generation === generation);
        pendingCommits = [];
        for (const p of stale) p.reject(new Error("the group rebalanced before the commit was sent"));
        if (group.length === 0) continue;
        try {
          if (!joined) throw new Error("not a member of the group right now");
          await consumer.commitOffsets(group.flatMap((p) => p.entries.map((e) => ({ ...e }))));
          if (!joined || joins !== generation) throw new Error("the group rebalanced during the commit");
          for (const p of group) p.resolve();
        } catch (error) {
          for (const p of group) p.reject(error);
        }
      }
    } finally {
      committing = false;
    }
  };

  return {
    async start(given) {
      handlers = given;
      await consumer.connect();
      await consumer.subscribe({ topic: options.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          // A batch fetched before a rebalance moved its partition away: not ours to track or commit.
          // Checked before anything is built for its messages.
          if (!isRunning() || isStale() || !assigned.includes(batch.partition)) return;
          const messages: InputMessage[] = [];
          for (const message of batch.messages) {
            messages.push({
              source: {
                topic: batch.topic,
                partition: batch.partition,
                offset: message.offset,
                timestampMs: Number(message.timestamp),
              },
              key: message.key,
              value: message.value,
              headers: message.headers,
            });
          }
          const taken = await given.onMessages(messages);
          const last = batch.messages[taken - 1];
          if (last) resolveOffset(last.offset);
          await heartbeat();
          // Unresolved messages are fetched again from the first of them: wait a little before that.
          if (taken < messages.length && isRunning()) await sleep(options.untakenRetryDelayMs ?? 1000);
        },
      });
    },
    pause() {
      if (paused) return;
      paused = true;
      applyPause();
    },
    resume() {
      if (!paused) return;
      paused = false;
      applyPause();
    },
    isPaused: () => paused,
    seek(partition, offset) {
      consumer.seek({ topic: options.topic, partition, offset });
    },
    pausePartitions(partitions) {
      for (const p of partitions) pausedPartitions.add(p);
      applyPause();
    },
    resumePartitions(partitions) {
      for (const p of partitions) pausedPartitions.delete(p);
      applyPause();
    },
    commit(entries) {
      // kafkajs silently skips a commit while it rejoins: report it, so the entries are committed later.
      if (!joined) return Promise.reject(new Error("not a member of the group right now"));
      return new Promise<void>((resolve, reject) => {
        pendingCommits.push({ entries, generation: joins, resolve, reject });
        if (!committing) void drainCommits();
      });
    },
    isJoined: () => joined,
    assignedPartitions: () => assigned,
    async stop() {
      joined = false;
      await consumer.disconnect();
    },
  };
}
