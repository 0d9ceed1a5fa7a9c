// The S3 client of the s3 content driver, built from storage.s3: credentials from mounted files
// (re-read when they may have rotated) or the SDK's standard chain, and a start-up check that
// names the configuration key at fault instead of failing the first push.
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { HeadBucketCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { S3Config } from '../../../config/config.js';
import { isConnectionFailure } from '../../../database/errors.js';
import { ObjectStoreUnavailableError } from '../errors.js';

/** Credentials read from files are read again after this long (a rotated Secret is picked up). */
const CREDENTIALS_TTL_MS = 5 * 60_000;

async function readSecretFile(file: string, key: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`storage.s3.${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  const value = text.trim();
  if (!value) throw new Error(`storage.s3.${key}: ${file} is empty`);
  return value;
}

const TRANSPORT_FAILURES = new Set(['TimeoutError', 'RequestTimeout', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * `err` as an ObjectStoreUnavailableError when it says the object store could not be reached
 * or failed on its side (5xx), so that the client gets 503 UNAVAILABLE, not 500; undefined for
 * any other failure (a 404, a denial, a request of ours it refused).
 */
export function asObjectStoreOutage(err: unknown, what: string): ObjectStoreUnavailableError | undefined {
  if (err instanceof ObjectStoreUnavailableError) return err;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode ?? 0;
    return status >= 500 ? new ObjectStoreUnavailableError(`${what}: HTTP ${status}`, err) : undefined;
  }
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (isConnectionFailure(e) || TRANSPORT_FAILURES.has(e.name) || (typeof code === 'string' && TRANSPORT_FAILURES.has(code))) {
      return new ObjectStoreUnavailableError(`${what}: ${typeof code === 'string' ? code : e.name}`, err);
    }
  }
  return undefined;
}

export function createS3Client(config: S3Config): S3Client {
  const { accessKeyIdFile, secretAccessKeyFile } = config;
  const credentials = accessKeyIdFile && secretAccessKeyFile
    ? async () => ({
      accessKeyId: await readSecretFile(accessKeyIdFile, 'accessKeyIdFile'),
      secretAccessKey: await readSecretFile(secretAccessKeyFile, 'secretAccessKeyFile'),
      expiration: new Date(Date.now() + CREDENTIALS_TTL_MS),
    })
    : undefined;
  // Keep-alive connections, enough of them for concurrent blob reads and part uploads.
  const agentOptions = { keepAlive: true, maxSockets: 64 };
  const client = new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials,
    // Content is verified by its digest end to end; the SDK's own CRC32 of every part and
    // response only cost CPU (measured: a third of a 256 MiB GET's time).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: {
      httpAgent: new Agent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 10_000,
      requestTimeout: 120_000,
    },
  });
  // Outermost (after the SDK's retries): an outage surfaces as one error type whatever the command.
  client.middlewareStack.add((next, context) => async (args) => {
    try {
      return await next(args);
    } catch (err) {
      throw asObjectStoreOutage(err, context.commandName ?? 'S3 request') ?? err;
    }
  }, { step: 'initialize', name: 'layoverObjectStoreOutage' });
  return client;
}

/** Fails with a message naming the key at fault unless the bucket answers with these credentials. */
export async function checkBucket(client: S3Client, config: S3Config): Promise<void> {
  const where = `${config.endpoint ?? `AWS S3 (${config.region})`} bucket ${config.bucket}`;
  try {
    await client.send(new HeadBucketCommand({ Bucket: config.bucket }), { abortSignal: AbortSignal.timeout(20_000) });
  } catch (err) {
    if (err instanceof S3ServiceException) {
      const status = err.$metadata.httpStatusCode;
      if (status === 404) throw new Error(`storage.s3.bucket: ${where} does not exist`, { cause: err });
      if (status === 403 || status === 401) throw new Error(`storage.s3: access to ${where} denied (check accessKeyIdFile/secretAccessKeyFile)`, { cause: err });
      throw new Error(`storage.s3: ${where} answered ${status ?? err.name}`, { cause: err });
    }
    const message = (err as Error).message;
    if (message.startsWith('storage.s3')) throw err;
    throw new Error(`storage.s3.endpoint: cannot reach ${where}: ${message}`, { cause: err });
  }
}
