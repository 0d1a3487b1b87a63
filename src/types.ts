/**
 * Types that cross stage boundaries, defined once. Each stage (consumer, batcher, azure, producer)
 * takes and returns these; nothing else about one stage leaks into another.
 */

/** Where an event came from in Kafka. Offsets are strings, as kafkajs gives them (int64). */
export interface SourceRef {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** Kafka record timestamp, milliseconds since the epoch. */
  readonly timestampMs: number;
}

/** A row of the endpoint's input format: the guide's `{"store_id": ..., "features": [...]}`. */
export interface FeatureRow {
  readonly store_id: string;
  readonly features: readonly number[];
}

/** A valid event, decoded and validated, on its way into a batch. */
export interface FeatureEvent {
  readonly source: SourceRef;
  readonly row: FeatureRow;
  /** Size of the row once serialised into the batch file, in bytes (drives the byte trigger). */
  readonly sizeBytes: number;
  /** The row as serialised into the batch file (serializeRow): its size is taken from it, and it is not stringified again. */
  readonly json: string;
}

/** Why a batch was sealed. Bounded set: it is a metric label. */
export type FlushTrigger = "count" | "bytes" | "time" | "shutdown" | "rebalance";

/** A Kafka commit position: the next offset to consume, as kafkajs expects it (int64 string). */
export interface TopicPartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** An event of a batch as an object: its source and its store id (docs/architecture.md, invariant 8). */
export interface BatchMember {
  readonly source: SourceRef;
  readonly storeId: string;
}

/**
 * What is kept of a batch's events once their features are in the blob (docs/architecture.md, invariant 8),
 * column by column rather than an object per event: per event (its member index) its partition, offset,
 * Kafka timestamp and store, the store ids interned. About 24 bytes an event. Built and read through
 * src/batcher/members.ts. Members of a partition are in offset order.
 */
export interface BatchMembers {
  /** The input topic: one per connector, so once per batch. */
  readonly topic: string;
  readonly length: number;
  readonly partitions: Int32Array;
  readonly offsets: BigInt64Array;
  readonly timestampsMs: Float64Array;
  /** Per event, its store id's index in storeIds. */
  readonly storeIndexes: Uint32Array;
  /** Each store id of the batch once. */
  readonly storeIds: readonly string[];
}

/** A sealed batch: the unit uploaded as one file and scored by one job. */
export interface SealedBatch {
  /** Unique per batch; also the stem of its input files' names, so predictions can never match another batch. */
  readonly batchId: string;
  readonly rows: readonly FeatureRow[];
  /** The rows as serialised (serializeRow), in the same order: what the batch files are made of. */
  readonly rowJson: readonly string[];
  readonly members: readonly BatchMember[];
  readonly trigger: FlushTrigger;
  readonly sizeBytes: number;
  readonly openedAtMs: number;
  readonly sealedAtMs: number;
}

/** One input file of a batch: its name (unique to the batch) and the events it holds, in file order. */
export interface BatchFile {
  readonly fileName: string;
  readonly members: readonly BatchMember[];
}

/** A batch file once uploaded: where it is, and which members it holds, in file order (row k is memberIndexes[k]). */
export interface UploadedFile {
  readonly fileName: string;
  readonly blobPath: string;
  readonly memberIndexes: Uint32Array;
}

/**
 * What outlives the upload of a batch (docs/architecture.md, invariant 8): no features, only what maps
 * results back to events and what a dead letter needs to read its row back from the blob.
 */
export interface UploadedBatch {
  readonly batchId: string;
  readonly members: BatchMembers;
  readonly files: readonly UploadedFile[];
  /** https URI of the batch's own blob folder: the job's input. */
  readonly folderUri: string;
  /** Blob path of the batch's manifest (which event each row of each file is), outside the input folder. */
  readonly manifestPath: string;
}

/** One event's prediction, matched back from predictions.csv: the event by its index in the batch's members. */
export interface MatchedMember {
  readonly memberIndex: number;
  readonly fileName: string;
  readonly prediction: number;
}

/** How a batch's job ended, as the coordinator settles it: batch in, job out. */
export type BatchResult =
  | {
      readonly kind: "scored";
      readonly batch: UploadedBatch;
      readonly jobId: string;
      readonly predictions: readonly MatchedMember[];
      /** Events the job wrote no prediction for: they become missing_prediction dead letters. */
      readonly missing: ReadonlyArray<{ readonly memberIndex: number; readonly fileName: string }>;
      readonly predictedAt: Date;
    }
  | {
      readonly kind: "failed";
      readonly batch: UploadedBatch;
      readonly jobId?: string;
      readonly detail: string;
    };

/** Job statuses of Azure ML batch jobs. Any other string is possible and is treated as non-terminal. */
export type KnownJobStatus =
  | "NotStarted"
  | "Starting"
  | "Provisioning"
  | "Preparing"
  | "Queued"
  | "Running"
  | "Finalizing"
  | "CancelRequested"
  | "Completed"
  | "Failed"
  | "Canceled"
  | "NotResponding"
  | "Paused"
  | "Unknown"
  | "Scheduled";

export const TERMINAL_JOB_STATUSES: ReadonlySet<string> = new Set(["Completed", "Failed", "Canceled"]);

/**
 * One parsed row of predictions.csv. Scoring scripts write the store_id; MLflow deployments write instead
 * the row's 0-based position in the input file (`row prediction file`), which identifies it just as well.
 */
export type PredictionRow =
  | { readonly fileName: string; readonly storeId: string; readonly prediction: number }
  | { readonly fileName: string; readonly rowIndex: number; readonly prediction: number };
