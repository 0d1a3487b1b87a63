/** Where the services of a running stack can be reached. Printed by `npm run stack:start`, injected into tests. */
export interface StackEndpoints {
  /** host:port of each Kafka broker. */
  readonly kafkaBrokers: readonly string[];
  /** Kafka version the broker runs, e.g. "4.1.1" (informational). */
  readonly kafkaVersion: string;
  /** Base URL of the Confluent-compatible schema registry API, e.g. http://127.0.0.1:38081/apis/ccompat/v7 */
  readonly registryUrl: string;
  /** Azure Storage connection string for the blob service (Azurite's well-known dev account locally). */
  readonly blobConnectionString: string;
  /** Blob service URL, e.g. http://127.0.0.1:30000/devstoreaccount1 (https when blobOAuth). */
  readonly blobEndpoint: string;
  /**
   * True when the blob service serves HTTPS and accepts Entra bearer tokens (Azurite's `--oauth basic`): the
   * account URL + TokenCredential path can be used.
   */
  readonly blobOAuth?: boolean;
  /** PEM of the CA the local HTTPS services' certificates chain to (what NODE_EXTRA_CA_CERTS names). */
  readonly caFile?: string;
}
