// The OCI distribution-spec error format: {"errors":[{"code","message","detail"}]}.
export type ErrorCode =
  | 'BLOB_UNKNOWN' | 'BLOB_UPLOAD_INVALID' | 'BLOB_UPLOAD_UNKNOWN' | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN' | 'MANIFEST_INVALID' | 'MANIFEST_UNKNOWN' | 'NAME_INVALID'
  | 'NAME_UNKNOWN' | 'SIZE_INVALID' | 'UNAUTHORIZED' | 'DENIED' | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS' | 'RANGE_INVALID' | 'PAGINATION_NUMBER_INVALID' | 'TAG_INVALID'
  | 'UNAVAILABLE' | 'UNKNOWN';

const STATUS: Record<ErrorCode, number> = {
  BLOB_UNKNOWN: 404, BLOB_UPLOAD_INVALID: 400, BLOB_UPLOAD_UNKNOWN: 404, DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400, MANIFEST_INVALID: 400, MANIFEST_UNKNOWN: 404, NAME_INVALID: 400,
  NAME_UNKNOWN: 404, SIZE_INVALID: 400, UNAUTHORIZED: 401, DENIED: 403, UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429, RANGE_INVALID: 416, PAGINATION_NUMBER_INVALID: 400, TAG_INVALID: 400,
  UNAVAILABLE: 503, UNKNOWN: 500,
};

const MESSAGE: Record<ErrorCode, string> = {
  BLOB_UNKNOWN: 'blob unknown to registry',
  BLOB_UPLOAD_INVALID: 'blob upload invalid',
  BLOB_UPLOAD_UNKNOWN: 'blob upload unknown to registry',
  DIGEST_INVALID: 'provided digest did not match uploaded content',
  MANIFEST_BLOB_UNKNOWN: 'manifest references a manifest or blob unknown to registry',
  MANIFEST_INVALID: 'manifest invalid',
  MANIFEST_UNKNOWN: 'manifest unknown to registry',
  NAME_INVALID: 'invalid repository name',
  NAME_UNKNOWN: 'repository name not known to registry',
  SIZE_INVALID: 'provided length did not match content length',
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  UNSUPPORTED: 'the operation is unsupported',
  TOOMANYREQUESTS: 'too many requests',
  RANGE_INVALID: 'requested range not satisfiable',
  PAGINATION_NUMBER_INVALID: 'invalid number of results requested',
  TAG_INVALID: 'manifest tag did not match URI',
  UNAVAILABLE: 'service unavailable',
  UNKNOWN: 'unknown error',
};

export class RegistryError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    options: { status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message ?? MESSAGE[code]);
    this.name = 'RegistryError';
    this.status = options.status ?? STATUS[code];
    this.headers = options.headers ?? {};
  }
  readonly headers: Record<string, string>;

  body(): { errors: { code: ErrorCode; message: string; detail?: unknown }[] } {
    return { errors: [{ code: this.code, message: this.message, ...(this.detail === undefined ? {} : { detail: this.detail }) }] };
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}
