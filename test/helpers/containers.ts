/**
 * The third way the tests find their services (see globalSetup.ts for the order): containers, when a container
 * runtime answers (a developer laptop with Docker or Podman and no Java), or when FC_TEST_SERVICES=containers.
 * Not exercised on the project's own machines and CI, which have no container engine.
 */
import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from "testcontainers";
import { DEFAULT_APICURIO_VERSION, DEFAULT_KAFKA_VERSION } from "../../stack/src/artifacts.ts";
import { azuriteConnectionString } from "../../stack/src/azurite.ts";
import { freePort } from "../../stack/src/processes.ts";
import type { StackEndpoints } from "../../stack/src/types.ts";

/** Which container runtime answers, in a few words, or undefined when none does. */
export async function findContainerRuntime(): Promise<string | undefined> {
  try {
    const { containerRuntime } = (await getContainerRuntimeClient()).info;
    return `a container runtime (server ${containerRuntime.serverVersion}, ${containerRuntime.operatingSystem}) at ${containerRuntime.host}`;
  } catch {
    return undefined;
  }
}

export interface ContainerStack {
  readonly endpoints: StackEndpoints;
  stop(): Promise<void>;
}

export async function startContainerStack(kafkaVersion = DEFAULT_KAFKA_VERSION): Promise<ContainerStack> {
  // Kafka advertises the address clients must use, so the host port is fixed before the container starts.
  const kafkaPort = await freePort();
  const started: StartedTestContainer[] = [];
  try {
    const kafka = await new GenericContainer(`apache/kafka:${kafkaVersion}`)
      .withExposedPorts({ container: kafkaPort, host: kafkaPort })
      .withEnvironment({
        KAFKA_NODE_ID: "1",
        KAFKA_PROCESS_ROLES: "broker,controller",
        KAFKA_LISTENERS: `PLAINTEXT://0.0.0.0:${kafkaPort},CONTROLLER://0.0.0.0:9093`,
        KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${kafkaPort}`,
        KAFKA_CONTROLLER_LISTENER_NAMES: "CONTROLLER",
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        KAFKA_CONTROLLER_QUORUM_VOTERS: "1@localhost:9093",
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: "1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: "1",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: "0",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
      })
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
      .start();
    started.push(kafka);
    const registry = await new GenericContainer(`apicurio/apicurio-registry:${DEFAULT_APICURIO_VERSION}`)
      .withExposedPorts(8080)
      .withWaitStrategy(Wait.forHttp("/apis/ccompat/v7/subjects", 8080))
      .start();
    started.push(registry);
    const azurite = await new GenericContainer("mcr.microsoft.com/azure-storage/azurite")
      .withCommand(["azurite-blob", "--blobHost", "0.0.0.0", "--loose", "--skipApiVersionCheck"])
      .withExposedPorts(10000)
      .start();
    started.push(azurite);
    const blobEndpoint = `http://127.0.0.1:${azurite.getMappedPort(10000)}/devstoreaccount1`;
    return {
      endpoints: {
        kafkaBrokers: [`127.0.0.1:${kafkaPort}`],
        kafkaVersion,
        registryUrl: `http://127.0.0.1:${registry.getMappedPort(8080)}/apis/ccompat/v7`,
        blobConnectionString: azuriteConnectionString(blobEndpoint),
        blobEndpoint,
      },
      stop: async () => {
        await Promise.all(started.map((c) => c.stop()));
      },
    };
  } catch (error) {
    await Promise.allSettled(started.map((c) => c.stop()));
    throw error;
  }
}
