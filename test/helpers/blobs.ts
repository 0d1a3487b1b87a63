/** Blob Storage for one test run, on the stack the global setup found. */
import { BlobServiceClient } from "@azure/storage-blob";
import { inject } from "vitest";

export interface RunContainers {
  readonly blobs: BlobServiceClient;
  /** `<id>-in`: the connector's batch files (FC_INPUT_CONTAINER). */
  readonly inputContainer: string;
  /** `<id>-out`: the jobs' predictions.csv (FC_OUTPUT_CONTAINER, the emulator's datastore). */
  readonly outputContainer: string;
}

/** Creates the run's two containers, named after it (cut to the 63 characters a container name may have). */
export async function createRunContainers(id: string): Promise<RunContainers> {
  const blobs = BlobServiceClient.fromConnectionString(inject("stack").blobConnectionString);
  const inputContainer = `${id}-in`.slice(0, 63);
  const outputContainer = `${id}-out`.slice(0, 63);
  await blobs.getContainerClient(inputContainer).create();
  await blobs.getContainerClient(outputContainer).create();
  return { blobs, inputContainer, outputContainer };
}
