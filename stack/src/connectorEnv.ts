import type { StackEndpoints } from "./types.ts";

export interface LocalConnectorTarget {
  readonly endpoints: StackEndpoints;
  readonly groupId: string;
  readonly topics: {
    readonly input: string;
    readonly results: string;
    readonly deadLetter: string;
    /** Default: `<input>.ledger` (created by the connector when FC_CREATE_TOPICS is on). */
    readonly ledger?: string;
  };
  readonly inputContainer: string;
  /** Default: the connector's own default (azureml-blobstore). */
  readonly outputContainer?: string;
  /** The emulator's scoring URI (loopback, so the local-dev credential is allowed). */
  readonly scoringUri: string;
}

/**
 * The FC_* settings that point a connector at a local stack and its emulator: the connection part only.
 * Tests, the demo and the benchmarks add their own tuning (batch size, poll interval ...) on top.
 */
export function localConnectorEnv(target: LocalConnectorTarget): Record<string, string> {
  return {
    FC_KAFKA_BROKERS: target.endpoints.kafkaBrokers.join(","),
    FC_KAFKA_GROUP_ID: target.groupId,
    FC_INPUT_TOPIC: target.topics.input,
    FC_RESULTS_TOPIC: target.topics.results,
    FC_DEAD_LETTER_TOPIC: target.topics.deadLetter,
    FC_LEDGER_TOPIC: target.topics.ledger ?? `${target.topics.input}.ledger`,
    FC_SCHEMA_REGISTRY_URL: target.endpoints.registryUrl,
    FC_INPUT_STORAGE_CONNECTION_STRING: target.endpoints.blobConnectionString,
    FC_INPUT_CONTAINER: target.inputContainer,
    ...(target.outputContainer ? { FC_OUTPUT_CONTAINER: target.outputContainer } : {}),
    FC_ENDPOINT_SCORING_URI: target.scoringUri,
    FC_AZURE_CREDENTIAL: "local-dev",
  };
}
