import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { BackupError } from '../errors.js';
import type { Backend, BackendOptions } from './backend.js';
import { tuning } from './format.js';

interface AwsError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'TimeoutError']);

const statusOf = (err: unknown) => (err as AwsError | undefined)?.$metadata?.httpStatusCode;

/**
 * A repository in an S3 bucket (AWS or any server speaking its API: Ceph RGW, MinIO, Garage,
 * R2...). Credentials come from the SDK's default chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
 * profiles, roles), the region from `AWS_REGION` (default `us-east-1`), the endpoint from
 * `--s3-endpoint`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; with an endpoint, path-style
 * addressing is used. Objects are written with `If-None-Match: *` (never overwritten) and checksum
 * headers only when the API requires them: integrity is checked by dawn-backup itself, never
 * left to the server.
 */
export class S3Backend implements Backend {
  readonly url: string;
  requests = 0;
  /** Part size of streamed uploads (multipart above it). */
  readonly partSize: number;
  private readonly client: S3Client;
  private readonly endpoint: string | undefined;

  /** Open a bucket; the SDK is loaded here, only when an `s3://` repository is used. */
  static async open(bucket: string, prefix: string, opts: BackendOptions = {}): Promise<S3Backend> {
    // On Node < 22 the SDK warns (on stderr, at every run: cron mails it) that its releases
    // after January 2027 will need Node 22. The release pinned here supports Node 20, so the
    // warning says nothing about this tool; set the variable to `false` to see it anyway.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    return new S3Backend(await import('@aws-sdk/client-s3'), bucket, prefix, opts);
  }

  private constructor(
    private readonly sdk: typeof import('@aws-sdk/client-s3'),
    readonly bucket: string,
    readonly prefix: string,
    opts: BackendOptions = {},
  ) {
    const env = opts.env ?? process.env;
    // The SDK warns on stderr that its releases of 2027 will need Node 22; this package supports
    // Node >= 20.19 with a pinned SDK, so the warning would only be noise in the CLI's output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.partSize = tuning(env).partSize;
    this.endpoint = opts.s3Endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
    const config: S3ClientConfig = {
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    };
    // Explicit keys of a given environment (the default chain reads process.env itself).
    if (opts.env && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
      config.credentials = {
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
      };
    }
    if (this.endpoint) {
      config.endpoint = this.endpoint;
      config.forcePathStyle = true;
    }
    this.client = new sdk.S3Client(config);
    // Count every HTTP attempt (after the retry middleware): the request count the bench prints.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        this.requests++;
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'dawnRequestCounter' },
    );
  }

  private key(k: string): string {
    return this.prefix ? `${this.prefix}/${k}` : k;
  }

  /** A coded error for a failed request: where, what, and what to do. */
  private fail(action: string, key: string, err: unknown): BackupError {
    if (BackupError.is(err)) return err;
    const e = err as AwsError;
    const status = statusOf(err);
    const where = `${this.url}/${key}${this.endpoint ? ` at ${this.endpoint}` : ''}`;
    const what = `${e?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e?.message || e?.code || String(err)}`;
    let hint = 'Check the endpoint, the bucket, the credentials and the network, then retry.';
    if (status === 403) hint = 'Check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile) and the bucket policy.';
    else if (status === 404 || e?.name === 'NoSuchBucket') hint = 'The bucket does not exist: create it first (or check AWS_REGION and the endpoint).';
    else if (e?.name === 'CredentialsProviderError') hint = 'No S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role.';
    else if (status === undefined && NETWORK_CODES.has(e?.code ?? (e as { errno?: string })?.errno ?? e?.name ?? '')) hint = `The S3 endpoint cannot be reached${this.endpoint ? '' : ' (for a non-AWS server set AWS_ENDPOINT_URL_S3 or --s3-endpoint)'}; check the address and the network, then retry.`;
    return new BackupError('IO', `Cannot ${action} ${where}: ${what}. ${hint}`, { cause: err, path: where });
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    try {
      await this.client.send(new this.sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: body, ContentLength: body.length, IfNoneMatch: '*' }));
      return true;
    } catch (err) {
      const status = statusOf(err);
      // 412: the key exists (never overwritten). 409: a concurrent conditional write of the same key.
      if (status === 412 || status === 409) return false;
      throw this.fail('write', key, err);
    }
  }

  /**
   * Streamed upload with `@aws-sdk/lib-storage` (one PUT up to {@link partSize}, multipart
   * above). `If-None-Match: *` is sent on the PUT and on the multipart completion; a server that
   * ignores it on the completion (Ceph RGW does, see the README) can at worst replace an object
   * by the same content, since keys are content-addressed and checked first with HEAD (skipped
   * when `sizeHint` says a single PUT, which the condition guards, will do).
   */
  async putStreamIfAbsent(key: string, body: AsyncIterable<Uint8Array>, sizeHint?: number): Promise<boolean> {
    if ((sizeHint === undefined || sizeHint >= this.partSize) && (await this.exists(key))) return false;
    const { Upload } = await import('@aws-sdk/lib-storage');
    const { Readable } = await import('node:stream');
    let fromBody: { err: unknown } | undefined;
    const guarded = async function* (): AsyncGenerator<Uint8Array> {
      try {
        yield* body;
      } catch (err) {
        fromBody = { err };
        throw err;
      }
    };
    const up = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.key(key), Body: Readable.from(guarded(), { objectMode: false }), IfNoneMatch: '*' },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    try {
      await up.done();
      return true;
    } catch (err) {
      if (fromBody) throw fromBody.err;
      const status = statusOf(err);
      if (status === 412 || status === 409) return false;
      throw this.fail('write', key, err);
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer | undefined> {
    if (length <= 0) return Buffer.alloc(0);
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key), Range: `bytes=${offset}-${offset + length - 1}` }));
      const bytes = await r.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (statusOf(err) === 416) return Buffer.alloc(0); // the object is shorter: damaged
      if (statusOf(err) === 404 && (err as AwsError).name !== 'NoSuchBucket') return undefined;
      throw this.fail('read', key, err);
    }
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      const body = r.Body as unknown as AsyncIterable<Uint8Array>;
      const fail = (err: unknown) => this.fail('read', key, err);
      return (async function* () {
        try {
          yield* body;
        } catch (err) {
          throw fail(err);
        }
      })();
    } catch (err) {
      if (statusOf(err) === 404 && (err as AwsError).name !== 'NoSuchBucket') return undefined;
      throw this.fail('read', key, err);
    }
  }

  async prepare(): Promise<void> {
    try {
      await this.client.send(new this.sdk.HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw this.fail('check the bucket of', '', err);
    }
    try {
      await this.client.send(new this.sdk.CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = (err as AwsError).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw this.fail('create the bucket', '', err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      const bytes = await r.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (statusOf(err) === 404 && (err as AwsError).name !== 'NoSuchBucket') return undefined;
      throw this.fail('read', key, err);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw this.fail('check', key, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listModified(prefix)).map((o) => o.key);
  }

  async listModified(prefix: string): Promise<{ key: string; modified: number }[]> {
    const out: { key: string; modified: number }[] = [];
    const full = this.key(prefix);
    const cut = this.prefix ? this.prefix.length + 1 : 0;
    let token: string | undefined;
    try {
      do {
        const r = await this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token }));
        // LastModified: the server's clock when it stored the object (whole seconds in a listing).
        for (const o of r.Contents ?? []) if (o.Key !== undefined) out.push({ key: o.Key.slice(cut), modified: o.LastModified?.getTime() ?? Number.NaN });
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.fail('list', prefix, err);
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
    } catch (err) {
      if (statusOf(err) !== 404) throw this.fail('delete', key, err);
    }
  }
}
