/**
 * The connector's configuration, as validated at start (see schema.ts for each setting's environment
 * variable, default and meaning). One object, frozen, handed to the stage factories by the wiring module.
 */

export type ApiFlavor = "guide" | "v2";
export type CredentialKind = "default" | "local-dev";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

/** How to reach one blob container: a connection string (Azurite, dev) or an account URL + the Entra credential. */
export interface BlobLocation {
  readonly connectionString?: string;
  readonly accountUrl?: string;
  readonly container: string;
}

export interface Config {
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly clientId: string;
    readonly groupId: string;
    readonly ssl: boolean;
    readonly sasl?: {
      readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
      readonly username: string;
      readonly password: string;
    };
    readonly inputTopic: string;
    readonly resultsTopic: string;
    readonly deadLetterTopic: string;
    /** Create missing topics at start (otherwise a missing topic stops start-up). */
    readonly createTopics: boolean;
    readonly topicPartitions: number;
    readonly sessionTimeoutMs: number;
  };
  readonly schemaRegistry: {
    readonly url: string;
    readonly username?: string;
    readonly password?: string;
  };
  readonly validation: {
    readonly featureCount: number;
    readonly maxStoreIdLength: number;
    readonly maxMessageBytes: number;
  };
  readonly batch: {
    readonly maxRecords: number;
    readonly maxBytes: number;
    readonly maxWaitMs: number;
  };
  readonly storage: {
    readonly input: BlobLocation & { readonly prefix: string };
    readonly output: BlobLocation & { readonly pathTemplate: string };
  };
  readonly endpoint: {
    readonly scoringUri: string;
    readonly apiFlavor: ApiFlavor;
    /** Status URL; {scoringUri} and {jobId} are replaced. */
    readonly statusUrlTemplate: string;
    readonly deployment?: string;
    readonly tokenScope: string;
    readonly credential: CredentialKind;
    /** v2 flavor: the datastore the job writes its output to (azureml://datastores/<name>/paths/...). */
    readonly outputDatastore: string;
    readonly httpMaxRetries: number;
    readonly httpRetryDelayMs: number;
    readonly httpMaxRetryDelayMs: number;
    readonly requestTimeoutMs: number;
  };
  readonly jobs: {
    readonly pollIntervalMs: number;
    readonly timeoutMs: number;
    readonly maxAttempts: number;
    readonly maxInFlight: number;
  };
  readonly flow: {
    readonly maxEventsInFlight: number;
  };
  readonly observability: {
    readonly port: number;
    readonly logLevel: LogLevel;
  };
  readonly shutdownTimeoutMs: number;
}
