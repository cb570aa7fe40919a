import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { startLocalS3 } from "../../scripts/local/s3-server";

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), "s3lat-"));
  const s3 = await startLocalS3({ directory: dir, buckets: ["b", "r"] });
  const c = s3.client();
  const body = Buffer.alloc(8192, 1);
  for (let i = 0; i < 1000; i++) await c.send(new PutObjectCommand({ Bucket: "b", Key: `small/out/f${i}.bin`, Body: body }));
  const time = async (name: string, fn: (i: number) => Promise<unknown>) => {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) await fn(i);
    console.log(name, ((performance.now() - t0) / 200).toFixed(2), "ms");
  };
  await time("GET", (i) => c.send(new GetObjectCommand({ Bucket: "b", Key: `small/out/f${i}.bin` })).then((o) => o.Body!.transformToByteArray()));
  await time("HEAD", (i) => c.send(new HeadObjectCommand({ Bucket: "b", Key: `small/out/f${i}.bin` })));
  await time("LIST receipts (empty bucket r)", (i) => c.send(new ListObjectsV2Command({ Bucket: "r", Prefix: `x/push/f${i}.bin/etag/`, MaxKeys: 1 })));
  await time("LIST same bucket (1000 objs)", (i) => c.send(new ListObjectsV2Command({ Bucket: "b", Prefix: `_bridge/receipts/x/push/f${i}.bin/etag/`, MaxKeys: 1 })));
  await time("PUT receipt", (i) => c.send(new PutObjectCommand({ Bucket: "r", Key: `x/push/f${i}.bin/etag/t.json`, Body: JSON.stringify({ a: i }) })));
  await time("LIST receipts (200 objs in r)", (i) => c.send(new ListObjectsV2Command({ Bucket: "r", Prefix: `x/push/f${i}.bin/etag/`, MaxKeys: 1 })));
  c.destroy();
  await s3.close();
}
main();
