import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type { SchemaRegistrySettings } from "./settings.ts";

/** The schema registry client, for Avro events in and the Avro results out. */
export function createSchemaRegistry(settings: SchemaRegistrySettings): SchemaRegistry {
  return new SchemaRegistry({
    host: settings.url,
    ...(settings.username
      ? { auth: { username: settings.username, password: settings.password ?? "" } }
      : {}),
  });
}

/** Whether the registry answers; a problem for the start-up error otherwise. Never shows the password. */
export async function checkSchemaRegistry(settings: SchemaRegistrySettings): Promise<string[]> {
  const headers: Record<string, string> = {};
  if (settings.username) {
    headers.Authorization = `Basic ${Buffer.from(`${settings.username}:${settings.password ?? ""}`).toString("base64")}`;
  }
  try {
    const response = await fetch(`${settings.url.replace(/\/+$/, "")}/subjects`, {
      headers,
      signal: AbortSignal.timeout(10_000),
    });
    return response.ok ? [] : [`schema registry at ${settings.url} answered HTTP ${response.status}`];
  } catch (error) {
    return [`schema registry at ${settings.url} cannot be reached: ${(error as Error).message}`];
  }
}
