// gRPC status codes for everything the service refuses or fails at, in one place.
// An ApiError carries the status a client sees: as the call's status on unary and
// Complete calls, as a GenerationError on the Generate stream.
import { Metadata, status as Status, type ServerErrorResponse } from '@grpc/grpc-js';

export { Status };

export class ApiError extends Error {
  constructor(
    readonly code: Status,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const invalidArgument = (message: string): ApiError => new ApiError(Status.INVALID_ARGUMENT, message);
export const outOfRange = (message: string): ApiError => new ApiError(Status.OUT_OF_RANGE, message);
export const notFound = (message: string): ApiError => new ApiError(Status.NOT_FOUND, message);
export const alreadyExists = (message: string): ApiError => new ApiError(Status.ALREADY_EXISTS, message);
export const resourceExhausted = (message: string): ApiError => new ApiError(Status.RESOURCE_EXHAUSTED, message);
export const failedPrecondition = (message: string): ApiError => new ApiError(Status.FAILED_PRECONDITION, message);
export const unavailable = (message: string): ApiError => new ApiError(Status.UNAVAILABLE, message);
export const deadlineExceeded = (message: string): ApiError => new ApiError(Status.DEADLINE_EXCEEDED, message);
export const internal = (message: string): ApiError => new ApiError(Status.INTERNAL, message);

/** Any thrown value as an ApiError: ApiErrors keep their status, the rest is INTERNAL. */
export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return internal(message);
}

/** The object grpc-js turns into a call status (callback(err) or call.emit('error', err)). */
export function toServiceError(err: unknown): ServerErrorResponse {
  const api = asApiError(err);
  const out = new Error(api.message) as ServerErrorResponse;
  out.code = api.code;
  out.details = api.message;
  out.metadata = new Metadata();
  return out;
}

/** The name of a status code ("INVALID_ARGUMENT"), for messages and logs. */
export function statusName(code: number): string {
  return (Status as unknown as Record<number, string>)[code] ?? String(code);
}
