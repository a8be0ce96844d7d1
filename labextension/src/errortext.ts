/** A failed request or call as one line for the panel: the message, then the fix. */
import { NbopsRequestError } from './request';

export function errorText(error: unknown): string {
  if (error instanceof NbopsRequestError) {
    return error.fix ? `${error.message} (fix: ${error.fix})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
