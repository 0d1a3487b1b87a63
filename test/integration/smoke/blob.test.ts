import { BlobServiceClient } from "@azure/storage-blob";
import { describe, expect, inject, it } from "vitest";
import { uniqueName } from "../../helpers/kafka.ts";

describe("blob storage (Azurite)", () => {
  it("uploads, lists and downloads a blob", async () => {
    const service = BlobServiceClient.fromConnectionString(inject("stack").blobConnectionString);
    const container = service.getContainerClient(uniqueName("smoke"));
    await container.create();
    const body = JSON.stringify([{ store_id: "CA_1", features: Array(13).fill(0.5) }]);
    const blob = container.getBlockBlobClient("batches/b-1/b-1.json");
    await blob.upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: "application/json" },
    });

    const names: string[] = [];
    for await (const item of container.listBlobsFlat({ prefix: "batches/b-1/" })) names.push(item.name);
    expect(names).toEqual(["batches/b-1/b-1.json"]);

    const downloaded = await blob.downloadToBuffer();
    expect(JSON.parse(downloaded.toString("utf8"))).toEqual(JSON.parse(body));
    const properties = await blob.getProperties();
    expect(properties.contentType).toBe("application/json");
    expect(properties.contentLength).toBe(Buffer.byteLength(body));
  });
});
