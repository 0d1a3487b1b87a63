import type { BatchMember, BatchMembers, SourceRef } from "../types.ts";

/**
 * A batch's members in columns (BatchMembers, docs/architecture.md invariant 8): built once at upload (or
 * from a manifest when a batch is resumed), then read by index. An event costs its four typed-array slots;
 * its objects (BatchMember, SourceRef, the offset string) are made only when one is needed, for a dead letter.
 */
export function packMembers(list: readonly BatchMember[]): BatchMembers {
  for (const steps = packMembersStepwise(list, Number.POSITIVE_INFINITY); ; ) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/** packMembers a slice of `sliceSize` members at a time, yielding between slices (see planBatchFilesStepwise). */
export function* packMembersStepwise(
  list: readonly BatchMember[],
  sliceSize: number,
): Generator<void, BatchMembers> {
  const length = list.length;
  const partitions = new Int32Array(length);
  const offsets = new BigInt64Array(length);
  const timestampsMs = new Float64Array(length);
  const storeIndexes = new Uint32Array(length);
  const storeIds: string[] = [];
  const storeIndex = new Map<string, number>();
  const topic = list[0]?.source.topic ?? "";
  for (let i = 0; i < length; i++) {
    if (i > 0 && i % sliceSize === 0) yield;
    const { source, storeId } = list[i] as BatchMember;
    if (source.topic !== topic) {
      throw new RangeError(`a batch holds events of one topic, got ${topic} and ${source.topic}`);
    }
    partitions[i] = source.partition;
    offsets[i] = BigInt(source.offset);
    timestampsMs[i] = source.timestampMs;
    let index = storeIndex.get(storeId);
    if (index === undefined) {
      index = storeIds.length;
      storeIds.push(storeId);
      storeIndex.set(storeId, index);
    }
    storeIndexes[i] = index;
  }
  return { topic, length, partitions, offsets, timestampsMs, storeIndexes, storeIds };
}

export function storeIdAt(members: BatchMembers, index: number): string {
  return members.storeIds[members.storeIndexes[index] as number] as string;
}

export function sourceAt(members: BatchMembers, index: number): SourceRef {
  return {
    topic: members.topic,
    partition: members.partitions[index] as number,
    offset: String(members.offsets[index]),
    timestampMs: members.timestampsMs[index] as number,
  };
}

/** One member as an object (for a dead letter, a log line, a test). */
export function memberAt(members: BatchMembers, index: number): BatchMember {
  return { source: sourceAt(members, index), storeId: storeIdAt(members, index) };
}

/** Every member as an object, in member order. */
export function unpackMembers(members: BatchMembers): BatchMember[] {
  return Array.from({ length: members.length }, (_, i) => memberAt(members, i));
}
